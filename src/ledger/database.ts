import Database from 'better-sqlite3';
import { MIGRATIONS } from './migrations.js';
import { embeddedSqliteBinding, inSea } from '../lib/sea.js';

export type Db = Database.Database;

/**
 * Opens (creating if needed) the ledger database and brings its schema up to date.
 *
 * WAL lets status reads run while a chunk is being recorded. `synchronous = FULL` makes every
 * commit durable before it returns: a chunk is acknowledged only after its ledger row is committed,
 * and with NORMAL a power loss could drop the last commits that clients were already told about.
 * The WAL fsync is one per commit; chunks recorded in the same turn of the event loop share one
 * (see group-commit.ts).
 */
export class DatabaseDamagedError extends Error {
  override name = 'DatabaseDamagedError';
}

export function openDatabase(file: string): Db {
  // In a single executable the addon is loaded from the binary; better-sqlite3 accepts the loaded
  // module as nativeBinding (its types only mention a path).
  const db = inSea() ? new Database(file, { nativeBinding: embeddedSqliteBinding() as string }) : new Database(file);
  // A damaged ledger must stop start-up with a clear message, not fail later on some request.
  let check: unknown;
  try {
    check = db.pragma('quick_check', { simple: true });
  } catch (err) {
    db.close();
    throw new DatabaseDamagedError(`the ledger ${file} cannot be read (${(err as Error).message}); restore it from a backup or move it away to start empty`, {
      cause: err,
    });
  }
  if (check !== 'ok') {
    db.close();
    throw new DatabaseDamagedError(`the ledger ${file} is damaged (quick_check: ${String(check)}); restore it from a backup or move it away to start empty`);
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

/**
 * Copies the WAL back into the database and truncates it. SQLite checkpoints on its own every
 * 1000 pages, but only when no reader is in the way; doing it from the sweeper as well keeps the
 * WAL from growing without bound under steady load.
 */
export function checkpoint(db: Db): void {
  db.pragma('wal_checkpoint(TRUNCATE)');
}

/** Applies every migration newer than `PRAGMA user_version`, each in its own transaction. */
export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database schema (version ${current}) is newer than this sluice (version ${MIGRATIONS.length})`);
  }
  if (current === MIGRATIONS.length) return;
  // A migration may rebuild a table (SQLite's way to change constraints): with foreign keys on,
  // dropping the old table would cascade into the rows that reference it. They are switched off
  // around the migrations (the pragma is ignored inside a transaction) and checked before commit.
  db.pragma('foreign_keys = OFF');
  try {
    for (let version = current + 1; version <= MIGRATIONS.length; version++) {
      const sql = MIGRATIONS[version - 1] as string;
      db.transaction(() => {
        db.exec(sql);
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length > 0) throw new Error(`migration ${version} left ${broken.length} rows without their upload`);
        db.pragma(`user_version = ${version}`);
      })();
    }
  } finally {
    db.pragma('foreign_keys = ON');
  }
}
