import { SluiceError } from '../errors.js';

/** One request currently writing a byte range of an upload. */
export interface Writer {
  /** Call whenever bytes arrive, so that a live writer is never taken over. */
  touch(): void;
  /** Call exactly once when the writer is done, whatever the outcome. */
  release(): void;
}

interface Entry {
  lastActivity: number;
  evict: () => void;
  released: Promise<void>;
  resolve: () => void;
  finishing?: () => boolean;
}

/** The holder's release, or 5 s: a writer that never releases must not hold anyone up for good. */
function releasedOrLate(entry: Entry): Promise<unknown> {
  return Promise.race([entry.released, new Promise((r) => setTimeout(r, 5000).unref())]);
}

/**
 * Who is writing which chunk right now (in this process). A second writer for the same key gets
 * `chunk_in_progress` while the first is alive; a writer that has received nothing for
 * `takeoverAfterMs` is presumed to be on a dead connection, is evicted (its request destroyed) and
 * the new writer takes its place, so a vanished client never locks its chunk forever.
 */
export class InFlight {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly takeoverAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * @param evict ends the holder's request; called if another writer takes over.
   * @param takeoverAfterMs how long the holder must have been silent to be taken over (0: always,
   *   the newest request wins, as tus clients that resume after a network error expect).
   * @param finishing tells whether the holder's request has stopped receiving (its last bytes are
   *   being synced and recorded); see `settling`.
   */
  async acquire(key: string, evict: () => void, takeoverAfterMs = this.takeoverAfterMs, finishing?: () => boolean): Promise<Writer> {
    const current = this.entries.get(key);
    if (current) {
      if (this.now() - current.lastActivity < takeoverAfterMs) {
        throw new SluiceError('chunk_in_progress', 'another request is sending this chunk right now; retry when it has finished');
      }
      current.evict();
      await releasedOrLate(current);
      if (this.entries.get(key) === current) this.entries.delete(key);
      if (this.entries.has(key)) throw new SluiceError('chunk_in_progress');
    }
    let resolve!: () => void;
    const released = new Promise<void>((r) => (resolve = r));
    const entry: Entry = { lastActivity: this.now(), evict, released, resolve, ...(finishing && { finishing }) };
    this.entries.set(key, entry);
    let done = false;
    return {
      touch: () => {
        entry.lastActivity = this.now();
      },
      release: () => {
        if (done) return;
        done = true;
        if (this.entries.get(key) === entry) this.entries.delete(key);
        entry.resolve();
      },
    };
  }

  /**
   * While the writer of `key` has stopped receiving but not yet released (an interrupted or
   * complete body being synced and recorded), the promise of its release; otherwise undefined. A
   * live writer is not waited for.
   */
  settling(key: string): Promise<unknown> | undefined {
    const entry = this.entries.get(key);
    return entry?.finishing?.() ? releasedOrLate(entry) : undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}
