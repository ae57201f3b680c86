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
import { type Client, type Pool, type Queryable, inTransaction, migratePg, openPool } from './pg-db.js';
import { ENTERED } from './event-data.js';
import { fileQuery } from './file-query.js';
import { PgEvents } from './pg-events.js';
import { PgParts } from './pg-parts.js';
import { heartbeat, indexMetadata, insertUpload } from './pg-writes.js';
import * as queries from './pg-queries.js';
import { usage } from './pg-queries.js';
import { CHUNK_COLUMNS } from './pg-queries.js';
import { type ChunkRow, type UploadRow, bumped, toChunk, toUpload } from './sqlite-rows.js';

/** Composed uploads and their parts are checked under this advisory lock ("slcp"), as one writer at a time. */
const COMPOSE_LOCK = 0x736c6370;

/**
 * The ledger on PostgreSQL (DATABASE_URL), for several nodes sharing one database. The same
 * contract as the SQLite ledger: every state change is a guarded UPDATE or a transaction that
 * locks the upload's row first (`SELECT ... FOR UPDATE`), its event is written in that
 * transaction, and per-owner limits are checked under a per-owner advisory lock so that two nodes
 * creating at once cannot both pass them.
 */
export class PgLedger implements Ledger {
  readonly parts: PgParts;
  readonly events: PgEvents;
  private readonly stats = { commits: 0, writes: 0 };

  private constructor(
    private readonly pool: Pool,
    opts: { progressIntervalMs: number },
  ) {
    this.events = new PgEvents(pool, opts);
    this.parts = new PgParts(pool, (q, id) => this.read(q, id, true));
  }

