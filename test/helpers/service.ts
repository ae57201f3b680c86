import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { openDatabase } from '../../src/ledger/database.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { HashWorker } from '../../src/service/hashing/hash-worker.js';
import { UploadService } from '../../src/service/upload-service.js';
import { LocalStore } from '../../src/storage/local-store.js';
import { StagingArea } from '../../src/storage/staging-area.js';
import { nodeIo, type StagingIo } from '../../src/storage/staging-handle.js';
import { testConfig, tmpDir, type TestContext } from './server.js';

/**
 * The upload service over a temporary SQLite ledger, a real staging area and a local store, with
 * no HTTP: for unit tests of the use cases. `io` replaces the staging file's system calls.
 */
export async function serviceFor(t: TestContext, opts: { env?: Record<string, string>; io?: StagingIo; now?: () => number } = {}) {
  const dir = await tmpDir(t);
  const config = testConfig(dir, opts.env);
  const staging = new StagingArea(dir, { ...(opts.io && { io: opts.io }) });
  await staging.init();
  const store = new LocalStore(dir);
  await store.init();
  const ledger = new SqliteLedger(openDatabase(path.join(dir, 'sluice.db')));
  const hashing = new HashWorker();
  const service = new UploadService({ config, ledger, staging, store, hashing, log: pino({ level: 'silent' }), ...(opts.now && { now: opts.now }) });
  t.teardown(async () => {
    await service.close();
    await ledger.close();
  });
  return { service, ledger, staging, store, hashing, dir, config };
}

export type FaultPlan = {
  /** Fails the next this many fdatasyncs with EIO (after doing them, as a disk that lost pages). */
  failSyncs: number;
  /** While set, fdatasyncs wait for it first (a hung disk). */
  hold: Promise<void> | null;
  /** fdatasyncs done so far. */
  syncs: number;
};

/** A staging I/O whose flushes fail or hang on demand, the way a failing disk's do. */
export function faultyIo(): { io: StagingIo; plan: FaultPlan } {
  const plan: FaultPlan = { failSyncs: 0, hold: null, syncs: 0 };
  const io: StagingIo = {
    write: nodeIo.write,
    async datasync(fh) {
      plan.syncs++;
      if (plan.hold) await plan.hold;
      await nodeIo.datasync(fh);
      if (plan.failSyncs > 0) {
        plan.failSyncs--;
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' });
      }
    },
  };
  return { io, plan };
}

/** A body the test feeds by hand. */
export function bodyStream(): PassThrough {
  return new PassThrough({ highWaterMark: 64 * 1024 });
}

/** Feeds `data` in 64 KiB pieces, letting the reader take each. */
export async function feed(stream: PassThrough, data: Buffer, end = true): Promise<void> {
  for (let off = 0; off < data.length; off += 64 * 1024) {
    if (!stream.write(data.subarray(off, off + 64 * 1024))) await new Promise((r) => stream.once('drain', r));
  }
  if (end) stream.end();
}

export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
