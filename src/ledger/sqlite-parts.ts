import type { Statement, Transaction } from 'better-sqlite3';
import type { Db } from './database.js';
import type { GroupCommit } from './group-commit.js';
import type { DirectPart, PartLedger, ReportPartResult, Upload } from './ledger.js';
import { type PartRow, toPart } from './sqlite-rows.js';

const SQL = {
  declare: `
    INSERT INTO direct_parts (upload_id, idx, length, declared_sha256) VALUES (@id, @index, @length, @sha256)
    ON CONFLICT (upload_id, idx) DO UPDATE SET declared_sha256 = excluded.declared_sha256`,
  get: 'SELECT idx, length, declared_sha256, etag, sha256, reported_at FROM direct_parts WHERE upload_id = ? AND idx = ?',
  upsertReport: `
    INSERT INTO direct_parts (upload_id, idx, length, etag, sha256, reported_at) VALUES (@id, @index, @length, @etag, @sha256, @now)
    ON CONFLICT (upload_id, idx) DO UPDATE SET etag = excluded.etag, sha256 = COALESCE(excluded.sha256, declared_sha256),
                                               reported_at = excluded.reported_at`,
  bump: `
    UPDATE uploads SET chunks_received = chunks_received + 1, bytes_received = bytes_received + @length, updated_at = @now
    WHERE id = @id AND status = 'uploading'`,
  page: 'SELECT idx, length, declared_sha256, etag, sha256, reported_at FROM direct_parts WHERE upload_id = ? AND idx >= ? ORDER BY idx LIMIT ?',
  reported: 'SELECT idx FROM direct_parts WHERE upload_id = ? AND etag IS NOT NULL AND idx >= ? ORDER BY idx',
  status: 'SELECT status FROM uploads WHERE id = ? AND multipart IS NOT NULL',
  // (A part's digest stays: a kept part was just verified, a damaged one gets its digest again when reported.)
  forget: 'UPDATE direct_parts SET etag = NULL, reported_at = NULL WHERE upload_id = ?',
  keep: 'UPDATE direct_parts SET etag = @etag, reported_at = @now WHERE upload_id = @id AND idx = @index',
  recount: `
    UPDATE uploads SET status = 'uploading', multipart = @multipart, failure = @failure, updated_at = @now,
      chunks_received = (SELECT COUNT(*) FROM direct_parts WHERE upload_id = @id AND etag IS NOT NULL),
      bytes_received = (SELECT COALESCE(SUM(length), 0) FROM direct_parts WHERE upload_id = @id AND etag IS NOT NULL)
    WHERE id = @id AND status = 'finishing'`,
} as const;

type Stmts = { [K in keyof typeof SQL]: Statement };

/**
 * Direct uploads' parts in SQLite (see PartLedger). A part counts towards the upload's progress the
 * first time it is reported; reporting it again (the client sent it again) replaces its ETag.
 */
export class SqliteParts implements PartLedger {
  private readonly s: Stmts;
  private readonly reportTx: Transaction<
    (id: string, part: { index: number; length: number; etag: string; sha256: string | null }, now: number) => ReportPartResult
  >;
  private readonly restartTx: Transaction<(id: string, multipart: string, kept: { index: number; etag: string }[], now: number, failure: string) => boolean>;

  constructor(
    db: Db,
    private readonly group: GroupCommit,
    private readonly read: (id: string) => Upload | undefined,
  ) {
    this.s = Object.fromEntries(Object.entries(SQL).map(([k, sql]) => [k, db.prepare(sql)])) as Stmts;
    this.reportTx = db.transaction((id, part, now) => {
      const upload = this.read(id);
      if (!upload || upload.status !== 'uploading' || upload.multipart === null) return { kind: 'not_writable', upload };
      const existing = this.s.get.get(id, part.index) as PartRow | undefined;
      this.s.upsertReport.run({ id, ...part, now });
      if (existing?.etag) return { kind: 'replaced', upload };
      this.s.bump.run({ id, length: part.length, now });
      return { kind: 'recorded', upload: this.read(id) as Upload };
    });
    this.restartTx = db.transaction((id, multipart, kept, now, failure) => {
      const status = (this.s.status.get(id) as { status: string } | undefined)?.status;
      if (status !== 'finishing') return false;
      this.s.forget.run(id);
      for (const k of kept) this.s.keep.run({ id, index: k.index, etag: k.etag, now });
      return this.s.recount.run({ id, multipart, now, failure }).changes === 1;
    });
  }

  async declare(uploadId: string, parts: { index: number; length: number; sha256: string }[]): Promise<void> {
    await this.group.run(() => {
      for (const p of parts) this.s.declare.run({ id: uploadId, ...p });
    });
  }

  report(uploadId: string, part: { index: number; length: number; etag: string; sha256: string | null }, now: number): Promise<ReportPartResult> {
    return this.group.run(() => this.reportTx(uploadId, part, now));
  }

  async list(uploadId: string, from: number, limit: number): Promise<DirectPart[]> {
    return (this.s.page.all(uploadId, from, limit) as PartRow[]).map(toPart);
  }

  async missing(uploadId: string, total: number, limit: number, from = 0): Promise<number[]> {
    const out: number[] = [];
    let next = from;
    for (const row of this.s.reported.iterate(uploadId, from) as Iterable<{ idx: number }>) {
      for (; next < row.idx && out.length < limit; next++) out.push(next);
      if (out.length >= limit) return out;
      next = row.idx + 1;
    }
    for (; next < total && out.length < limit; next++) out.push(next);
    return out;
  }

  restart(uploadId: string, multipart: string, kept: { index: number; etag: string }[], now: number, failure: string): Promise<boolean> {
    return this.group.run(() => this.restartTx(uploadId, multipart, kept, now, failure));
  }
}
