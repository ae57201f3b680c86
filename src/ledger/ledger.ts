import type { Statement, Transaction } from 'better-sqlite3';
import type { Db } from './database.js';
import { GroupCommit } from './group-commit.js';

export type UploadStatus = 'uploading' | 'finishing' | 'completed' | 'failed' | 'aborted' | 'expired';
export type Protocol = 'native' | 'tus';

/** Where a completed upload's bytes live; its shape depends on the storage backend. */
export type StoredLocation =
  | { backend: 'local'; path: string }
  | { backend: 's3'; bucket: string; key: string };

export interface Upload {
  id: string;
  owner: string;
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
  /** tus creation-defer-length: `size` is not known yet (and reads 0). */
  lengthDeferred: boolean;
  /** tus: the Upload-Metadata header as the client sent it, echoed on HEAD. */
  tusMetadata: string | null;
  /** tus concatenation: 'partial', or the final's Upload-Concat value ('final;...'). */
  concat: string | null;
  /** For a final upload: its partial uploads' ids, in order. */
  parts: string[] | null;
}

export interface Chunk {
  index: number;
  offset: number;
  length: number;
  sha256: string;
  receivedAt: number;
}

/**
 * Appended bytes (tus, IETF) recorded as one row. `sha256` is the SHA-256 of the file's bytes
 * [sha256From, offset + length): of the extent itself when `sha256From` equals `offset`, of the
 * whole file up to the extent's end when it is 0 (the append continued the running digest).
 */
export interface Extent {
  offset: number;
  length: number;
  sha256: string;
  sha256From: number;
}

export type NewUpload = Pick<
  Upload,
  'id' | 'owner' | 'protocol' | 'fileName' | 'contentType' | 'metadata' | 'size' | 'chunkSize' | 'totalChunks' | 'expectedSha256' | 'createdAt' | 'expiresAt'
> &
  Partial<Pick<Upload, 'lengthDeferred' | 'tusMetadata' | 'concat' | 'parts'>>;

/** Per-owner limits checked atomically with the insert of a new upload. */
export interface OwnerLimits {
  maxActive: number;
  quota: number | undefined;
}

/** Disk space seen just before creating: free bytes and the margin to keep. */
export interface DiskBudget {
  free: number;
  margin: number;
}

export type CreateResult =
  | { kind: 'created'; upload: Upload }
  | { kind: 'no_space'; outstanding: number; free: number }
  | { kind: 'too_many'; active: number }
  | { kind: 'over_quota'; reserved: number };

export type AppendResult =
  | { kind: 'recorded'; upload: Upload }
  | { kind: 'offset_moved'; upload: Upload }
  | { kind: 'not_writable'; upload: Upload | undefined }
  | { kind: 'over_quota'; reserved: number };

export type SetLengthResult = { kind: 'set' } | { kind: 'unchanged' } | { kind: 'over_quota'; reserved: number };

export type RecordChunkResult =
  | { kind: 'recorded'; upload: Upload }
  | { kind: 'duplicate'; upload: Upload }
  | { kind: 'conflict'; existing: Chunk }
  | { kind: 'not_writable'; upload: Upload | undefined };

interface UploadRow {
  id: string;
  owner: string;
  protocol: Protocol;
  file_name: string;
  content_type: string;
  metadata: string;
  size: number;
  chunk_size: number;
  total_chunks: number;
  expected_sha256: string | null;
  status: UploadStatus;
  chunks_received: number;
  bytes_received: number;
  sha256: string | null;
  location: string | null;
  failure: string | null;
  created_at: number;
  updated_at: number;
  expires_at: number;
  completed_at: number | null;
  length_deferred: number;
  tus_metadata: string | null;
  concat: string | null;
  parts: string | null;
}

interface ChunkRow {
  idx: number;
  offset: number;
  length: number;
  sha256: string;
  received_at: number;
}

function toUpload(row: UploadRow): Upload {
  return {
    id: row.id,
    owner: row.owner,
    protocol: row.protocol,
    fileName: row.file_name,
    contentType: row.content_type,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    size: row.size,
    chunkSize: row.chunk_size,
    totalChunks: row.total_chunks,
    expectedSha256: row.expected_sha256,
    status: row.status,
    chunksReceived: row.chunks_received,
    bytesReceived: row.bytes_received,
    sha256: row.sha256,
    location: row.location === null ? null : (JSON.parse(row.location) as StoredLocation),
    failure: row.failure,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at,
    completedAt: row.completed_at,
    lengthDeferred: row.length_deferred === 1,
    tusMetadata: row.tus_metadata,
    concat: row.concat,
    parts: row.parts === null ? null : (JSON.parse(row.parts) as string[]),
  };
}

