import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { inSea, seaAsset } from '../../lib/sea.js';
import type { FromHashThread, HashRequest, ToHashThread } from './hash-messages.js';

/** A body's digests: its own SHA-256 (when asked for) and any algorithms a client asked for. */
export interface BodyDigests extends SegmentDigest {
  checks: Map<string, Buffer>;
}

export interface SegmentDigest {
  /** The segment's own SHA-256, hex; undefined when the job was not asked for it. */
  sha256: string | undefined;
}

/** What a job computes besides continuing the whole-file digest. */
export interface JobOptions {
  /** Other algorithms (a client's checksum), digested over the whole body. */
  algorithms?: string[];
  /** Whether the body's own SHA-256 is wanted (a chunk's is checked and recorded; an append's is not). */
  own: boolean;
  /** The whole-file digest to continue (the upload's id), when the body starts where it ends. */
  key?: string;
}

/**
 * Hashes a body as it is written: told each piece once it is written (`update`), answers the
 * segment's SHA-256 at a checkpoint (`cut`) and every digest at the end (`end`, always called).
 */
export interface BodyHasher {
  /** `piece` was written and ends at byte `end` of the file. */
  update(piece: Buffer, end: number): void;
  /** A checkpoint: hash up to `end`, answer the own SHA-256 since the last cut. */
  cut(end: number): Promise<SegmentDigest>;
  end(end: number): Promise<BodyDigests>;
  /** The body's bytes up to `end` (a cut or the end) were recorded in the ledger. */
  recorded(end: number): void;
  /** Nothing more of the body will be recorded (called once, after `end`, whatever happened). */
  settle(): void;
}

/** The main thread tells the hashing thread about written bytes at most this often. */
const POST_EVERY = 1024 * 1024;
/** The hashing thread stops after this long with nothing to do (an idle server holds no thread). */
const DEFAULT_IDLE_MS = 10_000;
/**
 * ... unless it holds whole-file digests of uploads not finished yet: then it waits this long.
 * Stopping loses them, and the next chunk of a paused upload would read its whole prefix back
 * from the disk to start over (tens of seconds for tens of GiB), while the idle thread costs about
 * 10 MiB of memory. An hour covers the pauses of flaky networks; a longer one costs one read.
 */
const DEFAULT_HELD_IDLE_MS = 3_600_000;

/**
 * One hashing thread for the whole service, started on first use and stopped when idle. SHA-256
 * costs 0.6 CPU-seconds per GiB here per digest (a native chunk gets two: its own and the whole
 * file's; an append one, see `job`), about as much as writing the bytes. On the main thread it
 * capped a verified upload at about 270 MB/s while the same server without hashing took 600
 * (BENCHMARKS.md item 12); on this thread it runs on the second core, reading back from the staging
 * file what the main thread wrote.
 */
export class HashWorker {
  private worker: Worker | null = null;
  private nextReq = 1;
  private nextJob = 1;
  private readonly pending = new Map<number, { resolve: (m: FromHashThread) => void; reject: (e: Error) => void }>();
  private openJobs = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private lastUsed = 0;
  /** Keys of the whole-file digests the thread holds, and how many `forget`s there were. */
  private readonly held = new Set<string>();
  private forgets = 0;
  private closed = false;

  /** `idleMs`/`heldIdleMs`: idle time before the thread stops, without and with digests held. */
  constructor(
    private readonly idleMs = DEFAULT_IDLE_MS,
    private readonly heldIdleMs = DEFAULT_HELD_IDLE_MS,
  ) {}

  /**
   * Starts hashing a body that is being written into `path` from byte `at`. With `key`, when the
   * whole-file digest kept under `key` ends at `at` - or `at` is 0 - the job continues a copy of
   * it from the same reads, and once the body's bytes are `recorded`, `extend` takes that copy
   * instead of reading them back (BENCHMARKS.md item 17): an append (which wants no digest of its
   * own) is then read and hashed once.
   */
  job(path: string, at: number, opts: JobOptions): BodyHasher {
    const job = this.nextJob++;
    const { key } = opts;
    this.post({ t: 'open', job, path, at, algorithms: opts.algorithms ?? [], own: opts.own, ...(key !== undefined && { key }) });
    this.openJobs++;
    let posted = at;
    let ended = false;
    return {
      update: (_piece, end) => {
        if (end - posted < POST_EVERY) return;
        posted = end;
        this.post({ t: 'read', job, to: end });
      },
      cut: async (end) => {
        posted = end;
        const m = await this.request({ t: 'cut', job, to: end, req: 0 });
        return { sha256: m.sha256 };
      },
      end: async (end) => {
        if (ended) throw new Error('hashing job already ended');
        ended = true;
        try {
          const m = await this.request({ t: 'end', job, to: end, req: 0 });
          return { sha256: m.sha256, checks: new Map(Object.entries(m.checks ?? {}).map(([a, d]) => [a, Buffer.from(d)])) };
        } finally {
          this.openJobs--;
          this.idle();
        }
      },
      // Posted in order on the same port, so a confirm always reaches the thread before any
      // extend the main thread sends after it.
      recorded: (end) => {
        if (key !== undefined && this.worker) this.post({ t: 'confirm', job, end });
      },
      settle: () => {
        if (key !== undefined && this.worker) this.post({ t: 'settle', job });
      },
    };
  }

