import type { Statement, Transaction } from 'better-sqlite3';
import { checkpoint, type Db } from './database.js';
import { GroupCommit } from './group-commit.js';
import { ENTERED } from './event-data.js';
import { fileQuery } from './file-query.js';
import { SQL } from './sqlite-statements.js';
import { SqliteEvents } from './sqlite-events.js';
import { SqliteParts } from './sqlite-parts.js';
import { type ChunkRow, type UploadRow, bumped, toChunk, toUpload } from './sqlite-rows.js';
import type {
  AppendResult,
  Chunk,
  CreateResult,
  Discard,
  DiskBudget,
  Extent,
  Fence,
  FileChange,
  FileFilter,
  Ledger,
  NewUpload,
  OwnerLimits,
  ProcessingResult,
  RecordChunkResult,
  SetLengthResult,
  StagedAppend,
  StoredLocation,
  Upload,
  UploadStatus,
} from './ledger.js';

type Stmts = { [K in keyof typeof SQL]: Statement };

/**
 * The embedded ledger: SQLite through better-sqlite3 (synchronous; each call is short and local).
 * Chunk and extent records of one event-loop turn share one transaction and one WAL fsync
 * (group-commit.ts); every other write is its own transaction.
 */
export class SqliteLedger implements Ledger {
  private readonly s: Stmts;
  private readonly group: GroupCommit;
  readonly parts: SqliteParts;
  readonly events: SqliteEvents;
  // Created once rather than per call (it showed in per-chunk profiles; BENCHMARKS.md item 13).
  private readonly recordChunkTx: Transaction<(id: string, chunk: Chunk, fence: Fence) => RecordChunkResult>;
  private readonly recordExtentTx: Transaction<(id: string, extent: Extent, now: number, quota: number | undefined, fence: Fence) => AppendResult>;
  private readonly recordStagedTx: Transaction<(id: string, staged: StagedAppend, now: number, quota: number | undefined, fence: Fence) => AppendResult>;
  private readonly setLengthTx: Transaction<(id: string, size: number, now: number, quota: number | undefined) => SetLengthResult>;
  private readonly createTx: Transaction<(u: NewUpload, limits: OwnerLimits, disk: DiskBudget | undefined) => CreateResult>;
  private readonly discardTx: Transaction<(id: string, how: Discard) => boolean>;
  private readonly completeTx: Transaction<(id: string, sha256: string, location: StoredLocation, now: number, processing: boolean) => boolean>;
  private readonly reopenTx: Transaction<(id: string, indexes: number[], now: number, failure: string) => boolean>;
  private readonly transitionTx: Transaction<(id: string, from: UploadStatus, to: UploadStatus, now: number, failure: string | null) => boolean>;
  private readonly processedTx: Transaction<(id: string, result: ProcessingResult, now: number) => boolean>;
  private readonly updateFileTx: Transaction<(id: string, change: FileChange, now: number) => Upload | undefined>;
  private readonly terminateTx: Transaction<(id: string, now: number) => boolean>;