/** The upload as bumpCounters leaves it (one more chunk of `length` bytes), without reading it again. */
function bumped(upload: Upload, length: number, now: number): Upload {
  return { ...upload, chunksReceived: upload.chunksReceived + 1, bytesReceived: upload.bytesReceived + length, updatedAt: now };
}

function toChunk(row: ChunkRow): Chunk {
  return { index: row.idx, offset: row.offset, length: row.length, sha256: row.sha256, receivedAt: row.received_at };
}

/**
 * The ledger: every upload's state and every received chunk, in SQLite. It is the source of truth
 * for offsets and progress; nothing is ever derived from the file system. State changes are guarded
 * in SQL (`UPDATE ... WHERE status = ?`) so that of two racing callers exactly one wins.
 */
export class Ledger {
  private readonly stmts: {
    insertUpload: Statement;
    getUpload: Statement<[string], UploadRow>;
    getChunk: Statement<[string, number], ChunkRow>;
    chunkIndexes: Statement<[string, number], { idx: number }>;
    insertChunk: Statement;
    bumpCounters: Statement;
    transition: Statement;
    complete: Statement;
    fail: Statement;
    deleteChunks: Statement<[string]>;
    listPage: Statement<[string, number, number, string, number], UploadRow>;
    listFirst: Statement<[string, number], UploadRow>;
    dueForExpiry: Statement<[number, number], { id: string }>;
    byStatus: Statement<[string], { id: string }>;
    insertExtent: Statement;
    extentOf: Statement<[string], Pick<UploadRow, 'protocol' | 'status' | 'size' | 'chunk_size' | 'total_chunks' | 'bytes_received'>>;
    hasChunk: Statement<[string, number], { one: number }>;
    setLength: Statement;
    finalsUsing: Statement<[string], { id: string }>;
    awaitingPublish: Statement<[], { id: string }>;
    terminateCompleted: Statement;
    consumePartial: Statement;
    usage: Statement<[string], { active: number; reserved: number }>;
    outstanding: Statement<[], { outstanding: number }>;
    activeStats: Statement<[], { active: number; stagedBytes: number }>;
  };

  // Created once rather than per call (it showed in per-chunk profiles; BENCHMARKS.md item 13).
  private readonly recordChunkTx: Transaction<(uploadId: string, chunk: Chunk) => RecordChunkResult>;
  private readonly recordExtentTx: Transaction<(uploadId: string, extent: Extent, now: number, quota: number | undefined) => AppendResult>;
  private readonly setLengthTx: Transaction<(id: string, size: number, now: number, quota: number | undefined) => SetLengthResult>;
  private readonly group: GroupCommit;

