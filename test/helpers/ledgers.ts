import path from 'node:path';
import { openDatabase } from '../../src/ledger/database.js';
import type { Ledger, NewUpload } from '../../src/ledger/ledger.js';
import { PgLedger } from '../../src/ledger/pg-ledger.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { startPostgres } from './postgres.js';
import { type TestContext, tmpDir } from './server.js';

export type LedgerKind = 'sqlite' | 'postgres';

/**
 * The ledgers a contract test runs against: SQLite always, PostgreSQL on a real cluster started
 * for the test file (skipped, with a message, where the machine has no PostgreSQL).
 */
export async function ledgerKinds(t: TestContext & { comment(message: string): void }) {
  const pg = await startPostgres(t);
  if (!pg) t.comment('PostgreSQL is not installed here (scripts/install-postgres.sh): the PostgreSQL ledger is not tested');
  const kinds: LedgerKind[] = pg ? ['sqlite', 'postgres'] : ['sqlite'];
  /** A fresh, empty ledger of that kind, closed at teardown. */
  const make = async (t: TestContext, kind: LedgerKind, progressIntervalMs = 0): Promise<Ledger> => {
    if (kind === 'sqlite') {
      const db = openDatabase(path.join(await tmpDir(t), 'ledger.db'));
      t.teardown(() => db.open && db.close());
      return new SqliteLedger(db, { progressIntervalMs });
    }
    const l = await PgLedger.open(await (pg as NonNullable<typeof pg>).database(), { progressIntervalMs, poolSize: 4 });
    t.teardown(() => l.close());
    return l;
  };
  return { kinds, make, postgres: pg };
}

/** Upload u1 of alice: 25 bytes in chunks of 10, for ledger tests. */
export const sampleUpload = (over: Partial<NewUpload> = {}): NewUpload => ({
  id: 'u1',
  owner: 'alice',
  layout: 'grid',
  protocol: 'native',
  fileName: 'f',
  contentType: 'application/octet-stream',
  metadata: { a: 'b' },
  size: 25,
  chunkSize: 10,
  totalChunks: 3,
  expectedSha256: null,
  createdAt: 1000,
  expiresAt: 5000,
  ...over,
});
