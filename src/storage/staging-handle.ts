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
 * that checks after it fails, and every later one on the same descriptor succeeds although the
 * pages were never written. With several writers on one descriptor, "my fdatasync returned 0"
 * therefore does not mean "my bytes are on disk": a flush running at the same time may have taken
 * the error. Two rules make it mean that again:
 * - a flush is settled for its caller only once every flush that was running when it ended has
 *   settled too (one that started later checks later and cannot take its error); flushes still
 *   overlap on the disk, where concurrent ones share a journal commit;
 * - a write or flush error poisons the handle: `failures` counts them, and a writer that saw the
 *   count change since its body began must not record anything (`Intake` checks it after its
 *   flush, and again inside the ledger transaction). A poisoned handle is not given to new
 *   writers; it closes once its last user lets go.
 * A flush that started after a writer's last write covers it, and is shared instead of repeated.
 */
export class StagingHandle {
  /** Write or flush errors seen on this descriptor so far; any increase poisons its writers. */
  failures = 0;
  users = 0;
  idle: NodeJS.Timeout | null = null;
  removed = false;
  /** Writes made so far, so a flush knows which writes it covers. */
  private writes = 0;
  /** Flushes in flight, with the writes each covers. */
  private readonly running = new Set<{ covers: number; done: Promise<void> }>();
  private latest: { covers: number; settled: Promise<void> } | null = null;

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

  /**
   * Makes every write made so far durable: rejects when this flush failed (and poisons the
   * handle); resolves once it succeeded and the flushes that overlapped it have settled. Whether
   * one of those failed is `failures` (the caller compares it with what it saw when it began).
   */
  flush(): Promise<void> {
    // Nothing written since the last flush started: it covers every write so far.
    if (this.latest && this.latest.covers >= this.writes) return this.latest.settled;
    // The failure is counted before anyone waiting on this flush hears of it.
    const done = this.io.datasync(this.fh).catch((err: unknown) => {
      this.failures++;
      throw err;
    });
    const entry = { covers: this.writes, done };
    this.running.add(entry);
    const settled = done.then(
      async () => {
        this.running.delete(entry);
        // Those still running when this one ended may have taken its error.
        await Promise.allSettled([...this.running].map((f) => f.done));
      },
      (err: unknown) => {
        this.running.delete(entry);
        throw err;
      },
    );
    settled.catch(() => {});
    this.latest = { covers: entry.covers, settled };
    return settled;
  }

  get poisoned(): boolean {
    return this.failures > 0;
  }
}