  constructor(private readonly db: Db) {
    this.group = new GroupCommit(db);
    this.setLengthTx = db.transaction((id: string, size: number, now: number, quota: number | undefined): SetLengthResult => {
      const upload = this.getUpload(id);
      if (upload && upload.lengthDeferred && quota !== undefined) {
        // From now on the upload reserves its whole length instead of the bytes it holds.
        const reserved = this.reserved(upload.owner);
        if (reserved - upload.bytesReceived + size > quota) return { kind: 'over_quota', reserved };
      }
      return this.stmts.setLength.run({ id, size, now }).changes === 1 ? { kind: 'set' } : { kind: 'unchanged' };
    });
    this.stmts = {
      insertUpload: db.prepare(`
        INSERT INTO uploads (id, owner, protocol, file_name, content_type, metadata, size, chunk_size, total_chunks,
                             expected_sha256, status, created_at, updated_at, expires_at,
                             length_deferred, tus_metadata, concat, parts)
        VALUES (@id, @owner, @protocol, @fileName, @contentType, @metadata, @size, @chunkSize, @totalChunks,
                @expectedSha256, 'uploading', @createdAt, @createdAt, @expiresAt,
                @lengthDeferred, @tusMetadata, @concat, @parts)`),
      getUpload: db.prepare('SELECT * FROM uploads WHERE id = ?'),
      getChunk: db.prepare('SELECT idx, offset, length, sha256, received_at FROM chunks WHERE upload_id = ? AND idx = ?'),
      extentOf: db.prepare('SELECT protocol, status, size, chunk_size, total_chunks, bytes_received FROM uploads WHERE id = ?'),
      hasChunk: db.prepare('SELECT 1 AS one FROM chunks WHERE upload_id = ? AND idx = ?'),
      chunkIndexes: db.prepare('SELECT idx FROM chunks WHERE upload_id = ? AND idx >= ? ORDER BY idx'),
      insertChunk: db.prepare(`
        INSERT INTO chunks (upload_id, idx, offset, length, sha256, received_at)
        VALUES (@uploadId, @index, @offset, @length, @sha256, @receivedAt)`),
      bumpCounters: db.prepare(`
        UPDATE uploads SET chunks_received = chunks_received + 1, bytes_received = bytes_received + @length,
                           updated_at = @now
        WHERE id = @id AND status = 'uploading'`),
      transition: db.prepare(`
        UPDATE uploads SET status = @to, updated_at = @now, failure = COALESCE(@failure, failure)
        WHERE id = @id AND status = @from`),
      complete: db.prepare(`
        UPDATE uploads SET status = 'completed', sha256 = @sha256, location = @location, updated_at = @now,
                           completed_at = @now, failure = NULL
        WHERE id = @id AND status = 'finishing'`),
      fail: db.prepare(`
        UPDATE uploads SET status = 'failed', failure = @failure, updated_at = @now
        WHERE id = @id AND status = 'finishing'`),
      deleteChunks: db.prepare('DELETE FROM chunks WHERE upload_id = ?'),
      listFirst: db.prepare(`
        SELECT * FROM uploads WHERE owner = ? ORDER BY created_at DESC, id DESC LIMIT ?`),
      listPage: db.prepare(`
        SELECT * FROM uploads WHERE owner = ? AND (created_at < ? OR (created_at = ? AND id < ?))
        ORDER BY created_at DESC, id DESC LIMIT ?`),
      dueForExpiry: db.prepare(`
        SELECT id FROM uploads WHERE status = 'uploading' AND expires_at <= ? ORDER BY expires_at LIMIT ?`),
      byStatus: db.prepare('SELECT id FROM uploads WHERE status = ?'),
      insertExtent: db.prepare(`
        INSERT INTO chunks (upload_id, idx, offset, length, sha256, sha256_from, received_at)
        SELECT id, chunks_received, bytes_received, @length, @sha256, @sha256From, @now FROM uploads WHERE id = @id`),
      setLength: db.prepare(`
        UPDATE uploads SET size = @size, length_deferred = 0, chunk_size = MAX(@size, 1), updated_at = @now
        WHERE id = @id AND length_deferred = 1 AND bytes_received <= @size AND status = 'uploading'`),
      finalsUsing: db.prepare(`
        SELECT id FROM uploads WHERE concat LIKE 'final%' AND status = 'uploading' AND instr(parts, '"' || ? || '"') > 0`),
      awaitingPublish: db.prepare(`
        SELECT id FROM uploads WHERE protocol = 'tus' AND status = 'uploading' AND length_deferred = 0
          AND ((concat IS NULL AND bytes_received = size) OR concat LIKE 'final%')`),
      // A final upload's bytes are its partials': count them once. An upload whose length is not
      // known yet (tus Upload-Defer-Length) holds the bytes it has received.
      usage: db.prepare(`
        SELECT COUNT(*) AS active,
               COALESCE(SUM(CASE WHEN concat LIKE 'final%' THEN 0 WHEN length_deferred = 1 THEN bytes_received ELSE size END), 0) AS reserved
        FROM uploads WHERE owner = ? AND status IN ('uploading', 'finishing')`),
      // Bytes promised to unfinished uploads but not yet written: staging files are sparse, so
      // statfs does not count them yet. Finals hold no bytes of their own.
      outstanding: db.prepare(`
        SELECT COALESCE(SUM(size - bytes_received), 0) AS outstanding FROM uploads
        WHERE status IN ('uploading', 'finishing') AND length_deferred = 0 AND (concat IS NULL OR concat = 'partial')`),
      activeStats: db.prepare(`
        SELECT COUNT(*) AS active, COALESCE(SUM(bytes_received), 0) AS stagedBytes FROM uploads
        WHERE status IN ('uploading', 'finishing')`),
      consumePartial: db.prepare(`
        UPDATE uploads SET status = 'completed', location = @location, updated_at = @now, completed_at = @now
        WHERE id = @id AND status = 'uploading' AND concat = 'partial'`),
      terminateCompleted: db.prepare(`
        UPDATE uploads SET status = 'aborted', updated_at = @now WHERE id = @id AND status = 'completed'`),
    };
    this.recordChunkTx = db.transaction((uploadId: string, chunk: Chunk): RecordChunkResult => {
      const upload = this.getUpload(uploadId);
      if (!upload || upload.status !== 'uploading') return { kind: 'not_writable', upload };
      const existing = this.getChunk(uploadId, chunk.index);
      if (existing) {
        return existing.sha256 === chunk.sha256 ? { kind: 'duplicate', upload } : { kind: 'conflict', existing };
      }
      this.stmts.insertChunk.run({ uploadId, ...chunk });
      this.stmts.bumpCounters.run({ id: uploadId, length: chunk.length, now: chunk.receivedAt });
      return { kind: 'recorded', upload: bumped(upload, chunk.length, chunk.receivedAt) };
    });
    this.recordExtentTx = db.transaction((uploadId: string, extent: Extent, now: number, quota: number | undefined): AppendResult => {
      const upload = this.getUpload(uploadId);
      if (!upload || upload.status !== 'uploading') return { kind: 'not_writable', upload };
      if (upload.bytesReceived !== extent.offset) return { kind: 'offset_moved', upload };
      // Bytes of an upload without a length count against the quota as they arrive; checked here,
      // in the transaction, so that two such uploads appending at once cannot overshoot together.
      if (upload.lengthDeferred && quota !== undefined) {
        const reserved = this.reserved(upload.owner);
        if (reserved + extent.length > quota) return { kind: 'over_quota', reserved };
      }
      const sha256From = extent.sha256From === extent.offset ? null : extent.sha256From;
      this.stmts.insertExtent.run({ id: uploadId, length: extent.length, sha256: extent.sha256, sha256From, now });
      this.stmts.bumpCounters.run({ id: uploadId, length: extent.length, now });
      return { kind: 'recorded', upload: bumped(upload, extent.length, now) };
    });
  }

