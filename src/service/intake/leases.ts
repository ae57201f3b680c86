import { SluiceError } from '../../errors.js';

/** The right to write one byte range of an upload (a chunk, or a stream's end). */
export interface Lease {
  /** Call whenever bytes arrive, so that a live writer is never taken over. */
  touch(): void;
  /**
   * False once another writer took over: the holder must not write another byte nor record
   * anything (the intake checks it before every write and inside the recording transaction).
   */
  readonly held: boolean;
  /** Call exactly once when the writer is done, whatever the outcome. */
  release(): void;
}

export interface AcquireOptions {
  /** Ends the holder's request; called if another writer takes over. */
  evict: () => void;
  /**
   * How long the holder must have been silent to be taken over; 0: always, the newest request
   * wins (a client resuming after a network error expects its new request to be served).
   */
  takeoverAfterMs: number;
  /** Whether the holder's body has ended (its last bytes are being flushed and recorded). */
  ended?: () => boolean;
  /**
   * Ends the holder's body early but in order (what arrived is recorded, and its request is
   * answered with `reason`), for writers that `stopAll` ends - at shutdown.
   */
  stop?: (reason: Error) => void;
}

interface Entry {
  lastActivity: number;
  held: boolean;
  evict: () => void;
  released: Promise<void>;
  resolve: () => void;
  ended: (() => boolean) | undefined;
  stop: ((reason: Error) => void) | undefined;
}

/** How long a takeover waits for the evicted holder to let go; it is fenced either way. */
const RELEASE_WAIT_MS = 5000;

/**
 * Who is writing which byte range right now (in this process). A second writer for the same key
 * gets `chunk_in_progress` while the first is alive; a writer silent for `takeoverAfterMs` is
 * presumed to be on a dead connection and is taken over, so a vanished client never locks its
 * chunk forever.
 *
 * A takeover never lets two writers work at once: the old writer's request is ended (its body
 * stops; what it had made durable it may still record, as a broken connection's bytes count), and
 * the new writer starts only once the old one has let go - or, if it is stuck (a hung flush), after
 * RELEASE_WAIT_MS, when the old lease is fenced: it stops being `held`, so no later write of it
 * lands and its record is refused inside the ledger transaction.
 */
export class Leases {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly releaseWaitMs = RELEASE_WAIT_MS,
  ) {}

  async acquire(key: string, opts: AcquireOptions): Promise<Lease> {
    const current = this.entries.get(key);
    if (current) {
      if (this.now() - current.lastActivity < opts.takeoverAfterMs) {
        throw new SluiceError('chunk_in_progress', 'another request is sending this chunk right now; retry when it has finished');
      }
      current.evict();
      await this.releasedOrLate(current);
      current.held = false;
      if (this.entries.get(key) === current) this.entries.delete(key);
      // Two newcomers raced for the same stale holder: the first one wins.
      if (this.entries.has(key)) throw new SluiceError('chunk_in_progress');
    }
    let resolve!: () => void;
    const released = new Promise<void>((r) => (resolve = r));
    const entry: Entry = { lastActivity: this.now(), held: true, evict: opts.evict, released, resolve, ended: opts.ended, stop: opts.stop };
    this.entries.set(key, entry);
    let done = false;
    return {
      touch: () => {
        entry.lastActivity = this.now();
      },
      get held() {
        return entry.held;
      },
      release: () => {
        if (done) return;
        done = true;
        entry.held = false;
        if (this.entries.get(key) === entry) this.entries.delete(key);
        entry.resolve();
      },
    };
  }

  /**
   * While the holder of `key` has stopped receiving but not yet let go (an interrupted or complete
   * body being flushed and recorded), a promise of its release; otherwise undefined. A live writer
   * is not waited for.
   */
  settling(key: string): Promise<unknown> | undefined {
    const entry = this.entries.get(key);
    return entry?.ended?.() ? this.releasedOrLate(entry) : undefined;
  }

  /**
   * Ends the holder of `key`, if any, and resolves once it has recorded what it had and let go (or
   * RELEASE_WAIT_MS passed): a status read answers the real offset, not the one before a request
   * whose client may have given up on it. The holder keeps its lease until it lets go, so what it
   * made durable still counts.
   */
  interrupt(key: string): Promise<unknown> | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (!entry.ended?.()) entry.evict();
    return this.releasedOrLate(entry);
  }

  /** Stops every holder that can be stopped (see AcquireOptions.stop); resolves once they let go. */
  stopAll(reason: Error): Promise<unknown> {
    const stopping = [...this.entries.values()].filter((e) => e.stop !== undefined);
    for (const entry of stopping) entry.stop?.(reason);
    return Promise.all(stopping.map((e) => this.releasedOrLate(e)));
  }

  get size(): number {
    return this.entries.size;
  }

  private releasedOrLate(entry: Entry): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise((r) => {
      timer = setTimeout(r, this.releaseWaitMs);
      timer.unref();
    });
    return Promise.race([entry.released, late]).finally(() => clearTimeout(timer));
  }
}
