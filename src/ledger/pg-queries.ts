import type { Chunk, Upload, UploadStatus } from './ledger.js';
import type { Queryable } from './pg-db.js';
import { type ChunkRow, type UploadRow, toChunk, toUpload } from './sqlite-rows.js';

/** The PostgreSQL ledger's reads (pg-ledger.ts): each one query, on the pool or inside a transaction. */

export const CHUNK_COLUMNS = 'idx, "offset", length, sha256, received_at';

/** `u` is not a part that some composed upload of its owner names. */
const NOT_COMPOSED_PART = `NOT (u.is_part = 1 AND EXISTS (
  SELECT 1 FROM uploads f WHERE f.owner = u.owner AND f.parts IS NOT NULL AND strpos(f.parts, '"' || u.id || '"') > 0))`;

export async function usage(q: Queryable, owner: string): Promise<{ active: number; reserved: number }> {
  const r = await q.query<{ active: number; reserved: number }>(
    `SELECT COUNT(*)::int AS active,
            COALESCE(SUM(CASE WHEN parts IS NOT NULL THEN 0 WHEN length_deferred = 1 THEN bytes_received ELSE size END), 0)::bigint AS reserved
     FROM uploads WHERE owner = $1 AND status IN ('uploading', 'finishing')`,
    [owner],
  );
  return r.rows[0] as { active: number; reserved: number };
}

export async function getChunk(q: Queryable, uploadId: string, index: number): Promise<Chunk | undefined> {
  const row = (await q.query<ChunkRow>(`SELECT ${CHUNK_COLUMNS} FROM chunks WHERE upload_id = $1 AND idx = $2`, [uploadId, index])).rows[0];
  return row && toChunk(row);
}

export async function recordedUntil(q: Queryable, id: string, from: number): Promise<number> {
  const u = (
    await q.query<Pick<UploadRow, 'layout' | 'status' | 'size' | 'chunk_size' | 'total_chunks' | 'bytes_received'>>(
      'SELECT layout, status, size, chunk_size, total_chunks, bytes_received FROM uploads WHERE id = $1',
      [id],
    )
  ).rows[0];
  if (!u || (u.status !== 'uploading' && u.status !== 'finishing')) return 0;
  if (u.layout === 'stream') return u.bytes_received;
  // The first index from `from`'s chunk on that has no row.
  const start = Math.floor(from / u.chunk_size);
  const r = await q.query<{ idx: number }>(
    `SELECT g AS idx FROM generate_series($2::int, $3::int) g
     WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.upload_id = $1 AND c.idx = g) ORDER BY g LIMIT 1`,
    [id, start, u.total_chunks],
  );
  const index = r.rows[0]?.idx ?? u.total_chunks;
  return Math.min(index * u.chunk_size, u.size);
}

export async function missingChunks(q: Queryable, uploadId: string, totalChunks: number, limit: number, from: number): Promise<number[]> {
  const r = await q.query<{ idx: number }>(
    `SELECT g AS idx FROM generate_series($2::int, $3::int - 1) g
     WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.upload_id = $1 AND c.idx = g) ORDER BY g LIMIT $4`,
    [uploadId, from, totalChunks, Number.isFinite(limit) ? limit : null],
  );
  return r.rows.map((row) => row.idx);
}

export async function chunks(q: Queryable, uploadId: string, from: number, limit: number): Promise<Chunk[]> {
  const r = await q.query<ChunkRow>(`SELECT ${CHUNK_COLUMNS} FROM chunks WHERE upload_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3`, [uploadId, from, limit]);
  return r.rows.map(toChunk);
}

export async function list(q: Queryable, owner: string, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]> {
  const r = after
    ? await q.query<UploadRow>(
        `SELECT * FROM uploads u WHERE owner = $1 AND ${NOT_COMPOSED_PART} AND (created_at < $2 OR (created_at = $2 AND id < $3))
         ORDER BY created_at DESC, id DESC LIMIT $4`,
        [owner, after.createdAt, after.id, limit],
      )
    : await q.query<UploadRow>(`SELECT * FROM uploads u WHERE owner = $1 AND ${NOT_COMPOSED_PART} ORDER BY created_at DESC, id DESC LIMIT $2`, [owner, limit]);
  return r.rows.map(toUpload);
}

export async function dueForExpiry(q: Queryable, now: number, limit: number, node?: { id: string; deadBefore: number }): Promise<string[]> {
  const r = await q.query<{ id: string }>(
    `SELECT id FROM uploads WHERE status = 'uploading' AND expires_at <= $1
       AND ($3::text IS NULL OR node IS NULL OR node = $3 OR multipart IS NOT NULL
            OR node IN (SELECT id FROM nodes WHERE seen_at < $4))
     ORDER BY expires_at LIMIT $2`,
    [now, limit, node?.id ?? null, node?.deadBefore ?? 0],
  );
  return r.rows.map((row) => row.id);
}

export async function idsWithStatus(q: Queryable, status: UploadStatus, node?: string): Promise<string[]> {
  const r = await q.query<{ id: string }>('SELECT id FROM uploads WHERE status = $1 AND ($2::text IS NULL OR node IS NULL OR node = $2)', [
    status,
    node ?? null,
  ]);
  return r.rows.map((row) => row.id);
}

/** Uploads staged in the store left `finishing` by a node not seen since `deadBefore`. */
export async function abandonedFinishing(q: Queryable, deadBefore: number): Promise<string[]> {
  const r = await q.query<{ id: string }>(
    `SELECT id FROM uploads WHERE status = 'finishing' AND multipart IS NOT NULL AND node IN (SELECT id FROM nodes WHERE seen_at < $1)`,
    [deadBefore],
  );
  return r.rows.map((row) => row.id);
}

export async function nodeInfo(q: Queryable, node: string): Promise<{ url: string | null; seenAt: number } | undefined> {
  const row = (await q.query<{ url: string | null; seen_at: number }>('SELECT url, seen_at FROM nodes WHERE id = $1', [node])).rows[0];
  return row && { url: row.url, seenAt: row.seen_at };
}

export async function composedOf(q: Queryable, partId: string): Promise<string[]> {
  const r = await q.query<{ id: string }>(
    `SELECT id FROM uploads WHERE parts IS NOT NULL AND status IN ('uploading', 'finishing') AND strpos(parts, '"' || $1 || '"') > 0`,
    [partId],
  );
  return r.rows.map((row) => row.id);
}

export async function awaitingPublish(q: Queryable, node?: string): Promise<string[]> {
  const r = await q.query<{ id: string }>(
    `SELECT id FROM uploads WHERE layout = 'stream' AND status = 'uploading' AND length_deferred = 0
       AND ((parts IS NULL AND is_part = 0 AND bytes_received = size) OR parts IS NOT NULL)
       AND ($1::text IS NULL OR node IS NULL OR node = $1 OR multipart IS NOT NULL)`,
    [node ?? null],
  );
  return r.rows.map((row) => row.id);
}

export async function activeStats(q: Queryable): Promise<{ active: number; stagedBytes: number }> {
  const r = await q.query<{ active: number; stagedBytes: number }>(
    `SELECT COUNT(*)::int AS active, COALESCE(SUM(CASE WHEN multipart IS NULL THEN bytes_received ELSE 0 END), 0)::bigint AS "stagedBytes"
     FROM uploads WHERE status IN ('uploading', 'finishing')`,
  );
  return r.rows[0] as { active: number; stagedBytes: number };
}