  createUpload(u: NewUpload): Upload {
    this.stmts.insertUpload.run({
      ...u,
      metadata: JSON.stringify(u.metadata),
      lengthDeferred: u.lengthDeferred ? 1 : 0,
      tusMetadata: u.tusMetadata ?? null,
      concat: u.concat ?? null,
      parts: u.parts ? JSON.stringify(u.parts) : null,
    });
    return this.getUpload(u.id) as Upload;
  }

  /**
   * Creates an upload unless its owner already has `maxActive` unfinished uploads, the new one
   * would take their reserved bytes past `quota`, or the disk cannot hold it next to every other
   * outstanding reservation; check and insert are one transaction, so that concurrent creations
   * cannot overshoot together.
   */
  createWithin(u: NewUpload, limits: OwnerLimits, disk?: DiskBudget): CreateResult {
    return this.db.transaction((): CreateResult => {
      if (disk && !u.parts) {
        const { outstanding } = this.stmts.outstanding.get() as { outstanding: number };
        if (disk.free - outstanding - disk.margin < u.size) return { kind: 'no_space', outstanding, free: disk.free };
      }
      const usage = this.stmts.usage.get(u.owner) as { active: number; reserved: number };
      if (usage.active >= limits.maxActive) return { kind: 'too_many', active: usage.active };
      const adds = u.parts ? 0 : u.size;
      if (limits.quota !== undefined && usage.reserved + adds > limits.quota) return { kind: 'over_quota', reserved: usage.reserved };
      return { kind: 'created', upload: this.createUpload(u) };
    }).immediate();
  }

  getUpload(id: string): Upload | undefined {
    const row = this.stmts.getUpload.get(id);
    return row && toUpload(row);
  }

  getChunk(uploadId: string, index: number): Chunk | undefined {
    const row = this.stmts.getChunk.get(uploadId, index);
    return row && toChunk(row);
  }

  /**
   * Records a durable, verified chunk. In one transaction: the upload must still be `uploading`;
   * an existing row for the same index is a duplicate (same hash) or a conflict (other hash).
   * Committed together with the other writes requested in the same turn of the event loop (one
   * WAL fsync for all of them); settles once that commit is durable.
   */
  recordChunk(uploadId: string, chunk: Chunk): Promise<RecordChunkResult> {
    return this.group.run(() => this.recordChunkTx(uploadId, chunk));
  }

  /**
   * Records bytes appended at the upload's current end (tus). The append is refused when the offset
   * moved meanwhile (someone else appended) or the upload stopped accepting bytes. Group-committed
   * like `recordChunk`.
   */
  recordExtent(uploadId: string, extent: Extent, now: number, quota?: number): Promise<AppendResult> {
    return this.group.run(() => this.recordExtentTx(uploadId, extent, now, quota));
  }

