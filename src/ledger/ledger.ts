/**
 * The ledger: every upload's state and every received byte range. It is the source of truth for
 * offsets and progress (nothing is ever derived from the file system or a store), and every state
 * change is guarded by the state it expects, so that of two racing callers exactly one wins.
 *
 * This file is the contract; `sqlite-ledger.ts` is the embedded implementation. Every method
 * returns a promise, so that a ledger on a database server can implement the same interface.
 */

import type { EventLedger } from './ledger-events.js';

export type * from './ledger-events.js';

/**
 * `processing`: the file is stored and a post-processor (POST_PROCESS_URL) has not answered yet;
 * it becomes `completed` or `failed` by that answer.
 */
export type UploadStatus = 'uploading' | 'finishing' | 'processing' | 'completed' | 'failed' | 'aborted' | 'expired';

/** Every byte is in and the file is stored (its post-processor may still be working on it). */
export function isStored(upload: Pick<Upload, 'status'>): boolean {
  return upload.status === 'completed' || upload.status === 'processing';
}

/**
 * How an upload's bytes arrive: `grid` - fixed-size chunks at known offsets, in any order;
 * `stream` - appended at the current end, in order (a length may be unknown until the end).
 */
export type Layout = 'grid' | 'stream';

/** The API an upload was created through; only for display and metrics, never for behaviour. */
export type Protocol = 'native' | 'tus' | 'ietf';

/** Where a completed upload's bytes live; its shape depends on the storage backend. */
export type StoredLocation = { backend: 'local'; path: string } | { backend: 's3'; bucket: string; key: string };

export interface Upload {
  id: string;
  owner: string;
  layout: Layout;
  protocol: Protocol;
  fileName: string;
  contentType: string;
  metadata: Record<string, string>;
  size: number;
  chunkSize: number;
  totalChunks: number;
  expectedSha256: string | null;
  status: UploadStatus;
  chunksReceived: number;
  bytesReceived: number;
  sha256: string | null;
  location: StoredLocation | null;
  failure: string | null;
  createdAt: number;
  updatedAt: number;
  expiresAt: number;
  completedAt: number | null;
  /** `size` is not known yet (and reads 0): a stream upload whose client tells it at the end. */
  lengthDeferred: boolean;
  /**
   * Request fields the client's protocol says are echoed back exactly as sent (header name ->
   * value); kept for the adapter, never interpreted here.
   */
  echo: Record<string, string> | null;
  /** This upload is a part of a composed upload (its bytes are published as part of another). */
  isPart: boolean;
  /** For a composed upload: the ids of its parts, in order; it has no bytes of its own. */
  parts: string[] | null;
  /**
   * `server`: the bytes come through this server; `direct`: the client sends them straight to the
   * store (its own part URLs), and reports each part it sent.
   */
  transfer: Transfer;
  /** A direct upload's multipart upload in the store (the store's own reference, never read here). */
  multipart: string | null;
  /**
   * A stream upload staged in the store: the store's object holding the bytes past its last whole
   * part (null when the bytes end on a part boundary).
   */
  tail: string | null;
  /** A post-processor's answer: what it made (`outputs`) or why it failed (`message`). */
  processing: ProcessingResult | null;
  /** The node that created it, on a shared ledger; its bytes are on that node's disk unless staged in the store. */
  node: string | null;
}

export interface ProcessingResult {
  status: 'completed' | 'failed';
  outputs?: Record<string, unknown> | undefined;
  message?: string | undefined;
}

export type Transfer = 'server' | 'direct';

export type FileChange = Partial<Pick<Upload, 'fileName' | 'contentType' | 'metadata'>>;

/** What GET /v1/files filters on: every given condition holds. */
export interface FileFilter {
  contentType?: string | undefined;
  /** Metadata key = value pairs, all of which the file has. */
  metadata?: [string, string][] | undefined;
  createdAfter?: number | undefined;
  createdBefore?: number | undefined;
}

/** A part of a direct upload: what the client reported sending (`etag`), or only declared. */
export interface DirectPart {
  index: number;
  length: number;
  /** The SHA-256 the client declared before sending (signed into its URL), lowercase hex. */
  declaredSha256: string | null;
  /** The store's ETag for the part, once the client reported it; null while only declared. */
  etag: string | null;
  /** The part's SHA-256 as the client reported it. */
  sha256: string | null;
  reportedAt: number | null;
}

export type ReportPartResult =
  | { kind: 'recorded'; upload: Upload }
  /** The same part reported again (sent again: the store keeps the last one). */
  | { kind: 'replaced'; upload: Upload }
  | { kind: 'not_writable'; upload: Upload | undefined };

