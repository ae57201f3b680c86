import type { NewUpload } from './ledger.js';
import type { Client, Queryable } from './pg-db.js';

/** The PostgreSQL ledger's row writes that more than one transaction makes (pg-ledger.ts). */

/** A new upload's row, `uploading`. */
export async function insertUpload(q: Client, u: NewUpload): Promise<void> {
  await q.query(
    `INSERT INTO uploads (id, owner, layout, protocol, file_name, content_type, metadata, size, chunk_size, total_chunks,
                          expected_sha256, status, created_at, updated_at, expires_at, length_deferred, echo, is_part, parts,
                          transfer, multipart, node)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'uploading', $12, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
    [
      u.id,
      u.owner,
      u.layout,
      u.protocol,
      u.fileName,
      u.contentType,
      JSON.stringify(u.metadata),
      u.size,
      u.chunkSize,
      u.totalChunks,
      u.expectedSha256,
      u.createdAt,
      u.expiresAt,
      u.lengthDeferred ? 1 : 0,
      u.echo ? JSON.stringify(u.echo) : null,
      u.isPart ? 1 : 0,
      u.parts ? JSON.stringify(u.parts) : null,
      u.transfer ?? 'server',
      u.multipart ?? null,
      u.node ?? null,
    ],
  );
}

/** An upload's metadata as metadata_index rows (GET /v1/files filters), replacing any it had. */
export async function indexMetadata(q: Client, owner: string, id: string, metadata: Record<string, string>): Promise<void> {
  const rows = Object.entries(metadata);
  await q.query('DELETE FROM metadata_index WHERE upload_id = $1', [id]);
  if (rows.length === 0) return;
  await q.query('INSERT INTO metadata_index (owner, key, value, upload_id) SELECT $1, k, v, $2 FROM unnest($3::text[], $4::text[]) AS t(k, v)', [
    owner,
    id,
    rows.map(([k]) => k),
    rows.map(([, v]) => v),
  ]);
}

/** Records that a node is alive at `url`. */
export async function heartbeat(q: Queryable, node: string, url: string | undefined, now: number): Promise<void> {
  await q.query('INSERT INTO nodes (id, url, seen_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET url = excluded.url, seen_at = excluded.seen_at', [
    node,
    url ?? null,
    now,
  ]);
}