  /** Bytes the owner's unfinished uploads reserve (what USER_QUOTA limits). */
  reserved(owner: string): number {
    return (this.stmts.usage.get(owner) as { reserved: number }).reserved;
  }

  /** Group commits so far and the writes they carried (see `GroupCommit`). */
  commitStats(): { commits: number; writes: number } {
    return { ...this.group.stats };
  }

  /**
   * Where the recorded bytes from byte `from` on stop being contiguous: the received length of an
   * upload that grows at its end, the end of the run of recorded chunks of a native one; 0 for an
   * upload that no longer takes bytes. Reads only the columns it needs (it runs for every chunk).
   */
  recordedUntil(id: string, from: number): number {
    const u = this.stmts.extentOf.get(id);
    if (!u || (u.status !== 'uploading' && u.status !== 'finishing')) return 0;
    if (u.protocol !== 'native') return u.bytes_received;
    let index = Math.floor(from / u.chunk_size);
    while (index < u.total_chunks && this.stmts.hasChunk.get(id, index)) index++;
    return Math.min(index * u.chunk_size, u.size);
  }

  /**
   * Fixes a deferred length once it is known: `unchanged` when it was already set or is too small,
   * `over_quota` when the owner's reservations would pass `quota`.
   */
  setLength(id: string, size: number, now: number, quota?: number): SetLengthResult {
    return this.setLengthTx.immediate(id, size, now, quota);
  }

  /** How many uploads are unfinished and how many bytes they hold in staging (for metrics). */
  activeStats(): { active: number; stagedBytes: number } {
    return this.stmts.activeStats.get() as { active: number; stagedBytes: number };
  }

  /** Final uploads (still uploading) that concatenate this partial upload. */
  finalsUsing(partialId: string): string[] {
    return this.stmts.finalsUsing.all(partialId).map((r) => r.id);
  }

  /** tus uploads that have every byte but are not published yet (a crash or a store outage). */
  awaitingPublish(): string[] {
    return this.stmts.awaitingPublish.all().map((r) => r.id);
  }

  /** A partial upload whose bytes are now part of a published final upload (at `location`). */
  consumePartial(id: string, location: StoredLocation, now: number): void {
    this.stmts.consumePartial.run({ id, location: JSON.stringify(location), now });
  }

  /** tus termination of a completed upload: it becomes `aborted` (its stored file is removed). */
  terminateCompleted(id: string, now: number): boolean {
    return this.stmts.terminateCompleted.run({ id, now }).changes === 1;
  }

  /**
   * Indexes in [from, totalChunks) with no chunk row, ascending, at most `limit`; walks the
   * primary key from `from` and stops as soon as the page is full.
   */
  missingChunks(uploadId: string, totalChunks: number, limit = Number.POSITIVE_INFINITY, from = 0): number[] {
    const missing: number[] = [];
    let next = from;
    for (const { idx } of this.stmts.chunkIndexes.iterate(uploadId, from)) {
      while (next < idx && missing.length < limit) missing.push(next++);
      if (missing.length >= limit) return missing;
      next = idx + 1;
    }
    while (next < totalChunks && missing.length < limit) missing.push(next++);
    return missing;
  }

  /** Moves an upload from one state to another; false when it was not in `from` (someone else won). */
  transition(id: string, from: UploadStatus, to: UploadStatus, now: number, failure: string | null = null): boolean {
    return this.stmts.transition.run({ id, from, to, now, failure }).changes === 1;
  }

  markCompleted(id: string, sha256: string, location: StoredLocation, now: number): boolean {
    return this.stmts.complete.run({ id, sha256, location: JSON.stringify(location), now }).changes === 1;
  }

  markFailed(id: string, failure: string, now: number): boolean {
    return this.stmts.fail.run({ id, failure, now }).changes === 1;
  }

  deleteChunks(id: string): void {
    this.stmts.deleteChunks.run(id);
  }

  /** One page of an owner's uploads, newest first, using keyset pagination on (created_at, id). */
  listUploads(owner: string, limit: number, after?: { createdAt: number; id: string }): Upload[] {
    const rows = after
      ? this.stmts.listPage.all(owner, after.createdAt, after.createdAt, after.id, limit)
      : this.stmts.listFirst.all(owner, limit);
    return rows.map(toUpload);
  }

  /** Ids of uploads still `uploading` whose expiry time has passed. */
  dueForExpiry(now: number, limit: number): string[] {
    return this.stmts.dueForExpiry.all(now, limit).map((r) => r.id);
  }

  idsWithStatus(status: UploadStatus): string[] {
    return this.stmts.byStatus.all(status).map((r) => r.id);
  }
}
