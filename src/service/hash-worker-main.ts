import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs';
import type * as WorkerThreads from 'node:worker_threads';

/** Messages to the hashing thread. Those with `req` are answered with a {@link FromHashWorker}. */
export type ToHashWorker =
  /** Start hashing a body being written into `path` at `at`, with SHA-256 and `algorithms`. */
  | { t: 'open'; job: number; path: string; at: number; algorithms: string[] }
  /** The body's bytes up to file offset `to` are written: hash them. */
  | { t: 'read'; job: number; to: number }
  /** Hash up to `to`, answer the SHA-256 of the segment since the last cut, start a new segment. */
  | { t: 'cut'; job: number; to: number; req: number }
  /** Hash up to `to`, answer SHA-256 of the last segment and every other digest, close the job. */
  | { t: 'end'; job: number; to: number; req: number }
  /** Continue the whole-file SHA-256 kept under `key` (which covers [0, from)) with [from, to) of `path`. */
  | { t: 'extend'; key: string; path: string; from: number; to: number; req: number }
  /** The whole-file SHA-256 kept under `key`, and how many bytes it covers. */
  | { t: 'digest'; key: string; req: number }
  | { t: 'forget'; key: string };

export interface FromHashWorker {
  req: number;
  error?: string;
  sha256?: string;
  /** Digests of the other algorithms, by name. */
  checks?: Record<string, Uint8Array>;
  /** Bytes the whole-file digest covers. */
  upTo?: number;
  /** The thread holds no digest that continues at `from` (it was restarted): start again at 0. */
  lost?: boolean;
}

/**
 * The hashing thread's code. It runs as an `eval` worker (the same text works from TypeScript
 * sources, the bundle and the single executable, where there is no file to point a Worker at), so
 * it must use nothing from outside its own body: Node's modules are passed in.
 *
 * It hashes bytes the main thread has already written, by reading them back from the staging file
 * (the page cache, a memory copy) in 1 MiB pieces. The main thread only parses HTTP and writes;
 * hashing, the largest cost of a verified upload, runs on the other core.
 */
export function hashWorkerMain(wt: typeof WorkerThreads, fs: typeof Fs, crypto: typeof Crypto): void {
  const port = wt.parentPort as WorkerThreads.MessagePort;
  const PIECE = 1024 * 1024;
  let buf: Buffer | null = null;

  interface Job {
    fd: number | null;
    pos: number;
    sha256: Crypto.Hash;
    checks: Map<string, Crypto.Hash>;
    error: string | null;
  }
  const jobs = new Map<number, Job>();
  const running = new Map<string, { hash: Crypto.Hash; upTo: number }>();

  /** Reads [from, to) of fd and feeds it to `hashes`. */
  const hashRange = (fd: number, from: number, to: number, hashes: Crypto.Hash[]): void => {
    buf ??= Buffer.allocUnsafe(PIECE);
    for (let pos = from; pos < to; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(PIECE, to - pos), pos);
      if (n === 0) throw new Error(`the file ends at byte ${pos}, before byte ${to}`);
      const piece = buf.subarray(0, n);
      for (const h of hashes) h.update(piece);
      pos += n;
    }
  };
  const advance = (job: Job, to: number): void => {
    if (job.error !== null || job.fd === null || to <= job.pos) return;
    try {
      hashRange(job.fd, job.pos, to, [job.sha256, ...job.checks.values()]);
      job.pos = to;
    } catch (err) {
      job.error = String(err);
    }
  };
  const close = (job: Job): void => {
    if (job.fd !== null) fs.closeSync(job.fd);
    job.fd = null;
  };
  const answer = (msg: FromHashWorker): void => port.postMessage(msg);

  port.on('message', (m: ToHashWorker) => {
    switch (m.t) {
      case 'open': {
        const job: Job = { fd: null, pos: m.at, sha256: crypto.createHash('sha256'), checks: new Map(), error: null };
        try {
          for (const a of m.algorithms) job.checks.set(a, crypto.createHash(a));
          job.fd = fs.openSync(m.path, 'r');
        } catch (err) {
          job.error = String(err);
        }
        jobs.set(m.job, job);
        return;
      }
      case 'read': {
        const job = jobs.get(m.job);
        if (job) advance(job, m.to);
        return;
      }
      case 'cut':
      case 'end': {
        const job = jobs.get(m.job);
        if (!job) return answer({ req: m.req, error: 'unknown hashing job (the hashing thread was restarted)' });
        advance(job, m.to);
        if (m.t === 'end') {
          jobs.delete(m.job);
          close(job);
        }
        if (job.error !== null) return answer({ req: m.req, error: job.error });
        const sha256 = job.sha256.digest('hex');
        job.sha256 = crypto.createHash('sha256');
        if (m.t === 'cut') return answer({ req: m.req, sha256 });
        const checks: Record<string, Uint8Array> = {};
        for (const [a, h] of job.checks) checks[a] = h.digest();
        return answer({ req: m.req, sha256, checks });
      }
      case 'extend': {
        // From 0 is a fresh start, whatever was kept before.
        if (m.from === 0) running.set(m.key, { hash: crypto.createHash('sha256'), upTo: 0 });
        const e = running.get(m.key);
        if (!e || e.upTo !== m.from) return answer({ req: m.req, lost: true });
        let fd: number | null = null;
        try {
          fd = fs.openSync(m.path, 'r');
          hashRange(fd, m.from, m.to, [e.hash]);
          e.upTo = m.to;
          return answer({ req: m.req, upTo: e.upTo });
        } catch (err) {
          // Part of the range may have been fed: this digest can no longer be trusted.
          running.delete(m.key);
          return answer({ req: m.req, error: String(err) });
        } finally {
          if (fd !== null) fs.closeSync(fd);
        }
      }
      case 'digest': {
        const e = running.get(m.key);
        return answer({ req: m.req, upTo: e?.upTo ?? 0, ...(e && { sha256: e.hash.copy().digest('hex') }) });
      }
      case 'forget':
        running.delete(m.key);
        return;
    }
  });
}