  /** `progressIntervalMs`: an `upload.progress` event at most this often per upload (0: none). */
  constructor(
    readonly db: Db,
    opts: { progressIntervalMs?: number } = {},
  ) {
    this.group = new GroupCommit(db);
    this.s = Object.fromEntries(Object.entries(SQL).map(([k, sql]) => [k, db.prepare(sql)])) as Stmts;
    this.events = new SqliteEvents(db, { progressIntervalMs: opts.progressIntervalMs ?? 0 });
    this.parts = new SqliteParts(db, this.group, (id) => this.read(id));
    this.recordChunkTx = db.transaction((id: string, chunk: Chunk, fence: Fence): RecordChunkResult => {
      if (!fence()) return { kind: 'fenced' };
      const upload = this.read(id);
      if (!upload || upload.status !== 'uploading') return { kind: 'not_writable', upload };
      const existing = this.readChunk(id, chunk.index);
      if (existing) return existing.sha256 === chunk.sha256 ? { kind: 'duplicate', upload } : { kind: 'conflict', existing };
      this.s.insertChunk.run({ uploadId: id, ...chunk });
      this.s.bumpCounters.run({ id, length: chunk.length, now: chunk.receivedAt });
      const after = bumped(upload, chunk.length, chunk.receivedAt);
      this.progress(after, chunk.receivedAt);
      return { kind: 'recorded', upload: after };
    });
    this.recordExtentTx = db.transaction((id: string, extent: Extent, now: number, quota: number | undefined, fence: Fence): AppendResult => {
      if (!fence()) return { kind: 'fenced' };
      const upload = this.read(id);
      if (!upload || upload.status !== 'uploading') return { kind: 'not_writable', upload };
      if (upload.bytesReceived !== extent.offset) return { kind: 'offset_moved', upload };
      // Bytes of an upload without a length count against the quota as they arrive; checked here,
      // in the transaction, so that two such uploads appending at once cannot overshoot together.
      if (upload.lengthDeferred && quota !== undefined) {
        const reserved = this.usage(upload.owner).reserved;
        if (reserved + extent.length > quota) return { kind: 'over_quota', reserved };
      }
      this.s.insertExtent.run({ id, length: extent.length, now });
      this.s.bumpCounters.run({ id, length: extent.length, now });
      const after = bumped(upload, extent.length, now);
      this.progress(after, now);
      return { kind: 'recorded', upload: after };
    });
    this.recordStagedTx = db.transaction((id: string, staged: StagedAppend, now: number, quota: number | undefined, fence: Fence): AppendResult => {
      if (!fence()) return { kind: 'fenced' };
      const { extent } = staged;
      const upload = this.read(id);
      if (!upload || upload.status !== 'uploading' || upload.multipart === null) return { kind: 'not_writable', upload };
      if (upload.bytesReceived !== extent.offset) return { kind: 'offset_moved', upload };
      if (upload.lengthDeferred && quota !== undefined) {
        const reserved = this.usage(upload.owner).reserved;
        if (reserved + extent.length > quota) return { kind: 'over_quota', reserved };
      }
      for (const part of staged.parts) this.s.insertStagedPart.run({ id, ...part, now });
      this.s.advanceStaged.run({ id, length: extent.length, parts: staged.parts.length, tail: staged.tail, now });
      const after = this.read(id) as Upload;
      this.progress(after, now);
      return { kind: 'recorded', upload: after };
    });
    this.setLengthTx = db.transaction((id: string, size: number, now: number, quota: number | undefined): SetLengthResult => {
      const upload = this.read(id);
      if (upload && upload.lengthDeferred && quota !== undefined) {
        // From now on the upload reserves its whole length instead of the bytes it holds.
        const reserved = this.usage(upload.owner).reserved;
        if (reserved - upload.bytesReceived + size > quota) return { kind: 'over_quota', reserved };
      }
      return this.s.setLength.run({ id, size, now }).changes === 1 ? { kind: 'set' } : { kind: 'unchanged' };
    });
    this.createTx = db.transaction((u: NewUpload, limits: OwnerLimits, disk: DiskBudget | undefined): CreateResult => {
      // A part belongs to one composed upload at a time (checked here, where no other create can
      // slip in between the check and the insert).
      for (const part of u.parts ?? []) {
        if (this.s.composedOf.get(part)) return { kind: 'part_in_use', part };
      }
      if (disk && (!u.parts || disk.copies)) {
        const { outstanding } = this.s.outstanding.get({ copies: disk.copies ? 1 : 0 }) as { outstanding: number };
        if (disk.free - outstanding - disk.margin < u.size) return { kind: 'no_space', outstanding, free: disk.free };
      }
      const usage = this.usage(u.owner);
      if (usage.active >= limits.maxActive) return { kind: 'too_many', active: usage.active };
      const adds = u.parts ? 0 : u.size;
      if (limits.quota !== undefined && usage.reserved + adds > limits.quota) return { kind: 'over_quota', reserved: usage.reserved };
      this.s.insertUpload.run({
        ...u,
        metadata: JSON.stringify(u.metadata),
        lengthDeferred: u.lengthDeferred ? 1 : 0,
        echo: u.echo ? JSON.stringify(u.echo) : null,
        isPart: u.isPart ? 1 : 0,
        parts: u.parts ? JSON.stringify(u.parts) : null,
        transfer: u.transfer ?? 'server',
        multipart: u.multipart ?? null,
        node: u.node ?? null,
      });
      this.indexMetadata(u.owner, u.id, u.metadata);
      const created = this.read(u.id) as Upload;
      this.events.note('upload.created', created, u.createdAt);
      return { kind: 'created', upload: created };
    });
    this.discardTx = db.transaction((id: string, how: Discard): boolean => {
      if (this.s.transition.run({ id, from: how.from, to: how.to, now: how.now, failure: how.failure ?? null }).changes !== 1) return false;
      this.s.deleteChunks.run(id);
      this.s.deleteParts.run(id);
      this.entered(id, how.to, how.now);
      return true;
    });
    this.reopenTx = db.transaction((id: string, indexes: number[], now: number, failure: string): boolean => {
      if (this.s.transition.run({ id, from: 'finishing', to: 'uploading', now, failure }).changes !== 1) return false;
      for (const index of indexes) {
        const dropped = this.s.dropChunk.get(id, index) as { length: number } | undefined;
        if (dropped) this.s.unbump.run({ id, length: dropped.length });
      }
      return true;
    });
    this.completeTx = db.transaction((id: string, sha256: string, location: StoredLocation, now: number, processing: boolean): boolean => {
      const upload = this.read(id);
      const loc = JSON.stringify(location);
      const status = processing ? 'processing' : 'completed';
      if (this.s.complete.run({ id, sha256, location: loc, now, status }).changes !== 1) return false;
      // The parts' bytes now live in the composed upload: they are consumed with it.
      for (const part of upload?.parts ?? []) this.s.consumePart.run({ id: part, location: loc, now });
      this.entered(id, status, now);
      return true;
    });
    this.transitionTx = db.transaction((id: string, from: UploadStatus, to: UploadStatus, now: number, failure: string | null): boolean => {
      if (this.s.transition.run({ id, from, to, now, failure }).changes !== 1) return false;
      this.entered(id, to, now);
      return true;
    });
    this.processedTx = db.transaction((id: string, result: ProcessingResult, now: number): boolean => {
      const status = result.status;
      const failure = status === 'failed' ? (result.message ?? 'post-processing failed') : null;
      if (this.s.processed.run({ id, status, result: JSON.stringify(result), failure, now }).changes !== 1) return false;
      this.entered(id, status, now);
      return true;
    });
    this.updateFileTx = db.transaction((id: string, change: FileChange, now: number): Upload | undefined => {
      const params = {
        id,
        now,
        fileName: change.fileName ?? null,
        contentType: change.contentType ?? null,
        metadata: change.metadata ? JSON.stringify(change.metadata) : null,
      };
      if (this.s.updateFile.run(params).changes !== 1) return undefined;
      const upload = this.read(id) as Upload;
      if (change.metadata) this.indexMetadata(upload.owner, id, change.metadata);
      this.events.note('file.updated', upload, now);
      return upload;
    });
    this.terminateTx = db.transaction((id: string, now: number): boolean => {
      if (this.s.terminateCompleted.run({ id, now }).changes !== 1) return false;
      this.events.note('file.deleted', this.read(id) as Upload, now);
      return true;
    });
  }