  /**
   * Continues the whole-file digest of `key` (covering [0, from)) with [from, to) of `path`, or
   * further where an append's job already hashed recorded bytes (up to `recorded`, see `job`).
   * Returns where the digest ends now, or null when the thread holds no such digest (it was
   * restarted): start again at 0.
   */
  async extend(key: string, path: string, from: number, to: number, recorded = to): Promise<number | null> {
    const forgets = this.forgets;
    try {
      const m = await this.request({ t: 'extend', key, path, from, to, recorded, req: 0 });
      const kept = m.lost !== true;
      // A forget posted meanwhile (after this request) has dropped the digest in the thread: not
      // held then. Any forget counts, so a busy server may undercount until the next extend.
      if (kept && this.forgets === forgets) this.held.add(key);
      else if (!kept) this.held.delete(key);
      return kept ? (m.upTo as number) : null;
    } catch (err) {
      this.held.delete(key); // the thread dropped it
      throw err;
    }
  }

  /** The whole-file digest of `key` and the bytes it covers (0 and none when there is none). */
  async digest(key: string): Promise<{ sha256?: string; upTo: number }> {
    const m = await this.request({ t: 'digest', key, req: 0 });
    return { upTo: m.upTo ?? 0, ...(m.sha256 !== undefined && { sha256: m.sha256 }) };
  }

  /** Whether the thread is up (for status and tests). */
  get running(): boolean {
    return this.worker !== null;
  }

  forget(key: string): void {
    this.forgets++;
    this.held.delete(key);
    if (this.worker) this.post({ t: 'forget', key });
  }

  /**
   * Ends the thread now, as a crash would: what is awaited fails and the jobs it had are lost (their
   * ends fail, so their bodies record nothing); the next use starts a fresh thread.
   */
  async kill(): Promise<void> {
    await this.worker?.terminate();
  }

  /** Stops the thread for good: what is awaited fails, and nothing starts it again. */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.stop();
    for (const p of this.pending.values()) p.reject(new Error('the hashing thread was closed'));
    this.pending.clear();
    await w?.terminate();
  }

  /** Sends `msg` with a fresh request number (callers pass 0) and waits for its answer. */
  private request(msg: HashRequest): Promise<FromHashThread> {
    const req = this.nextReq++;
    return new Promise<FromHashThread>((resolve, reject) => {
      this.pending.set(req, { resolve, reject });
      // Waiting for an answer keeps the process alive; an idle thread does not.
      this.thread().ref();
      this.post({ ...msg, req } as typeof msg);
    }).then((m) => {
      if (m.error !== undefined) throw new Error(`hashing failed: ${m.error}`);
      return m;
    });
  }

  private post(msg: ToHashThread): void {
    this.thread().postMessage(msg);
    this.idle();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    if (this.closed) throw new Error('the hashing thread was closed');
    const worker = spawnHashThread();
    worker.unref();
    worker.on('message', (m: FromHashThread) => {
      const p = this.pending.get(m.req);
      if (!p) return;
      this.pending.delete(m.req);
      if (this.pending.size === 0) {
        worker.unref();
        this.idle(); // the idle countdown starts again from the last answer
      }
      p.resolve(m);
    });
    const gone = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.held.clear();
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', gone);
    worker.on('exit', (code) => gone(new Error(`the hashing thread exited (${code})`)));
    this.worker = worker;
    return worker;
  }

  /**
   * (Re)arms the idle stop: the thread ends once nothing is open or awaited for `idleMs`, or for
   * `heldIdleMs` while it holds digests (checked when the short wait is up).
   */
  private idle(): void {
    this.lastUsed = Date.now();
    this.arm(this.idleMs);
  }

  private arm(ms: number): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.pending.size > 0 || this.openJobs > 0) return; // the last answer or job end re-arms it
      const left = this.lastUsed + (this.held.size > 0 ? this.heldIdleMs : this.idleMs) - Date.now();
      if (left > 0) this.arm(left);
      else this.stop();
    }, ms);
    this.idleTimer.unref();
  }

  private stop(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.held.clear(); // the digests go with the thread
    const w = this.worker;
    this.worker = null;
    void w?.terminate();
  }
}

/**
 * The hashing thread: its own bundled entry next to this code (dist/server/hash-thread.js), the
 * TypeScript source when running from sources (the loader is inherited by workers), or the
 * bundle embedded in the single executable.
 */
function spawnHashThread(): Worker {
  if (inSea()) return new Worker(seaAsset('hash-thread.cjs').toString('utf8'), { eval: true });
  const here = import.meta.url;
  return new Worker(new URL(here.endsWith('.ts') ? './hash-thread.ts' : './hash-thread.js', here));
}

/** Hashes on the calling thread: small bodies, and bodies that are not written anywhere (a retried chunk). */
export function inlineHasher(algorithms: string[] = []): BodyHasher {
  let sha256 = createHash('sha256');
  const checks = new Map(algorithms.map((a) => [a, createHash(a)]));
  return {
    update: (piece) => {
      sha256.update(piece);
      for (const h of checks.values()) h.update(piece);
    },
    cut: async () => {
      const d = sha256.digest('hex');
      sha256 = createHash('sha256');
      return { sha256: d };
    },
    end: async () => ({ sha256: sha256.digest('hex'), checks: new Map([...checks].map(([a, h]) => [a, h.digest()])) }),
    recorded: () => {},
    settle: () => {},
  };
}