/** The parts of direct uploads (`transfer: direct`); part `index` is the store's part number - 1. */
export interface PartLedger {
  /** Records SHA-256s a client declared for parts it is about to send (kept for their URLs). */
  declare(uploadId: string, parts: { index: number; length: number; sha256: string }[]): Promise<void>;
  /** Records a sent part: counted once, guarded by `uploading`; a repeat replaces its ETag. */
  report(uploadId: string, part: { index: number; length: number; etag: string; sha256: string | null }, now: number): Promise<ReportPartResult>;
  /** Parts from `from` on, ascending, at most `limit`. */
  list(uploadId: string, from: number, limit: number): Promise<DirectPart[]>;
  /** Indexes below `total` not reported yet, ascending, from `from` on, at most `limit`. */
  missing(uploadId: string, total: number, limit: number, from?: number): Promise<number[]>;
  /**
   * A finish that found damaged parts: `finishing` -> `uploading` on a new multipart upload, with
   * only `kept` reported (their ETags in the new one); every other part must be sent again.
   */
  restart(uploadId: string, multipart: string, kept: { index: number; etag: string }[], now: number, failure: string): Promise<boolean>;
}

export interface Chunk {
  index: number;
  offset: number;
  length: number;
  sha256: string;
  receivedAt: number;
}

/** Bytes appended at a stream upload's end, durable and recorded as one row. */
export interface Extent {
  offset: number;
  length: number;
}

export type NewUpload = Pick<
  Upload,
  | 'id'
  | 'owner'
  | 'layout'
  | 'protocol'
  | 'fileName'
  | 'contentType'
  | 'metadata'
  | 'size'
  | 'chunkSize'
  | 'totalChunks'
  | 'expectedSha256'
  | 'createdAt'
  | 'expiresAt'
> &
  Partial<Pick<Upload, 'lengthDeferred' | 'echo' | 'isPart' | 'parts' | 'transfer' | 'multipart' | 'node'>>;

/** Per-owner limits checked atomically with the insert of a new upload. */
export interface OwnerLimits {
  maxActive: number;
  quota: number | undefined;
}

/** Disk space seen just before creating: free bytes and the margin to keep. */
export interface DiskBudget {
  free: number;
  margin: number;
  /** The store makes a local copy of a composed upload's parts: it needs room of its own. */
  copies: boolean;
}

/**
 * Checked inside the recording transaction, just before the write: false when the writer lost its
 * lease (it was taken over), so that a fenced writer can never record anything.
 */
export type Fence = () => boolean;

export type CreateResult =
  | { kind: 'created'; upload: Upload }
  | { kind: 'no_space'; outstanding: number; free: number }
  | { kind: 'too_many'; active: number }
  | { kind: 'part_in_use'; part: string }
  | { kind: 'over_quota'; reserved: number };

/** What one append to a stream upload staged in the store leaves behind (see recordStaged). */
export interface StagedAppend {
  extent: Extent;
  parts: { index: number; length: number; etag: string; sha256: string }[];
  tail: string | null;
}

export type AppendResult =
  | { kind: 'recorded'; upload: Upload }
  | { kind: 'offset_moved'; upload: Upload }
  | { kind: 'not_writable'; upload: Upload | undefined }
  | { kind: 'fenced' }
  | { kind: 'over_quota'; reserved: number };

export type SetLengthResult = { kind: 'set' } | { kind: 'unchanged' } | { kind: 'over_quota'; reserved: number };

export type RecordChunkResult =
  | { kind: 'recorded'; upload: Upload }
  | { kind: 'duplicate'; upload: Upload }
  | { kind: 'conflict'; existing: Chunk }
  | { kind: 'fenced' }
  | { kind: 'not_writable'; upload: Upload | undefined };

/** What `discard` does: the guarded move and the note kept with it. */
export interface Discard {
  from: UploadStatus;
  to: 'aborted' | 'expired' | 'failed';
  now: number;
  failure?: string;
}

