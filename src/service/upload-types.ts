import type { Readable } from 'node:stream';
import type { Chunk, Protocol, Upload } from '../ledger/ledger.js';

/** What callers hand the upload service and what they get back, whatever the protocol. */

export interface CreateUploadInput {
  fileName: string;
  size: number;
  sha256?: string | undefined;
  chunkSize?: number | undefined;
  contentType?: string | undefined;
  metadata?: Record<string, string> | undefined;
}

/** How a chunk is addressed: by grid index, or by an exact byte range (`Content-Range`). */
export type ChunkAddress = { index: number } | { range: { first: number; last: number; size: number } };

export interface ChunkBody {
  /** The bytes; the service reads it once and destroys it if another writer takes over. */
  stream: Readable;
  /** The length the client declared (Content-Length), when it declared one. */
  declaredLength?: number | undefined;
  /** Client-supplied SHA-256 of the chunk, lowercase hex. */
  sha256?: string | undefined;
}

export interface ReconcileReport {
  resumed: number;
  completed: number;
  failed: number;
  orphansRemoved: number;
  storeLeftoversRemoved: number;
}

export interface StreamUploadInput {
  /** Which API creates it (for display and metrics). */
  protocol: Protocol;
  /** undefined: the request names none; the upload is called `upload-<id>`. */
  fileName: string | undefined;
  contentType: string;
  metadata: Record<string, string>;
  /** undefined: the length is deferred until the client tells it. */
  size: number | undefined;
  /** Request fields echoed back as sent (see Upload.echo). */
  echo: Record<string, string> | null;
  /** The upload is a part of a composed upload, published only as part of it. */
  isPart: boolean;
}

export interface ComposeInput {
  protocol: Protocol;
  /** undefined: the request names none; the upload is called `upload-<id>`. */
  fileName: string | undefined;
  contentType: string;
  metadata: Record<string, string>;
  echo: Record<string, string> | null;
}

export interface BodyChecksum {
  algorithm: string;
  digest: Buffer;
}

export interface AppendRequest {
  /** Where the client says the bytes go: must be the upload's current end. */
  offset: number;
  stream: Readable;
  declaredLength?: number | undefined;
  /** The upload's length, when the client sends it (required once for a deferred length). */
  length?: number | undefined;
  /**
   * A checksum of the whole body, which makes the body all or nothing: `algorithms` are computed
   * while it streams (Node hash names), and `expected()` - called once the body has ended, so it
   * may read a trailer - says which one must match what.
   */
  checksum?: { algorithms: string[]; expected: () => BodyChecksum } | undefined;
  /**
   * The body ends the upload: a deferred length becomes the bytes received, and a known length
   * must be reached exactly.
   */
  complete?: boolean | undefined;
  /**
   * Bytes past a known length fail the upload (`inconsistent_length`) instead of only being
   * refused (`upload_too_large`): the client no longer agrees with the server on what it uploads.
   */
  strictLength?: boolean | undefined;
  /** Told the upload's new durable offset each time a long body records a checkpoint. */
  onDurable?: ((offset: number) => void) | undefined;
}

export interface ChunkReceipt {
  chunk: Chunk;
  upload: Upload;
  /** False when this exact chunk had already been recorded (an idempotent retry). */
  created: boolean;
}

/** What happened, for observers such as metrics; the service works the same with none. */
export type ServiceEvent =
  | { type: 'created'; protocol: Protocol }
  | { type: 'received'; protocol: Protocol; bytes: number; seconds: number }
  | { type: 'completed'; protocol: Protocol; bytes: number; seconds: number }
  | { type: 'failed'; protocol: Protocol }
  | { type: 'storage_error' }
  | { type: 'expired' }
  | { type: 'aborted' };

export type EventSink = (event: ServiceEvent) => void;
