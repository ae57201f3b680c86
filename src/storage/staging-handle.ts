import { writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/**
 * The system calls a staging handle makes, injectable so that tests can fail a write or a flush
 * the way a disk does (EIO, ENOSPC). The default is Node's.
 */
export interface StagingIo {
  /** Writes all of `buf` at `position` (synchronously: see `StagingHandle.write`). */
  write(fh: FileHandle, buf: Buffer, position: number): void;
  datasync(fh: FileHandle): Promise<void>;
}

export const nodeIo: StagingIo = {
  write(fh, buf, position) {
    for (let done = 0; done < buf.length; ) done += writeSync(fh.fd, buf, done, buf.length - done, position + done);
  },
  datasync: (fh) => fh.datasync(),
};

/**
 * One open staging file, shared by every request writing the same upload.
 *
 * Linux reports a failed writeback once per open file description: the first fsync or fdatasync
 * after it fails, and every later one on the same descriptor succeeds although the pages were
 * never written. So, with several writers on one descriptor, "my fdatasync returned 0" does not
 * mean "my bytes are on disk". Two rules make it mean that again:
 * - flushes are serialized: at most one fdatasync runs on the handle, and a flush that started
 *   after a writer's last write covers that writer, so an error is always seen by the flush that
 *   every writer waiting at that moment shares;
 * - a write or flush error poisons the handle: `failures` counts them, and a writer that saw the
 *   count change since its body began must not record anything (`Intake` checks it). A poisoned
 *   handle is not given to new writers; it closes once its last user lets go.
 */
export class StagingHandle {
  /** Write or flush errors seen on this descriptor so far; any increase poisons its writers. */
  failures = 0;
  users = 0;
  idle: NodeJS.Timeout | null = null;
  removed = false;
  /** Writes made so far, so a flush knows which writes it covers. */
  private writes = 0;
  private running: { covers: number; done: Promise<void> } | null = null;
  private queued: Promise<void> | null = null;

  constructor(
    readonly fh: FileHandle,
    private readonly io: StagingIo,
  ) {}

  /**
   * Writes `buf` at `position`, synchronously: a 64 KiB write into the page cache takes tens of
   * microseconds, while the same write through the thread pool costs 5-10x the CPU in hand-offs
   * (BENCHMARKS.md). Dirty pages cannot pile up to where the kernel throttles writers, because
   * every chunk (and every append checkpoint) is flushed before it is counted.
   */
  write(buf: Buffer, position: number): void {
    this.writes++;
    try {
      this.io.write(this.fh, buf, position);
    } catch (err) {
      this.failures++;
      throw err;
    }
  }

  /** Makes every write made so far durable; rejects (and poisons the handle) on an error. */
  flush(): Promise<void> {
    const mine = this.writes;
    if (this.running && this.running.covers >= mine) return this.running.done;
    // A queued flush starts after the running one, so it covers every write made before it starts.
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    const queued = this.running.done.then(
      () => this.start(),
      () => this.start(),
    );
    this.queued = queued;
    return queued;
  }

  get poisoned(): boolean {
    return this.failures > 0;
  }

  private start(): Promise<void> {
    this.queued = null;
    const covers = this.writes;
    const done = this.io.datasync(this.fh).then(
      () => {
        if (this.running?.done === done) this.running = null;
      },
      (err: unknown) => {
        this.failures++;
        if (this.running?.done === done) this.running = null;
        throw err;
      },
    );
    this.running = { covers, done };
    done.catch(() => {});
    return done;
  }
}
