import type * as Crypto from 'node:crypto';
import type * as Fs from 'node:fs';
import type * as WorkerThreads from 'node:worker_threads';

/** Messages to the hashing thread. Those with `req` are answered with a {@link FromHashWorker}. */
export type ToHashWorker =
  /**
   * Start hashing a body being written into `path` at `at`, with SHA-256 and `algorithms`. With
   * `whole`, and when the whole-file digest kept under `whole.key` ends at `at` (or `at` is 0), the
   * job also continues a copy of that digest from the same reads (with `whole.segment`, the bytes
   * not yet reached at the end are read once more, after the answer); without `whole.segment` it
   * then answers that digest (`fromStart`) instead of hashing the segment on its own.
   */
  | { t: 'open'; job: number; path: string; at: number; algorithms: string[]; whole?: { key: string; segment: boolean } }
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
  /** The job's bytes up to `end` were recorded: its digest of [0, end) may continue the kept one. */
  | { t: 'confirm'; job: number; end: number }
  /** Nothing more of the job will be recorded: drop what it left unconfirmed. */
  | { t: 'settle'; job: number }
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

  interface Job {
    fd: number | null;
    pos: number;
    /** The segment's SHA-256; null when only the whole-file digest is wanted. */
    sha256: Crypto.Hash | null;
    /** The whole-file digest continued by this job (covers [0, pos)), if it could be. */
    whole: Crypto.Hash | null;
    checks: Map<string, Crypto.Hash>;
    error: string | null;
  }
  const jobs = new Map<number, Job>();
  const running = new Map<string, { hash: Crypto.Hash; upTo: number }>();
  /**
   * A job that continues a whole-file digest leaves a copy of it at every cut and at its end, here
   * by job, until the main thread says those bytes are recorded (`confirm`) or will not be
   * (`settle`). Only confirmed ones move to `confirmed`, by key, where `extend` takes them instead
   * of reading the bytes back and hashing them a second time. Recorded bytes never change, so a
   * confirmed digest stays the digest of the file's [0, end).
   */
  const awaiting = new Map<number, { key: string; snaps: Map<number, Crypto.Hash> }>();
  const confirmed = new Map<string, Map<number, Crypto.Hash>>();

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
  /** Hashes the job's bytes up to `to`; with `whole` false, not into the whole-file digest. */
  const advance = (job: Job, to: number, whole = true): void => {
    if (job.error !== null || job.fd === null || to <= job.pos) return;
    try {
      const hashes = [...job.checks.values()];
      if (job.sha256) hashes.push(job.sha256);
      if (job.whole && whole) hashes.push(job.whole);
      hashRange(job.fd, job.pos, to, hashes);
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
        const job: Job = { fd: null, pos: m.at, sha256: null, whole: null, checks: new Map(), error: null };
        if (m.whole) {
          const kept = running.get(m.whole.key);
          if (m.at === 0) job.whole = crypto.createHash('sha256');
          else if (kept?.upTo === m.at) job.whole = kept.hash.copy();
          if (job.whole) awaiting.set(m.job, { key: m.whole.key, snaps: new Map() });
        }
        if (!job.whole || m.whole?.segment) job.sha256 = crypto.createHash('sha256');
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
        // A chunk's request waits for its own digest, not for the whole-file one it also feeds
        // (that one is wanted at finish). So at its end, where the bytes not yet reached are all
        // the request is waiting for, they are hashed for the chunk first and answered; only then
        // are they read again (from the page cache) for the whole-file digest.
        const late = m.t === 'end' && job.sha256 !== null && job.whole !== null ? job.pos : null;
        advance(job, m.to, late === null);
        if (m.t === 'end') jobs.delete(m.job);
        if (job.error !== null) {
          close(job);
          return answer({ req: m.req, error: job.error });
        }
        const left = awaiting.get(m.job);
        let sha256: string;
        const fromStart = job.sha256 === null;
        if (job.sha256) {
          sha256 = job.sha256.digest('hex');
          job.sha256 = crypto.createHash('sha256');
        } else {
          sha256 = (job.whole as Crypto.Hash).copy().digest('hex');
        }
        if (m.t === 'cut') {
          if (job.whole && left) left.snaps.set(job.pos, job.whole.copy());
          return answer({ req: m.req, sha256, fromStart });
        }
        const checks: Record<string, Uint8Array> = {};
        for (const [a, h] of job.checks) checks[a] = h.digest();
        answer({ req: m.req, sha256, checks, fromStart });
        if (job.whole && left) {
          try {
            if (late !== null) hashRange(job.fd as number, late, job.pos, [job.whole]);
            // The job's digest is never fed again: kept as it is, not copied.
            left.snaps.set(job.pos, job.whole);
          } catch {
            // The chunk's answer stands; the whole-file digest reads these bytes back instead.
            awaiting.delete(m.job);
          }
        }
        close(job);
        return;
      }
      case 'confirm': {
        const left = awaiting.get(m.job);
        const snap = left?.snaps.get(m.end);
        if (!left || !snap) return;
        let mine = confirmed.get(left.key);
        if (!mine) confirmed.set(left.key, (mine = new Map()));
        mine.set(m.end, snap);
        for (const end of left.snaps.keys()) if (end <= m.end) left.snaps.delete(end);
        return;
      }
      case 'settle':
        awaiting.delete(m.job);
        return;
      case 'extend': {
        // From 0 is a fresh start, whatever was kept before.
        if (m.from === 0) running.set(m.key, { hash: crypto.createHash('sha256'), upTo: 0 });
        const e = running.get(m.key);
        if (!e || e.upTo !== m.from) return answer({ req: m.req, lost: true });
        // Bytes a job hashed on their way in and that were recorded since: take its digest at the
        // furthest end among the recorded bytes (a segment ends where a piece ended, not on `to`).
        const mine = confirmed.get(m.key);
        if (mine) {
          let best = -1;
          for (const end of mine.keys()) if (end > e.upTo && end <= m.recorded && end > best) best = end;
          if (best > 0) {
            e.hash = mine.get(best) as Crypto.Hash;
            e.upTo = best;
          }
          for (const end of mine.keys()) if (end <= e.upTo) mine.delete(end);
          if (mine.size === 0) confirmed.delete(m.key);
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
        confirmed.delete(m.key);
        for (const [job, left] of awaiting) if (left.key === m.key) awaiting.delete(job);
        return;
    }
  });
}
