import type { Readable } from 'node:stream';
import type { StoredLocation } from '../ledger/ledger.js';

/** What the service hands a store when it publishes a finished upload. */
export interface PublishInput {
  /** Upload id; stores derive object names from it, never from the client's file name alone. */
  id: string;
  /**
   * The staging file holding exactly these bytes, which a store on the same disk may take over with
   * a rename; null when the bytes come from several files (a concatenated upload) and the store
   * must write what `open()` yields.
   */
  stagingPath: string | null;
  size: number;
  fileName: string;
  contentType: string;
  /** Expected whole-file SHA-256, lowercase hex. */
  sha256: string;
  /**
   * True when the service already hashed exactly these staged bytes and they match `sha256`: a
   * store that takes the staging file over need not read it again.
   */
  verified: boolean;
  /**
   * Streams the staged bytes once. The stream errors, before it ends, when the bytes do not hash to
   * `sha256`, so a store that writes what it reads must treat a stream error as "publish nothing".
   * Every call starts a new read of the file.
   */
  open(): Readable;
}

export type Download = { kind: 'stream'; stream: Readable; size: number } | { kind: 'redirect'; url: string };

/**
 * The byte-only storage interface: where finished uploads end up. Stores know nothing about HTTP,
 * limits, users or the ledger.
 */
export interface FileStore {
  readonly backend: StoredLocation['backend'];

  /** Throws when the store cannot be used (start-up check and /healthz). */
  check(): Promise<void>;

  /**
   * Publishes staged bytes.
   * Pre: `input.open()` yields exactly `input.size` bytes or errors.
   * Post, on success: the complete, verified object is visible at the returned location.
   * Post, on failure: nothing new is visible and the staging file is where it was.
   */
  publish(input: PublishInput): Promise<StoredLocation>;

  /** Reads a published object, or a byte range of it (inclusive `end`). */
  read(location: StoredLocation, range?: { start: number; end: number }, hints?: { fileName: string; contentType: string }): Promise<Download>;

  /** Deletes a published object; deleting one that is gone is not an error. */
  delete(location: StoredLocation): Promise<void>;

  /**
   * The object published for an upload, if one is visible, with the SHA-256 the store recorded
   * for it when it keeps one. Used after a crash between publishing and recording the result.
   */
  locate(id: string, fileName: string): Promise<{ location: StoredLocation; sha256: string | undefined } | undefined>;

  /**
   * Removes what interrupted publishes left behind (temporary files, incomplete multipart
   * uploads), where the store supports it; returns how many. Never touches published objects.
   */
  cleanupIncomplete(): Promise<number>;
}
