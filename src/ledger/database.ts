import Database from 'better-sqlite3';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/**
 * Opens (creating if needed) the ledger database and brings its schema up to date.
 *
 * WAL lets status reads run while a chunk is being recorded. `synchronous = FULL` makes every
 * commit durable before it returns: a chunk is acknowledged only after its ledger row is committed,
 * and with NORMAL a power loss could drop the last commits that clients were already told about.
 * The extra WAL fsync is one per chunk, small next to the chunk's own fdatasync.
 */
export function openDatabase(file: string): Db {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return db;
}

/** Applies every migration newer than `PRAGMA user_version`, each in its own transaction. */
export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database schema (version ${current}) is newer than this sluice (version ${MIGRATIONS.length})`);
  }
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    const sql = MIGRATIONS[version - 1] as string;
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version}`);
    })();
  }
}