  /** The event that a move into `status` writes, in the transaction that made the move. */
  private entered(id: string, status: UploadStatus, now: number): void {
    const type = ENTERED[status];
    if (type) this.events.note(type, this.read(id) as Upload, now);
  }

  /** An upload's metadata as metadata_index rows (GET /v1/files filters), replacing any it had. */
  private indexMetadata(owner: string, id: string, metadata: Record<string, string>): void {
    this.s.unindexMetadata.run(id);
    for (const [key, value] of Object.entries(metadata)) this.s.indexMetadata.run(owner, key, value, id);
  }

  /** An `upload.progress` event, when one is due (EVENT_PROGRESS_INTERVAL). */
  private progress(upload: Upload, now: number): void {
    if (this.events.progressDue(upload.id, now)) this.events.note('upload.progress', upload, now);
  }

  private read(id: string): Upload | undefined {
    const row = this.s.getUpload.get(id) as UploadRow | undefined;
    return row && toUpload(row);
  }

  private readChunk(id: string, index: number): Chunk | undefined {
    const row = this.s.getChunk.get(id, index) as ChunkRow | undefined;
    return row && toChunk(row);
  }

  private usage(owner: string): { active: number; reserved: number } {
    return this.s.usage.get(owner) as { active: number; reserved: number };
  }

  async create(u: NewUpload, limits: OwnerLimits, disk?: DiskBudget): Promise<CreateResult> {
    return this.createTx.immediate(u, limits, disk);
  }

  async get(id: string): Promise<Upload | undefined> {
    return this.read(id);
  }

  async getChunk(uploadId: string, index: number): Promise<Chunk | undefined> {
    return this.readChunk(uploadId, index);
  }

  recordChunk(uploadId: string, chunk: Chunk, fence: Fence): Promise<RecordChunkResult> {
    return this.group.run(() => this.recordChunkTx(uploadId, chunk, fence));
  }

  recordExtent(uploadId: string, extent: Extent, now: number, quota: number | undefined, fence: Fence): Promise<AppendResult> {
    return this.group.run(() => this.recordExtentTx(uploadId, extent, now, quota, fence));
  }

  recordStaged(uploadId: string, staged: StagedAppend, now: number, quota: number | undefined, fence: Fence): Promise<AppendResult> {
    return this.group.run(() => this.recordStagedTx(uploadId, staged, now, quota, fence));
  }

  async setLength(id: string, size: number, now: number, quota: number | undefined): Promise<SetLengthResult> {
    return this.setLengthTx.immediate(id, size, now, quota);
  }

  async reserved(owner: string): Promise<number> {
    return this.usage(owner).reserved;
  }

