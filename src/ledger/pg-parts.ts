import type { DirectPart, PartLedger, ReportPartResult, Upload } from './ledger.js';
import { type PartRow, toPart } from './sqlite-rows.js';
import { type Client, type Pool, inTransaction } from './pg-db.js';

/** Direct uploads' parts in PostgreSQL (see PartLedger and sqlite-parts.ts, which it mirrors). */
export class PgParts implements PartLedger {
  constructor(
    private readonly pool: Pool,
    /** The upload row, locked for the rest of the transaction. */
    private readonly lockedRead: (q: Client, id: string) => Promise<Upload | undefined>,
  ) {}

  async declare(uploadId: string, parts: { index: number; length: number; sha256: string }[]): Promise<void> {
    if (parts.length === 0) return;
    await this.pool.query(
      `INSERT INTO direct_parts (upload_id, idx, length, declared_sha256)
       SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::text[])
       ON CONFLICT (upload_id, idx) DO UPDATE SET declared_sha256 = excluded.declared_sha256`,
      [uploadId, parts.map((p) => p.index), parts.map((p) => p.length), parts.map((p) => p.sha256)],
    );
  }

  async report(uploadId: string, part: { index: number; length: number; etag: string; sha256: string | null }, now: number): Promise<ReportPartResult> {
    return inTransaction(this.pool, async (q) => {
      const upload = await this.lockedRead(q, uploadId);
      if (!upload || upload.status !== 'uploading' || upload.multipart === null) return { kind: 'not_writable', upload };
      const existing = (await q.query<{ etag: string | null }>('SELECT etag FROM direct_parts WHERE upload_id = $1 AND idx = $2', [uploadId, part.index]))
        .rows[0];
      await q.query(
        `INSERT INTO direct_parts (upload_id, idx, length, etag, sha256, reported_at) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (upload_id, idx) DO UPDATE SET etag = excluded.etag, sha256 = COALESCE(excluded.sha256, direct_parts.declared_sha256),
                                                    reported_at = excluded.reported_at`,
        [uploadId, part.index, part.length, part.etag, part.sha256, now],
      );
      if (existing?.etag) return { kind: 'replaced', upload };
      await q.query(
        `UPDATE uploads SET chunks_received = chunks_received + 1, bytes_received = bytes_received + $2, updated_at = $3 WHERE id = $1 AND status = 'uploading'`,
        [uploadId, part.length, now],
      );
      return {
        kind: 'recorded',
        upload: { ...upload, chunksReceived: upload.chunksReceived + 1, bytesReceived: upload.bytesReceived + part.length, updatedAt: now },
      };
    });
  }

  async list(uploadId: string, from: number, limit: number): Promise<DirectPart[]> {
    const r = await this.pool.query<PartRow>(
      'SELECT idx, length, declared_sha256, etag, sha256, reported_at FROM direct_parts WHERE upload_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3',
      [uploadId, from, limit],
    );
    return r.rows.map(toPart);
  }

  async missing(uploadId: string, total: number, limit: number, from = 0): Promise<number[]> {
    // Indexes in [from, total) with no reported part: the gaps of the reported ones, computed here.
    const r = await this.pool.query<{ idx: number }>(
      `SELECT g AS idx FROM generate_series($2::int, $3::int - 1) g
       WHERE NOT EXISTS (SELECT 1 FROM direct_parts p WHERE p.upload_id = $1 AND p.idx = g AND p.etag IS NOT NULL)
       ORDER BY g LIMIT $4`,
      [uploadId, from, total, limit],
    );
    return r.rows.map((row) => row.idx);
  }

  async restart(uploadId: string, multipart: string, kept: { index: number; etag: string }[], now: number, failure: string): Promise<boolean> {
    return inTransaction(this.pool, async (q) => {
      const upload = await this.lockedRead(q, uploadId);
      if (upload?.status !== 'finishing' || upload.multipart === null) return false;
      await q.query('UPDATE direct_parts SET etag = NULL, reported_at = NULL WHERE upload_id = $1', [uploadId]);
      for (const k of kept)
        await q.query('UPDATE direct_parts SET etag = $3, reported_at = $4 WHERE upload_id = $1 AND idx = $2', [uploadId, k.index, k.etag, now]);
      const r = await q.query(
        `UPDATE uploads SET status = 'uploading', multipart = $2, failure = $3, updated_at = $4,
           chunks_received = (SELECT COUNT(*) FROM direct_parts WHERE upload_id = $1 AND etag IS NOT NULL),
           bytes_received = (SELECT COALESCE(SUM(length), 0) FROM direct_parts WHERE upload_id = $1 AND etag IS NOT NULL)
         WHERE id = $1 AND status = 'finishing'`,
        [uploadId, multipart, failure, now],
      );
      return r.rowCount === 1;
    });
  }
}
