import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs/promises';

export interface RunningDigestDeps {
  /** Path of an upload's staging file. */
  pathOf(id: string): string;
  /** Where the recorded (durable, counted) bytes starting at `from` stop being contiguous. */
  recordedUntil(id: string, from: number): number;
  /** Background catch-up failed (a read error): the digest is then computed at finish. */
  onError(id: string, err: unknown): void;
}

interface Entry {
  hash: Hash;
  /** The hash covers bytes [0, upTo). */
  upTo: number;
  /** Bumped whenever the hash is replaced, so a read in flight knows its bytes are stale. */
  generation: number;
  /** The catch-up read running for this upload, if any. */
  job: Promise<void> | null;
}

const READ_SIZE = 1024 * 1024;
/** Background catch-ups at once: each holds one read buffer and one core's worth of hashing. */
const BACKGROUND_JOBS = 2;

/**
 * The whole-file SHA-256 of every upload, kept up to date while the upload is running, so that
 * finishing needs no read of the file when its bytes arrived in order, and only a read of what
 * arrived out of order otherwise.
 *
 * Bytes that continue the digest are fed to it as they are written (the caller asks `feed` for
 * a hash to pass along with the chunk's own). Bytes recorded ahead of the digest (parallel chunks,
 * a restart that lost the hash) are read back from the staging file in 1 MiB pieces in the
 * background, interleaved with other work, as soon as they join the contiguous recorded prefix.
 * Memory only: after a restart the first recorded chunk starts a catch-up from byte 0.
 */
export class RunningDigests {
  private readonly entries = new Map<string, Entry>();
  private readonly queued = new Set<string>();
  private active = 0;

  constructor(private readonly deps: RunningDigestDeps) {}

  /**
   * A hash to feed with the bytes about to be written at `offset`, when they continue the digest;
   * hand it back to `recorded` once those bytes are recorded.
   */
  feed(id: string, offset: number): Hash | undefined {
    const e = this.entries.get(id);
    if (e) return e.upTo === offset ? e.hash.copy() : undefined;
    return offset === 0 ? createHash('sha256') : undefined;
  }

  /**
   * Bytes [offset, offset + length) are recorded. `fed` (from `feed`, fed with exactly those
   * bytes) advances the digest; otherwise a catch-up reads them once the prefix reaches them.
   */
  recorded(id: string, offset: number, length: number, fed?: Hash): void {
    let e = this.entries.get(id);
    if (fed && (e ? e.upTo === offset : offset === 0)) {
      if (!e) {
        e = { hash: fed, upTo: 0, generation: 0, job: null };
        this.entries.set(id, e);
      }
      e.hash = fed;
      e.upTo = offset + length;
      e.generation++;
    } else if (!e) {
      e = { hash: createHash('sha256'), upTo: 0, generation: 0, job: null };
      this.entries.set(id, e);
    }
    if (this.deps.recordedUntil(id, e.upTo) > e.upTo) this.schedule(id);
  }

  /**
   * The digest of bytes [0, size), reading whatever the running hash does not cover yet;
   * undefined when the recorded bytes do not reach `size`.
   */
  async digest(id: string, size: number): Promise<string | undefined> {
    let e = this.entries.get(id);
    if (!e) {
      e = { hash: createHash('sha256'), upTo: 0, generation: 0, job: null };
      this.entries.set(id, e);
    }
    while (e.job) await e.job;
    if (e.upTo < size) await this.run(id, e);
    return e.upTo === size ? e.hash.copy().digest('hex') : undefined;
  }

  /** Covered bytes, for status and tests. */
  coveredBytes(id: string): number {
    return this.entries.get(id)?.upTo ?? 0;
  }

  forget(id: string): void {
    this.entries.delete(id);
    this.queued.delete(id);
  }

  private schedule(id: string): void {
    const e = this.entries.get(id);
    if (!e || e.job) return;
    if (this.active >= BACKGROUND_JOBS) {
      this.queued.add(id);
      return;
    }
    this.active++;
    void this.run(id, e).finally(() => {
      this.active--;
      const next = this.queued.values().next();
      if (!next.done) {
        this.queued.delete(next.value);
        this.schedule(next.value);
      }
    });
  }

  /** Reads and hashes the recorded bytes after `upTo` until the contiguous prefix ends. */
  private run(id: string, e: Entry): Promise<void> {
    const job = (async () => {
      let fh: fs.FileHandle | undefined;
      // Sized to what is to be read (a small chunk needs a small buffer), at most 1 MiB.
      let buf: Buffer | undefined;
      try {
        for (;;) {
          if (this.entries.get(id) !== e) return; // forgotten meanwhile
          const end = this.deps.recordedUntil(id, e.upTo);
          if (end <= e.upTo) return;
          fh ??= await fs.open(this.deps.pathOf(id), 'r');
          buf ??= Buffer.allocUnsafe(Math.min(READ_SIZE, end - e.upTo));
          const generation = e.generation;
          const at = e.upTo;
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - at), at);
          if (bytesRead === 0) throw new Error(`staging file of ${id} ends at ${at}, before its recorded bytes`);
          // The hash moved on while reading (bytes fed as they arrived were adopted): read again.
          if (e.generation !== generation || e.upTo !== at) continue;
          e.hash.update(buf.subarray(0, bytesRead));
          e.upTo += bytesRead;
        }
      } catch (err) {
        this.deps.onError(id, err);
      } finally {
        await fh?.close();
      }
    })();
    e.job = job.finally(() => {
      if (e.job === wrapped) e.job = null;
    });
    const wrapped = e.job;
    return wrapped;
  }
}