  /** Reads only the columns it needs: it runs for every chunk. */
  async recordedUntil(id: string, from: number): Promise<number> {
    const u = this.s.extentOf.get(id) as Pick<UploadRow, 'layout' | 'status' | 'size' | 'chunk_size' | 'total_chunks' | 'bytes_received'> | undefined;
    if (!u || (u.status !== 'uploading' && u.status !== 'finishing')) return 0;
    if (u.layout === 'stream') return u.bytes_received;
    let index = Math.floor(from / u.chunk_size);
    while (index < u.total_chunks && this.s.hasChunk.get(id, index)) index++;
    return Math.min(index * u.chunk_size, u.size);
  }

  /** Walks the primary key from `from` and stops as soon as the page is full. */
  async missingChunks(uploadId: string, totalChunks: number, limit = Number.POSITIVE_INFINITY, from = 0): Promise<number[]> {
    const missing: number[] = [];
    let next = from;
    for (const { idx } of this.s.chunkIndexes.iterate(uploadId, from) as IterableIterator<{ idx: number }>) {
      while (next < idx && missing.length < limit) missing.push(next++);
      if (missing.length >= limit) return missing;
      next = idx + 1;
    }
    while (next < totalChunks && missing.length < limit) missing.push(next++);
    return missing;
  }

  async transition(id: string, from: UploadStatus, to: UploadStatus, now: number, failure: string | null = null): Promise<boolean> {
    return this.transitionTx.immediate(id, from, to, now, failure);
  }

  async discard(id: string, how: Discard): Promise<boolean> {
    return this.discardTx.immediate(id, how);
  }

  async chunks(uploadId: string, from: number, limit: number): Promise<Chunk[]> {
    return (this.s.chunkPage.all(uploadId, from, limit) as ChunkRow[]).map(toChunk);
  }

  async reopenWithout(id: string, indexes: number[], now: number, failure: string): Promise<boolean> {
    return this.reopenTx.immediate(id, indexes, now, failure);
  }

  async complete(id: string, sha256: string, location: StoredLocation, now: number, processing = false): Promise<boolean> {
    return this.completeTx.immediate(id, sha256, location, now, processing);
  }

  async processed(id: string, result: ProcessingResult, now: number): Promise<boolean> {
    return this.processedTx.immediate(id, result, now);
  }

  async updateFile(id: string, change: FileChange, now: number): Promise<Upload | undefined> {
    return this.updateFileTx.immediate(id, change, now);
  }

  async terminateCompleted(id: string, now: number): Promise<boolean> {
    return this.terminateTx.immediate(id, now);
  }

  async list(owner: string, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]> {
    const rows = after ? this.s.listPage.all(owner, after.createdAt, after.createdAt, after.id, limit) : this.s.listFirst.all(owner, limit);
    return (rows as UploadRow[]).map(toUpload);
  }

  /** Prepared once per shape of filter (which conditions it has), not per call. */
  private readonly fileQueries = new Map<string, Statement>();

  async listFiles(owner: string, filter: FileFilter, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]> {
    const { sql, params } = fileQuery(owner, filter, limit, after, () => '?');
    let stmt = this.fileQueries.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      if (this.fileQueries.size < 256) this.fileQueries.set(sql, stmt);
    }
    return (stmt.all(...params) as UploadRow[]).map(toUpload);
  }

  async dueForExpiry(now: number, limit: number, node?: { id: string; deadBefore: number }): Promise<string[]> {
    const rows = this.s.dueForExpiry.all({ now, limit, node: node?.id ?? null, deadBefore: node?.deadBefore ?? 0 }) as { id: string }[];
    return rows.map((r) => r.id);
  }

  async idsWithStatus(status: UploadStatus, node?: string): Promise<string[]> {
    return (this.s.byStatus.all({ status, node: node ?? null }) as { id: string }[]).map((r) => r.id);
  }

  async abandonedFinishing(deadBefore: number): Promise<string[]> {
    return (this.s.abandonedFinishing.all(deadBefore) as { id: string }[]).map((r) => r.id);
  }

  async heartbeat(node: string, url: string | undefined, now: number): Promise<void> {
    this.s.heartbeat.run(node, url ?? null, now);
  }

  async nodeInfo(node: string): Promise<{ url: string | null; seenAt: number } | undefined> {
    const row = this.s.nodeInfo.get(node) as { url: string | null; seen_at: number } | undefined;
    return row && { url: row.url, seenAt: row.seen_at };
  }

  async composedOf(partId: string): Promise<string[]> {
    return (this.s.composedOf.all(partId) as { id: string }[]).map((r) => r.id);
  }

  async awaitingPublish(node?: string): Promise<string[]> {
    return (this.s.awaitingPublish.all({ node: node ?? null }) as { id: string }[]).map((r) => r.id);
  }

  async activeStats(): Promise<{ active: number; stagedBytes: number }> {
    return this.s.activeStats.get() as { active: number; stagedBytes: number };
  }

  commitStats(): { commits: number; writes: number } {
    return { ...this.group.stats };
  }

  async maintain(): Promise<void> {
    checkpoint(this.db);
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
