import type { Db } from './database.js';

interface Pending {
  op: () => unknown;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/**
 * Commits the ledger writes requested in one turn of the event loop as one transaction.
 *
 * Every commit ends in a WAL fsync (`synchronous = FULL`) that blocks the event loop, and SQLite
 * commits one writer at a time, so with several chunks finishing together each used to wait for
 * the others' fsyncs in turn. Chunks whose bytes became durable while a commit was running are
 * now recorded by the next commit together: one fsync for all of them (BENCHMARKS.md item 16).
 *
 * Each write runs in a savepoint of its own (better-sqlite3 nests a transaction function called
 * inside another one as a SAVEPOINT), so a write that throws is undone alone and only its caller
 * sees the error. Callers are answered only after the whole transaction is committed: nobody is
 * told a write is recorded before it is durable.
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  /** Transactions committed and writes in them, for the metrics (writes / commits = batch size). */
  readonly stats = { commits: 0, writes: 0 };
  private readonly commitAll: (batch: Pending[]) => Array<{ ok: true; value: unknown } | { ok: false; error: unknown }>;

  constructor(db: Db) {
    const commitAll = db.transaction((batch: Pending[]) =>
      batch.map((item) => {
        try {
          return { ok: true as const, value: item.op() };
        } catch (error) {
          return { ok: false as const, error };
        }
      }),
    );
    // IMMEDIATE: take the write lock at BEGIN, as every single-write transaction here does.
    this.commitAll = (batch) => commitAll.immediate(batch);
  }

  /** Runs `op` (a transaction function of the same database) in the next group commit. */
  run<T>(op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate runs after the poll phase, so every fdatasync that completed in this turn
        // (their callbacks all run in that phase) has queued its write by then.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    let outcomes: ReturnType<typeof this.commitAll>;
    try {
      outcomes = this.commitAll(batch);
      this.stats.commits++;
      this.stats.writes += batch.length;
    } catch (error) {
      // The commit itself failed (disk full, I/O error, database closed): nothing was recorded.
      for (const item of batch) item.reject(error);
      return;
    }
    outcomes.forEach((outcome, i) => {
      const item = batch[i] as Pending;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }
}
