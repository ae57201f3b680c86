import type { Readable } from 'node:stream';
import type { StoredLocation } from '../ledger/ledger.js';

/** Where a client sends one part of a direct upload: a presigned request. */
export interface PartTarget {
  url: string;
  method: 'PUT';
  /** Headers the request must carry as given (they are signed into the URL). */
  headers: Record<string, string>;
  expiresAt: number;
}

/** What a direct upload becomes once verified. */
export interface PromoteInput {
  id: string;
  fileName: string;
  contentType: string;
  sha256: string;
  size: number;
}

/**
 * A store that clients write to directly, in parts (an S3 multipart upload), without the bytes
 * passing through this server. Byte-only: it knows nothing about users, limits, HTTP or the ledger.
 * Its `ref` is opaque to everyone else (the ledger keeps it as given).
 *
 * The bytes never become visible at a final key unverified: `complete` assembles them at a hidden
 * staging key, the caller reads them back (`read`) and checks them, and only then `promote` copies
 * them to the final key and removes the staging object.
 */
export interface DirectStore {
  /** Begins a multipart upload for upload `id` at its hidden staging key. */
  begin(id: string): Promise<string>;
  /** A presigned part upload; with `sha256` (hex), the store itself refuses other bytes. */
  partUrl(ref: string, partNumber: number, opts: { sha256?: string | undefined; expiresInSeconds: number }): Promise<PartTarget>;
  /**
   * Streams `length` bytes into part `partNumber` (this server staging a chunk there); with
   * `sha256` (hex) the store checks them. Returns the part's ETag.
   */
  uploadPart(ref: string, partNumber: number, body: Readable, length: number, sha256: string | undefined, signal: AbortSignal): Promise<string>;
  /** Assembles the parts at the staging key. Idempotent: a staging object already there is kept. */
  complete(ref: string, parts: { partNumber: number; etag: string }[]): Promise<void>;
  /** Streams the staging object, or bytes `start`..`end` (inclusive) of it. */
  read(ref: string, range?: { start: number; end: number }): Promise<Readable>;
  /** Copies the verified staging object to its final key, then deletes the staging object. */
  promote(ref: string, input: PromoteInput): Promise<StoredLocation>;
  /**
   * After damaged parts: a new multipart upload for `id`, into which the `keep` byte ranges of the
   * staging object are copied as their parts; the staging object is deleted. Returns the new
   * reference and the kept parts' new ETags.
   */
  restart(ref: string, id: string, keep: { partNumber: number; start: number; end: number }[]): Promise<{ ref: string; etags: Map<number, string> }>;
  /** Aborts the multipart upload and deletes the staging object and tails, whichever exist. */
  discard(ref: string): Promise<void>;
  /**
   * Stores `length` bytes that do not make a whole part yet (a stream's tail) as an object of
   * their own, under a new name each time; returns its reference. `promote` and `discard` remove
   * every tail of `ref`, including those never referenced.
   */
  putTail(ref: string, body: Readable, length: number, signal: AbortSignal): Promise<string>;
  /** Streams the first `length` bytes of a tail. */
  readTail(tail: string, length: number): Promise<Readable>;
  /** Deletes a tail (already gone is fine). */
  dropTail(tail: string): Promise<void>;
}
