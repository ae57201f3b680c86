/**
 * The hashing thread's entry (bundled on its own by esbuild: dist/server/hash-thread.js, and an
 * asset of the single executable). It hashes bytes the main thread has already written, by
 * reading them back from the staging file (the page cache, a memory copy) in 1 MiB pieces: the
 * main thread only parses HTTP and writes, and hashing, the largest cost of a verified upload,
 * runs on the other core. The messages and their rules are in hash-messages.ts.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, type MessagePort } from 'node:worker_threads';
import type { FromHashThread, ToHashThread } from './hash-messages.js';

const PIECE = 1024 * 1024;
let buf: Buffer | null = null;

/**
 * One read descriptor per staging file, however many jobs read it (several chunks of one upload
 * at once): a server near its descriptor limit holds one per upload here, not one per body.
 */
const files = new Map<string, { fd: number; users: number }>();
function openShared(path: string): number {
  const f = files.get(path);
  if (f) {
    f.users++;
    return f.fd;
  }
  const fd = openSync(path, 'r');
  files.set(path, { fd, users: 1 });
  return fd;
}
function closeShared(path: string): void {
  const f = files.get(path);
  if (!f || --f.users > 0) return;
  files.delete(path);
  closeSync(f.fd);
}

interface Job {
  path: string;
  fd: number | null;
  pos: number;
  /** The segment's own SHA-256; null when it is not wanted. */
  own: Hash | null;
  /** The whole-file digest continued by this job (covers [0, pos)), if it could be. */
  whole: Hash | null;
  checks: Map<string, Hash>;
  error: string | null;
}
const jobs = new Map<number, Job>();
const running = new Map<string, { hash: Hash; upTo: number }>();
/**
 * Copies of the whole-file digest that jobs left at their cuts and ends, by job, until the main
 * thread says those bytes are recorded (`confirm`) or will not be (`settle`). Only confirmed ones
 * move to `confirmed`, by key, where `extend` takes them instead of reading the bytes back.
 * Recorded bytes never change, so a confirmed copy stays the digest of the file's [0, end).
 */
const awaiting = new Map<number, { key: string; snaps: Map<number, Hash> }>();
const confirmed = new Map<string, Map<number, Hash>>();

/** Reads [from, to) of fd and feeds it to `hashes`. */
function hashRange(fd: number, from: number, to: number, hashes: Hash[]): void {
  buf ??= Buffer.allocUnsafe(PIECE);
  for (let pos = from; pos < to; ) {
    const n = readSync(fd, buf, 0, Math.min(PIECE, to - pos), pos);
    if (n === 0) throw new Error(`the file ends at byte ${pos}, before byte ${to}`);
    const piece = buf.subarray(0, n);
    for (const h of hashes) h.update(piece);
    pos += n;
  }
}

/** Hashes the job's bytes up to `to`; with `whole` false, not into the whole-file digest. */
function advance(job: Job, to: number, whole = true): void {
  if (job.error !== null || job.fd === null || to <= job.pos) return;
  try {
    const hashes = [...job.checks.values()];
    if (job.own) hashes.push(job.own);
    if (job.whole && whole) hashes.push(job.whole);
    hashRange(job.fd, job.pos, to, hashes);
    job.pos = to;
  } catch (err) {
    job.error = String(err);
  }
}

function close(job: Job): void {
  if (job.fd !== null) closeShared(job.path);
  job.fd = null;
}

function open(m: Extract<ToHashThread, { t: 'open' }>): void {
  const job: Job = { path: m.path, fd: null, pos: m.at, own: m.own ? createHash('sha256') : null, whole: null, checks: new Map(), error: null };
  if (m.key !== undefined) {
    const kept = running.get(m.key);
    if (m.at === 0) job.whole = createHash('sha256');
    else if (kept?.upTo === m.at) job.whole = kept.hash.copy();
    if (job.whole) awaiting.set(m.job, { key: m.key, snaps: new Map() });
  }
  try {
    for (const a of m.algorithms) job.checks.set(a, createHash(a));
    job.fd = openShared(m.path);
  } catch (err) {
    job.error = String(err);
  }
  jobs.set(m.job, job);
}

