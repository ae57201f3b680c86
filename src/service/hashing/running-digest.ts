import type { HashWorker } from './hash-worker.js';

export interface RunningDigestDeps {
  /** Path of an upload's staging file. */
  pathOf(id: string): string;
  /** Where the recorded (durable, counted) bytes starting at `from` stop being contiguous. */
  recordedUntil(id: string, from: number): Promise<number>;
  /** Background catch-up failed (a read error): the digest is then computed at finish. */
  onError(id: string, err: unknown): void;
  /** The thread that holds the digests and reads the bytes. */
  hasher: HashWorker;
}

interface Entry {
  /** The digest covers bytes [0, upTo). */
  upTo: number;
  /** The catch-up running for this upload, if any. */
  job: Promise<void> | null;
  /** Bytes were recorded while a catch-up ran: look again when it ends (it may have just looked). */
  again: boolean;
}

/** Bytes read per request to the hashing thread, so that chunks' own hashing is never held up long. */
const STEP = 16 * 1024 * 1024;
/** Catch-ups at once; the hashing thread takes their requests in turn. */
const BACKGROUND_JOBS = 2;

/**
 * The whole-file SHA-256 of every upload, kept up to date while the upload is running, so that
 * finishing needs no read of the file (beyond the last chunk or so, already in the page cache).
 *
 * As soon as recorded bytes extend the contiguous prefix the digest covers - a chunk in order,
 * parallel or out-of-order chunks filling a gap, the first chunk after a restart - the hashing
 * thread reads them back from the staging file and continues the digest, off the main thread.
 * Memory only: after a restart (of the process or of the hashing thread) it starts again at 0.
 */
export class RunningDigests {
  private readonly entries = new Map<string, Entry>();
  private readonly queued = new Set<string>();
  private active = 0;

  constructor(private readonly deps: RunningDigestDeps) {}

  /** Bytes of upload `id` were recorded: hash them once they join the contiguous prefix. */
  recorded(id: string): void {
    const e = this.entry(id);
    // A catch-up asks the ledger where the contiguous prefix ends and stops at once when it did
    // not grow; one already running is told to look once more when it ends.
    if (e.job) e.again = true;
    else this.schedule(id);
  }

  /**
   * The digest of bytes [0, size), reading whatever it does not cover yet; undefined when the
   * recorded bytes do not reach `size`.
   */
  async digest(id: string, size: number): Promise<string | undefined> {
    const e = this.entry(id);
    for (let attempt = 0; attempt < 2; attempt++) {
      while (e.job) await e.job;
      if (e.upTo < size) await this.run(id, e);
      if (e.upTo !== size) return undefined;
      const d = await this.deps.hasher.digest(id);
      if (d.upTo === size && d.sha256 !== undefined) return d.sha256;
      e.upTo = 0; // the hashing thread was restarted since: hash again from the start
    }
    return undefined;
  }

  /** Covered bytes, for status and tests. */
  coveredBytes(id: string): number {
    return this.entries.get(id)?.upTo ?? 0;
  }

  forget(id: string): void {
    this.entries.delete(id);
    this.queued.delete(id);
    this.deps.hasher.forget(id);
  }

  private entry(id: string): Entry {
    const e = this.entries.get(id) ?? { upTo: 0, job: null, again: false };
    this.entries.set(id, e);
    return e;
  }

  private schedule(id: string): void {
    const e = this.entries.get(id);
    if (!e || e.job || this.queued.has(id)) return;
    if (this.active >= BACKGROUND_JOBS) {
      this.queued.add(id);
      return;
    }
    this.active++;
    void this.run(id, e).finally(() => {
      this.active--;
      if (e.again && this.entries.get(id) === e) {
        e.again = false;
        this.queued.add(id);
      }
      const next = this.queued.values().next();
      if (!next.done) {
        this.queued.delete(next.value);
        this.schedule(next.value);
      }
    });
  }

  /** Has the hashing thread read and hash the recorded bytes after `upTo` until the contiguous prefix ends. */
  private run(id: string, e: Entry): Promise<void> {
    const job = (async () => {
      try {
        for (;;) {
          if (this.entries.get(id) !== e) return; // forgotten meanwhile
          const end = await this.deps.recordedUntil(id, e.upTo);
          if (end <= e.upTo) return;
          const to = Math.min(end, e.upTo + STEP);
          // null: the hashing thread was restarted and lost the digest
          e.upTo = (await this.deps.hasher.extend(id, this.deps.pathOf(id), e.upTo, to, end)) ?? 0;
        }
      } catch (err) {
        e.upTo = 0;
        this.deps.onError(id, err);
      }
    })();
    e.job = job.finally(() => {
      if (e.job === wrapped) e.job = null;
    });
    const wrapped = e.job;
    return wrapped;
  }
}