  /** Connects, brings the schema up to date and returns the ledger. */
  static async open(url: string, opts: { progressIntervalMs?: number; poolSize?: number } = {}): Promise<PgLedger> {
    const pool = openPool(url, opts.poolSize);
    try {
      await migratePg(pool);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PgLedger(pool, { progressIntervalMs: opts.progressIntervalMs ?? 0 });
  }

  private async read(q: Queryable, id: string, lock = false): Promise<Upload | undefined> {
    const row = (await q.query<UploadRow>(`SELECT * FROM uploads WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id])).rows[0];
    return row && toUpload(row);
  }

  private usage(q: Queryable, owner: string): Promise<{ active: number; reserved: number }> {
    return usage(q, owner);
  }

  getChunk = (uploadId: string, index: number): Promise<Chunk | undefined> => queries.getChunk(this.pool, uploadId, index);
  recordedUntil = (id: string, from: number): Promise<number> => queries.recordedUntil(this.pool, id, from);
  missingChunks = (uploadId: string, totalChunks: number, limit = Number.POSITIVE_INFINITY, from = 0): Promise<number[]> =>
    queries.missingChunks(this.pool, uploadId, totalChunks, limit, from);
  chunks = (uploadId: string, from: number, limit: number): Promise<Chunk[]> => queries.chunks(this.pool, uploadId, from, limit);
  list = (owner: string, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]> => queries.list(this.pool, owner, limit, after);
  async listFiles(owner: string, filter: FileFilter, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]> {
    const { sql, params } = fileQuery(owner, filter, limit, after, (i) => `$${i}`, 'postgres');
    return (await this.pool.query<UploadRow>(sql, params)).rows.map(toUpload);
  }
  dueForExpiry = (now: number, limit: number, node?: { id: string; deadBefore: number }): Promise<string[]> =>
    queries.dueForExpiry(this.pool, now, limit, node);
  idsWithStatus = (status: UploadStatus, node?: string): Promise<string[]> => queries.idsWithStatus(this.pool, status, node);
  nodeInfo = (node: string): Promise<{ url: string | null; seenAt: number } | undefined> => queries.nodeInfo(this.pool, node);
  abandonedFinishing = (deadBefore: number): Promise<string[]> => queries.abandonedFinishing(this.pool, deadBefore);
  heartbeat = (node: string, url: string | undefined, now: number): Promise<void> => heartbeat(this.pool, node, url, now);
  private composedOfIn = (q: Queryable, partId: string): Promise<string[]> => queries.composedOf(q, partId);
  awaitingPublish = (node?: string): Promise<string[]> => queries.awaitingPublish(this.pool, node);
  activeStats = (): Promise<{ active: number; stagedBytes: number }> => queries.activeStats(this.pool);

  /** The event that a move into `status` writes, last in the transaction that made the move. */
  private async entered(q: Client, id: string, status: UploadStatus, now: number): Promise<void> {
    const type = ENTERED[status];
    if (type) await this.events.note(q, type, (await this.read(q, id)) as Upload, now);
  }

  private async progress(q: Client, upload: Upload, now: number): Promise<void> {
    if (await this.events.progressDue(q, upload.id, now)) await this.events.note(q, 'upload.progress', upload, now);
  }

  private tx<T>(fn: (q: Client) => Promise<T>, writes = 1): Promise<T> {
    return inTransaction(this.pool, fn).then((result) => {
      this.stats.commits++;
      this.stats.writes += writes;
      return result;
    });
  }

  async create(u: NewUpload, limits: OwnerLimits, disk?: DiskBudget): Promise<CreateResult> {
    return this.tx(async (q) => {
      await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`owner:${u.owner}`]);
      if (u.parts) await q.query('SELECT pg_advisory_xact_lock($1)', [COMPOSE_LOCK]);
      for (const part of u.parts ?? []) {
        if ((await this.composedOfIn(q, part)).length > 0) return { kind: 'part_in_use', part };
      }
      if (disk && (!u.parts || disk.copies)) {
        const r = await q.query<{ outstanding: number }>(
          `SELECT COALESCE(SUM(size - bytes_received), 0)::bigint AS outstanding FROM uploads
           WHERE status IN ('uploading', 'finishing') AND length_deferred = 0 AND (parts IS NULL OR $1) AND multipart IS NULL`,
          [disk.copies],
        );
        const outstanding = r.rows[0]?.outstanding ?? 0;
        if (disk.free - outstanding - disk.margin < u.size) return { kind: 'no_space', outstanding, free: disk.free };
      }
      const usage = await this.usage(q, u.owner);
      if (usage.active >= limits.maxActive) return { kind: 'too_many', active: usage.active };
      const adds = u.parts ? 0 : u.size;
      if (limits.quota !== undefined && usage.reserved + adds > limits.quota) return { kind: 'over_quota', reserved: usage.reserved };
      await insertUpload(q, u);
      await indexMetadata(q, u.owner, u.id, u.metadata);
      const created = (await this.read(q, u.id)) as Upload;
      await this.events.note(q, 'upload.created', created, u.createdAt);
      return { kind: 'created', upload: created };
    });
  }

  get(id: string): Promise<Upload | undefined> {
    return this.read(this.pool, id);
  }

  recordChunk(uploadId: string, chunk: Chunk, fence: Fence): Promise<RecordChunkResult> {
    return this.tx(async (q) => {
      const upload = await this.read(q, uploadId, true);
      // Checked with the row locked, just before the write: a writer that lost its lease records nothing.
      if (!fence()) return { kind: 'fenced' };
      if (!upload || upload.status !== 'uploading') return { kind: 'not_writable', upload };
      const existing = (await q.query<ChunkRow>(`SELECT ${CHUNK_COLUMNS} FROM chunks WHERE upload_id = $1 AND idx = $2`, [uploadId, chunk.index])).rows[0];
      if (existing) return existing.sha256 === chunk.sha256 ? { kind: 'duplicate', upload } : { kind: 'conflict', existing: toChunk(existing) };
      await q.query(`INSERT INTO chunks (upload_id, ${CHUNK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)`, [
        uploadId,
        chunk.index,
        chunk.offset,
        chunk.length,
        chunk.sha256,
        chunk.receivedAt,
      ]);
      await this.bump(q, uploadId, chunk.length, chunk.receivedAt);
      const after = bumped(upload, chunk.length, chunk.receivedAt);
      await this.progress(q, after, chunk.receivedAt);
      return { kind: 'recorded', upload: after };
    });
  }

  private async bump(q: Client, id: string, length: number, now: number): Promise<void> {
    await q.query(
      `UPDATE uploads SET chunks_received = chunks_received + 1, bytes_received = bytes_received + $2, updated_at = $3 WHERE id = $1 AND status = 'uploading'`,
      [id, length, now],
    );
  }

  /** The checks an append shares with recordStaged; undefined when it may go on. */
  private async appendRefusal(
    q: Client,
    upload: Upload | undefined,
    offset: number,
    length: number,
    quota: number | undefined,
    fence: Fence,
  ): Promise<AppendResult | undefined> {
    if (!fence()) return { kind: 'fenced' };
    if (!upload || upload.status !== 'uploading') return { kind: 'not_writable', upload };
    if (upload.bytesReceived !== offset) return { kind: 'offset_moved', upload };
    if (upload.lengthDeferred && quota !== undefined) {
      await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`owner:${upload.owner}`]);
      const { reserved } = await this.usage(q, upload.owner);
      if (reserved + length > quota) return { kind: 'over_quota', reserved };
    }
    return undefined;
  }

  recordExtent(uploadId: string, extent: Extent, now: number, quota: number | undefined, fence: Fence): Promise<AppendResult> {
    return this.tx(async (q) => {
      const upload = await this.read(q, uploadId, true);
      const refused = await this.appendRefusal(q, upload, extent.offset, extent.length, quota, fence);
      if (refused) return refused;
      const u = upload as Upload;
      await q.query(`INSERT INTO chunks (upload_id, ${CHUNK_COLUMNS}) VALUES ($1, $2, $3, $4, NULL, $5)`, [
        uploadId,
        u.chunksReceived,
        u.bytesReceived,
        extent.length,
        now,
      ]);
      await this.bump(q, uploadId, extent.length, now);
      const after = bumped(u, extent.length, now);
      await this.progress(q, after, now);
      return { kind: 'recorded', upload: after };
    });
  }

  recordStaged(uploadId: string, staged: StagedAppend, now: number, quota: number | undefined, fence: Fence): Promise<AppendResult> {
    return this.tx(async (q) => {
      const upload = await this.read(q, uploadId, true);
      if (upload && upload.multipart === null) return { kind: 'not_writable', upload };
      const refused = await this.appendRefusal(q, upload, staged.extent.offset, staged.extent.length, quota, fence);
      if (refused) return refused;
      for (const part of staged.parts) {
        await q.query(
          `INSERT INTO direct_parts (upload_id, idx, length, etag, sha256, reported_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (upload_id, idx) DO UPDATE SET length = excluded.length, etag = excluded.etag, sha256 = excluded.sha256,
                                                      reported_at = excluded.reported_at`,
          [uploadId, part.index, part.length, part.etag, part.sha256, now],
        );
      }
      await q.query(
        `UPDATE uploads SET bytes_received = bytes_received + $2, chunks_received = chunks_received + $3, tail = $4, updated_at = $5
         WHERE id = $1 AND status = 'uploading'`,
        [uploadId, staged.extent.length, staged.parts.length, staged.tail, now],
      );
      const after = (await this.read(q, uploadId)) as Upload;
      await this.progress(q, after, now);
      return { kind: 'recorded', upload: after };
    });
  }

  setLength(id: string, size: number, now: number, quota: number | undefined): Promise<SetLengthResult> {
    return this.tx(async (q) => {
      const upload = await this.read(q, id, true);
      if (upload && upload.lengthDeferred && quota !== undefined) {
        await q.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`owner:${upload.owner}`]);
        const { reserved } = await this.usage(q, upload.owner);
        if (reserved - upload.bytesReceived + size > quota) return { kind: 'over_quota', reserved };
      }
      const r = await q.query(
        `UPDATE uploads SET size = $2, length_deferred = 0, chunk_size = GREATEST($2, 1), updated_at = $3
         WHERE id = $1 AND length_deferred = 1 AND bytes_received <= $2 AND status = 'uploading'`,
        [id, size, now],
      );
      return r.rowCount === 1 ? { kind: 'set' } : { kind: 'unchanged' };
    });
  }

  async reserved(owner: string): Promise<number> {
    return (await this.usage(this.pool, owner)).reserved;
  }

  transition(id: string, from: UploadStatus, to: UploadStatus, now: number, failure: string | null = null): Promise<boolean> {
    return this.tx(async (q) => {
      const r = await q.query('UPDATE uploads SET status = $3, updated_at = $4, failure = COALESCE($5, failure) WHERE id = $1 AND status = $2', [
        id,
        from,
        to,
        now,
        failure,
      ]);
      if (r.rowCount !== 1) return false;
      await this.entered(q, id, to, now);
      return true;
    });
  }

  discard(id: string, how: Discard): Promise<boolean> {
    return this.tx(async (q) => {
      const r = await q.query('UPDATE uploads SET status = $3, updated_at = $4, failure = COALESCE($5, failure) WHERE id = $1 AND status = $2', [
        id,
        how.from,
        how.to,
        how.now,
        how.failure ?? null,
      ]);
      if (r.rowCount !== 1) return false;
      await q.query('DELETE FROM chunks WHERE upload_id = $1', [id]);
      await q.query('DELETE FROM direct_parts WHERE upload_id = $1', [id]);
      await this.entered(q, id, how.to, how.now);
      return true;
    });
  }

  reopenWithout(id: string, indexes: number[], now: number, failure: string): Promise<boolean> {
    return this.tx(async (q) => {
      const r = await q.query(`UPDATE uploads SET status = 'uploading', updated_at = $2, failure = $3 WHERE id = $1 AND status = 'finishing'`, [
        id,
        now,
        failure,
      ]);
      if (r.rowCount !== 1) return false;
      const dropped = await q.query<{ length: number }>('DELETE FROM chunks WHERE upload_id = $1 AND idx = ANY($2::int[]) RETURNING length', [id, indexes]);
      const bytes = dropped.rows.reduce((sum, row) => sum + row.length, 0);
      await q.query('UPDATE uploads SET chunks_received = chunks_received - $2, bytes_received = bytes_received - $3 WHERE id = $1', [
        id,
        dropped.rowCount ?? 0,
        bytes,
      ]);
      return true;
    });
  }

  complete(id: string, sha256: string, location: StoredLocation, now: number, processing = false): Promise<boolean> {
    return this.tx(async (q) => {
      const loc = JSON.stringify(location);
      const status = processing ? 'processing' : 'completed';
      const r = await q.query<{ parts: string | null }>(
        `UPDATE uploads SET status = $2, sha256 = $3, location = $4, updated_at = $5, completed_at = $5, failure = NULL
         WHERE id = $1 AND status = 'finishing' RETURNING parts`,
        [id, status, sha256, loc, now],
      );
      if (r.rowCount !== 1) return false;
      // The parts' bytes now live in the composed upload: they are consumed with it.
      const parts = r.rows[0]?.parts ? (JSON.parse(r.rows[0].parts) as string[]) : [];
      if (parts.length > 0) {
        await q.query(
          `UPDATE uploads SET status = 'completed', location = $2, updated_at = $3, completed_at = $3 WHERE id = ANY($1::text[]) AND status = 'uploading' AND is_part = 1`,
          [parts, loc, now],
        );
      }
      await this.entered(q, id, status, now);
      return true;
    });
  }

  processed(id: string, result: ProcessingResult, now: number): Promise<boolean> {
    return this.tx(async (q) => {
      const failure = result.status === 'failed' ? (result.message ?? 'post-processing failed') : null;
      const r = await q.query(`UPDATE uploads SET status = $2, processing = $3, failure = $4, updated_at = $5 WHERE id = $1 AND status = 'processing'`, [
        id,
        result.status,
        JSON.stringify(result),
        failure,
        now,
      ]);
      if (r.rowCount !== 1) return false;
      await this.entered(q, id, result.status, now);
      return true;
    });
  }

  updateFile(id: string, change: FileChange, now: number): Promise<Upload | undefined> {
    return this.tx(async (q) => {
      const r = await q.query(
        `UPDATE uploads SET file_name = COALESCE($2, file_name), content_type = COALESCE($3, content_type), metadata = COALESCE($4, metadata), updated_at = $5
         WHERE id = $1 AND status IN ('completed', 'processing') AND is_part = 0`,
        [id, change.fileName ?? null, change.contentType ?? null, change.metadata ? JSON.stringify(change.metadata) : null, now],
      );
      if (r.rowCount !== 1) return undefined;
      const upload = (await this.read(q, id)) as Upload;
      if (change.metadata) await indexMetadata(q, upload.owner, id, change.metadata);
      await this.events.note(q, 'file.updated', upload, now);
      return upload;
    });
  }

  terminateCompleted(id: string, now: number): Promise<boolean> {
    return this.tx(async (q) => {
      const r = await q.query(`UPDATE uploads SET status = 'aborted', updated_at = $2 WHERE id = $1 AND status IN ('completed', 'processing')`, [id, now]);
      if (r.rowCount !== 1) return false;
      await this.events.note(q, 'file.deleted', (await this.read(q, id)) as Upload, now);
      return true;
    });
  }

  composedOf(partId: string): Promise<string[]> {
    return this.composedOfIn(this.pool, partId);
  }

  commitStats(): { commits: number; writes: number } {
    return { ...this.stats };
  }

  /** PostgreSQL keeps its own files bounded (autovacuum); nothing to do here. */
  async maintain(): Promise<void> {}

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.pool.end();
  }
}