export interface Ledger {
  /** The parts of direct uploads. */
  readonly parts: PartLedger;
  /** The event outbox and its webhook deliveries (ledger-events.ts). */
  readonly events: EventLedger;
  /**
   * Creates an upload unless its owner already has `limits.maxActive` unfinished uploads, the new
   * one would take their reservations past `limits.quota`, or the disk cannot hold it next to every
   * other outstanding reservation. Check and insert are atomic.
   */
  create(u: NewUpload, limits: OwnerLimits, disk?: DiskBudget): Promise<CreateResult>;
  get(id: string): Promise<Upload | undefined>;
  getChunk(uploadId: string, index: number): Promise<Chunk | undefined>;
  /**
   * Records a durable, verified chunk of a grid upload, atomically: the upload must still be
   * `uploading` and `fence` true; an existing row for the index is a duplicate (same SHA-256) or a
   * conflict. Settles only once the write is durable.
   */
  recordChunk(uploadId: string, chunk: Chunk, fence: Fence): Promise<RecordChunkResult>;
  /**
   * Records durable bytes appended at a stream upload's end: refused when the offset moved, the
   * upload stopped taking bytes, the fence fails, or (a deferred length) the owner's quota would be
   * passed. Settles only once the write is durable.
   */
  recordExtent(uploadId: string, extent: Extent, now: number, quota: number | undefined, fence: Fence): Promise<AppendResult>;
  /**
   * Records bytes appended to a stream upload staged in the store (STAGING_BACKEND=s3): the end
   * moves from `extent.offset` by `extent.length`, the whole `parts` the store now holds are
   * added, and `tail` (or null) becomes the object that holds the bytes past them - one guarded
   * transaction, refused as `recordExtent` is.
   */
  recordStaged(uploadId: string, staged: StagedAppend, now: number, quota: number | undefined, fence: Fence): Promise<AppendResult>;
  /** Fixes a deferred length: `unchanged` when already set or too small. */
  setLength(id: string, size: number, now: number, quota: number | undefined): Promise<SetLengthResult>;
  /** Bytes the owner's unfinished uploads reserve (what USER_QUOTA limits). */
  reserved(owner: string): Promise<number>;
  /** Where the recorded bytes from `from` on stop being contiguous (0 when it takes no bytes). */
  recordedUntil(id: string, from: number): Promise<number>;
  /** Indexes in [from, totalChunks) with no chunk, ascending, at most `limit`. */
  missingChunks(uploadId: string, totalChunks: number, limit?: number, from?: number): Promise<number[]>;
  /** Moves an upload from one state to another; false when it was not in `from`. */
  transition(id: string, from: UploadStatus, to: UploadStatus, now: number, failure?: string | null): Promise<boolean>;
  /**
   * Moves an upload out of `from` and forgets every byte range it had, in one transaction: its
   * reservations end with the state. False when it was not in `from` (nothing changed).
   */
  discard(id: string, how: Discard): Promise<boolean>;
  /** A page of a grid upload's recorded chunks from index `from` on, ascending. */
  chunks(uploadId: string, from: number, limit: number): Promise<Chunk[]>;
  /**
   * A `finishing` upload whose chunks `indexes` were found damaged at rest: back to `uploading`
   * without them (their rows and their bytes in the counters go), in one transaction.
   */
  reopenWithout(id: string, indexes: number[], now: number, failure: string): Promise<boolean>;
  /**
   * `finishing` -> `completed` at `location` (or -> `processing`, stored but waiting for its
   * post-processor); a composed upload's parts are consumed with it.
   */
  complete(id: string, sha256: string, location: StoredLocation, now: number, processing?: boolean): Promise<boolean>;
  /** A post-processor's answer: `processing` -> `completed` or `failed`, keeping the answer. */
  processed(id: string, result: ProcessingResult, now: number): Promise<boolean>;
  /** A stored file's name, type or metadata changed (completed or processing uploads only). */
  updateFile(id: string, change: FileChange, now: number): Promise<Upload | undefined>;
  /** A completed (or processing) upload whose stored file is being deleted: -> `aborted`. */
  terminateCompleted(id: string, now: number): Promise<boolean>;
  /** One page of an owner's uploads, newest first (keyset on created_at, id); parts of a composed upload are left out (it lists them). */
  list(owner: string, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]>;
  /** One page of an owner's stored files (completed uploads), newest first, that pass `filter`. */
  listFiles(owner: string, filter: FileFilter, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]>;
  /**
   * Ids of uploads still `uploading` whose expiry time has passed. With `node`, only those this
   * node may expire: its own, any staged in the store, and those of nodes not seen since `deadBefore`.
   */
  dueForExpiry(now: number, limit: number, node?: { id: string; deadBefore: number }): Promise<string[]>;
  /** With `node`: only uploads of that node, or of none (what its start-up reconciliation settles). */
  idsWithStatus(status: UploadStatus, node?: string): Promise<string[]>;
  /** Uploads staged in the store left `finishing` by a node not seen since `deadBefore` (another node takes them over). */
  abandonedFinishing(deadBefore: number): Promise<string[]>;
  /** Records that a node is alive at `url` (several nodes on one ledger). */
  heartbeat(node: string, url: string | undefined, now: number): Promise<void>;
  /** Where a node is, and when it was last seen. */
  nodeInfo(node: string): Promise<{ url: string | null; seenAt: number } | undefined>;
  /** Composed uploads (still uploading) that include this part. */
  composedOf(partId: string): Promise<string[]>;
  /** Stream and composed uploads that have every byte but are not published yet (with `node`: its own, or of none). */
  awaitingPublish(node?: string): Promise<string[]>;
  /** How many uploads are unfinished and how many bytes they hold in staging (for metrics). */
  activeStats(): Promise<{ active: number; stagedBytes: number }>;
  /** Group commits so far and the writes they carried. */
  commitStats(): { commits: number; writes: number };
  /** Keeps the database's own files bounded (the sweeper calls it). */
  maintain(): Promise<void>;
  /** Whether the database answers (for /healthz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