function cutOrEnd(m: Extract<ToHashThread, { t: 'cut' | 'end' }>): FromHashThread | undefined {
  const job = jobs.get(m.job);
  if (!job) return { req: m.req, error: 'unknown hashing job (the hashing thread was restarted)' };
  // A chunk's request waits for its own digest, not for the whole-file one it also feeds (that
  // one is wanted at finish). So at its end the bytes not yet reached are hashed for the chunk
  // first and answered; only then are they read again (from the page cache) for the whole file.
  const late = m.t === 'end' && job.own !== null && job.whole !== null ? job.pos : null;
  advance(job, m.to, late === null);
  if (m.t === 'end') jobs.delete(m.job);
  if (job.error !== null) {
    close(job);
    return { req: m.req, error: job.error };
  }
  const left = awaiting.get(m.job);
  const sha256 = job.own?.digest('hex');
  if (job.own) job.own = createHash('sha256');
  if (m.t === 'cut') {
    if (job.whole && left) left.snaps.set(job.pos, job.whole.copy());
    return { req: m.req, ...(sha256 !== undefined && { sha256 }) };
  }
  const checks: Record<string, Uint8Array> = {};
  for (const [a, h] of job.checks) checks[a] = h.digest();
  answer({ req: m.req, checks, ...(sha256 !== undefined && { sha256 }) });
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
  return undefined;
}

function confirm(m: Extract<ToHashThread, { t: 'confirm' }>): void {
  const left = awaiting.get(m.job);
  const snap = left?.snaps.get(m.end);
  if (!left || !snap) return;
  const mine = confirmed.get(left.key) ?? new Map<number, Hash>();
  confirmed.set(left.key, mine);
  mine.set(m.end, snap);
  for (const end of left.snaps.keys()) if (end <= m.end) left.snaps.delete(end);
}

function extend(m: Extract<ToHashThread, { t: 'extend' }>): FromHashThread {
  // From 0 is a fresh start, whatever was kept before.
  if (m.from === 0) running.set(m.key, { hash: createHash('sha256'), upTo: 0 });
  const e = running.get(m.key);
  if (!e || e.upTo !== m.from) return { req: m.req, lost: true };
  // Bytes a job hashed on their way in and that were recorded since: take its copy at the furthest
  // end among the recorded bytes (a segment ends where a piece ended, not on `to`).
  const mine = confirmed.get(m.key);
  if (mine) {
    let best = -1;
    for (const end of mine.keys()) if (end > e.upTo && end <= m.recorded && end > best) best = end;
    if (best > 0) {
      e.hash = mine.get(best) as Hash;
      e.upTo = best;
    }
    for (const end of mine.keys()) if (end <= e.upTo) mine.delete(end);
    if (mine.size === 0) confirmed.delete(m.key);
  }
  if (e.upTo >= m.to) return { req: m.req, upTo: e.upTo };
  let fd: number | null = null;
  try {
    fd = openShared(m.path);
    hashRange(fd, e.upTo, m.to, [e.hash]);
    e.upTo = m.to;
    return { req: m.req, upTo: e.upTo };
  } catch (err) {
    // Part of the range may have been fed: this digest can no longer be trusted.
    running.delete(m.key);
    return { req: m.req, error: String(err) };
  } finally {
    if (fd !== null) closeShared(m.path);
  }
}

function handle(m: ToHashThread): FromHashThread | undefined {
  switch (m.t) {
    case 'open':
      return void open(m);
    case 'read': {
      const job = jobs.get(m.job);
      if (job) advance(job, m.to);
      return undefined;
    }
    case 'cut':
    case 'end':
      return cutOrEnd(m);
    case 'confirm':
      return void confirm(m);
    case 'settle':
      awaiting.delete(m.job);
      return undefined;
    case 'extend':
      return extend(m);
    case 'digest': {
      const e = running.get(m.key);
      return { req: m.req, upTo: e?.upTo ?? 0, ...(e && { sha256: e.hash.copy().digest('hex') }) };
    }
    case 'forget':
      running.delete(m.key);
      confirmed.delete(m.key);
      for (const [job, left] of awaiting) if (left.key === m.key) awaiting.delete(job);
      return undefined;
  }
}

const port = parentPort as MessagePort;
function answer(msg: FromHashThread): void {
  port.postMessage(msg);
}
port.on('message', (m: ToHashThread) => {
  const reply = handle(m);
  if (reply) answer(reply);
});
