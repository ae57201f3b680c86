import type { FileFilter } from './ledger.js';

/**
 * The query behind GET /v1/files, for both ledgers (`param` writes a placeholder: `?` for SQLite,
 * `$n` for PostgreSQL). Every metadata condition is a lookup in metadata_index's primary key;
 * without one, the owner's completed files are walked in (owner, status, created_at, id) order.
 * Either way a page does not cost more as the owner's files grow (BENCHMARKS.md, other measurements).
 */
export function fileQuery(
  owner: string,
  filter: FileFilter,
  limit: number,
  after: { createdAt: number; id: string } | undefined,
  param: (index: number) => string,
  dialect: 'sqlite' | 'postgres' = 'sqlite',
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const p = (value: unknown) => {
    params.push(value);
    return param(params.length);
  };
  // With a metadata filter the first condition's index entries drive the query (a selective value,
  // such as a parent object's id, finds its few files at once); without, the owner's files in order.
  const [first, ...rest] = filter.metadata ?? [];
  let from = 'uploads u';
  const where: string[] = [];
  if (first) {
    // (SQLite keeps a CROSS JOIN's order: the index entries first; PostgreSQL's planner sees it itself.)
    from = `metadata_index m ${dialect === 'sqlite' ? 'CROSS JOIN' : 'JOIN'} uploads u ON u.id = m.upload_id`;
    where.push(`m.owner = ${p(owner)}`, `m.key = ${p(first[0])}`, `m.value = ${p(first[1])}`);
  }
  where.push(`u.owner = ${p(owner)}`, `u.status = 'completed'`, 'u.is_part = 0');
  if (filter.contentType !== undefined) {
    // "image/*": any image type.
    if (filter.contentType.endsWith('/*')) where.push(`u.content_type LIKE ${p(`${filter.contentType.slice(0, -1)}%`)}`);
    else where.push(`u.content_type = ${p(filter.contentType)}`);
  }
  if (filter.createdAfter !== undefined) where.push(`u.created_at > ${p(filter.createdAfter)}`);
  if (filter.createdBefore !== undefined) where.push(`u.created_at < ${p(filter.createdBefore)}`);
  for (const [key, value] of rest) {
    where.push(`u.id IN (SELECT m.upload_id FROM metadata_index m WHERE m.owner = ${p(owner)} AND m.key = ${p(key)} AND m.value = ${p(value)})`);
  }
  if (after) {
    const at = p(after.createdAt);
    where.push(`(u.created_at < ${at} OR (u.created_at = ${p(after.createdAt)} AND u.id < ${p(after.id)}))`);
  }
  return { sql: `SELECT u.* FROM ${from} WHERE ${where.join(' AND ')} ORDER BY u.created_at DESC, u.id DESC LIMIT ${p(limit)}`, params };
}
