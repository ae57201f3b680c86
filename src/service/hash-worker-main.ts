import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs';
import type * as WorkerThreads from 'node:worker_threads';

/** Messages to the hashing thread. Those with `req` are answered with a {@link FromHashWorker}. */
export type ToHashWorker =
  /**
   * Start hashing a body being written into `path` at `at`, with SHA-256 and `algorithms`. With
   * `key`, and when the whole-file digest kept under `key` ends at `at` (or `at` is 0), the job
   * continues that digest instead of hashing its segment on its own: see `fromStart`.
   */
  | { t: 'open'; job: number; path: string; at: number; algorithms: string[]; key?: string }
  /** The body's bytes up to file offset `to` are written: hash them. */
  | { t: 'read'; job: number; to: number }
  /** Hash up to `to`, answer the SHA-256 of the segment since the last cut, start a new segment. */
  | { t: 'cut'; job: number; to: number; req: number }
  /** Hash up to `to`, answer SHA-256 of the last segment and every other digest, close the job. */
  | { t: 'end'; job: number; to: number; req: number }
  /**
   * Continue the whole-file SHA-256 kept under `key` (which covers [0, from)) with [from, to) of
   * `path` - or further, up to `recorded`, where a job's snapshot reaches (answered in `upTo`).
   */
  | { t: 'extend'; key: string; path: string; from: number; to: number; recorded: number; req: number }
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
  /** `sha256` (of a cut or end) covers the file from byte 0 to `to`, not only the segment. */
  fromStart?: boolean;
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

  /**
   * A job that continues a whole-file digest leaves a snapshot of it at every cut and at its end.
   * They wait here until the main thread has recorded those bytes and asks to `extend` the digest
   * over them: then the snapshot is taken instead of reading and hashing the bytes a second time.
   */
  interface Chain {
    /** The kept digest's `upTo` when the job started. */
    from: number;
    /** Digest of [0, end), by end. */
    snaps: Map<number, Crypto.Hash>;
  }
  interface Job {
    fd: number | null;
    pos: number;
    /** The segment's SHA-256 - or, with `chain`, the whole file's from byte 0. */
    sha256: Crypto.Hash;
    checks: Map<string, Crypto.Hash>;
    error: string | null;
    chain: Chain | null;
    key: string | undefined;
  }
  const jobs = new Map<number, Job>();
  const running = new Map<string, { hash: Crypto.Hash; upTo: number }>();
  const chains = new Map<string, Chain>();

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
        const job: Job = { fd: null, pos: m.at, sha256: crypto.createHash('sha256'), checks: new Map(), error: null, chain: null, key: m.key };
        if (m.key !== undefined) {
          // Whatever an earlier job of this key left is stale now: its bytes are recorded and
          // taken over already, or they never will be (this job writes over them).
          chains.delete(m.key);
          const kept = running.get(m.key);
          if (m.at === 0 || kept?.upTo === m.at) {
            if (m.at > 0) job.sha256 = (kept as { hash: Crypto.Hash }).hash.copy();
            job.chain = { from: m.at, snaps: new Map() };
            chains.set(m.key, job.chain);
          }
        }
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
        let sha256: string;
        const fromStart = job.chain !== null;
        if (job.chain) {
          sha256 = job.sha256.copy().digest('hex');
          // Only while no later job of the key has started (that one made this chain stale).
          if (chains.get(job.key as string) === job.chain) job.chain.snaps.set(job.pos, m.t === 'end' ? job.sha256 : job.sha256.copy());
        } else {
          sha256 = job.sha256.digest('hex');
          job.sha256 = crypto.createHash('sha256');
        }
        if (m.t === 'cut') return answer({ req: m.req, sha256, fromStart });
        const checks: Record<string, Uint8Array> = {};
        for (const [a, h] of job.checks) checks[a] = h.digest();
        return answer({ req: m.req, sha256, checks, fromStart });
      }
      case 'extend': {
        // From 0 is a fresh start, whatever was kept before.
        if (m.from === 0) running.set(m.key, { hash: crypto.createHash('sha256'), upTo: 0 });
        const e = running.get(m.key);
        if (!e || e.upTo !== m.from) return answer({ req: m.req, lost: true });
        // Bytes a job of this key hashed on their way in: take its snapshot at the furthest end
        // it reached among the recorded bytes (segments end where pieces ended, not on `to`).
        // A key's appends never run at once and recorded bytes never change, so the snapshot
        // hashed exactly these bytes.
        const chain = chains.get(m.key);
        if (chain && chain.from === e.upTo) {
          let best = -1;
          for (const end of chain.snaps.keys()) if (end > e.upTo && end <= m.recorded && end > best) best = end;
          if (best > 0) {
            e.hash = chain.snaps.get(best) as Crypto.Hash;
            e.upTo = best;
            chain.from = best;
            for (const end of chain.snaps.keys()) if (end <= best) chain.snaps.delete(end);
          }
        }
        if (e.upTo >= m.to) return answer({ req: m.req, upTo: e.upTo });
        let fd: number | null = null;
        try {
          fd = fs.openSync(m.path, 'r');
          hashRange(fd, e.upTo, m.to, [e.hash]);
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
        chains.delete(m.key);
        return;
    }
  });
}
