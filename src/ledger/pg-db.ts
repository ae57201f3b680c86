import pg from 'pg';
import { PG_MIGRATIONS } from './pg-migrations.js';

// BIGINT columns (sizes, offsets, epoch milliseconds) as numbers: all of them stay below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type Pool = pg.Pool;
export type Client = pg.PoolClient;
/** Something that runs a query: the pool (its own transaction) or a client inside one. */
export type Queryable = Pick<pg.Pool, 'query'>;

/** One advisory lock key for the schema's migrations (any constant; "sluice" in ASCII). */
const MIGRATION_LOCK = 0x736c7569;

export function openPool(url: string, max = 10): Pool {
  const pool = new pg.Pool({ connectionString: url, max, application_name: 'sluice' });
  // An idle client's error (the server restarted) must not crash the process; the pool drops it.
  pool.on('error', () => {});
  return pool;
}

/** Runs `fn` in one transaction on one client: committed when it returns, rolled back when it throws. */
export async function inTransaction<T>(pool: Pool, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Brings the schema up to date. Nodes starting together take turns (an advisory lock), so that
 * each migration runs once, in its own transaction with its version.
 */
export async function migratePg(pool: Pool): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query('CREATE TABLE IF NOT EXISTS sluice_schema (version INTEGER NOT NULL)');
    const row = (await client.query<{ version: number }>('SELECT max(version) AS version FROM sluice_schema')).rows[0];
    let current = row?.version ?? 0;
    const newest = PG_MIGRATIONS.at(-1)?.version ?? 0;
    if (current > newest) throw new Error(`the database schema (version ${current}) is newer than this sluice (version ${newest})`);
    for (const m of PG_MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO sluice_schema (version) VALUES ($1)', [m.version]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
      current = m.version;
    }
    return current;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    client.release();
  }
}
