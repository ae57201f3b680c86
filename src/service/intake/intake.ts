import type { Readable } from 'node:stream';
import { SluiceError, isSluiceError } from '../../errors.js';
import type { Fence } from '../../ledger/ledger.js';
import type { GcPacer } from '../../lib/gc-pacer.js';
import type { StagingArea, StagingLease } from '../../storage/staging-area.js';
import { inlineHasher, type BodyHasher, type HashWorker } from '../hashing/hash-worker.js';
import type { RunningDigests } from '../hashing/running-digest.js';
import { FencedError, writeBody, type WriteOptions, type WrittenBody } from './body-writer.js';
import type { Leases, Lease } from './leases.js';

export interface IntakeDeps {
  staging: StagingArea;
  hashing: HashWorker;
  digests: RunningDigests;
  leases: Leases;
  gcPacer: GcPacer;
  /** Bodies taken in at once (MAX_CONCURRENT_BODIES, or what the descriptor limit allows). */
  maxBodies: number;
  /** MIN_BODY_RATE, or undefined. */
  minBodyRate: { bytes: number; windowMs: number } | undefined;
}

/** What one body is, before it is read. */
export interface BodySpec {
  uploadId: string;
  /** The byte range's lease key: a chunk's index, or the stream's end. */
  lease: string;
  /** Ends the request if another one takes over. */
  evict: () => void;
  takeoverAfterMs: number;
  /** Whether the request's body has ended (a status read then waits for it to record). */
  ended?: () => boolean;
  /** Ends the body early, in order, so that its request is answered (see Leases.stopAll). */
  stop?: (reason: Error) => void;
  offset: number;
  /** Length when known (a small one is hashed on the event loop). */
  length: number | undefined;
  /**
   * Called once the lease is held, before anything is opened: checks what only the lease holder
   * may rely on (the chunk is not recorded yet, the stream's end is still the offset) and answers
   * whether the bytes are written - false for bytes only hashed (a retry of a recorded chunk).
   */
  leased: () => Promise<boolean>;
  /** Whether the body's own SHA-256 is wanted (a chunk's is checked and recorded). */
  own: boolean;
  algorithms: string[];
}

/** Bodies up to this size are hashed on the event loop instead of the hashing thread. */
const INLINE_HASH_MAX = 128 * 1024;

/**
 * The one way bytes come in, for every layout: lease -> staging handle -> hashing job -> body ->
 * flush -> `commit` (record, confirm, digest) or `dispose` (settle, release). A native chunk and a
 * stream append differ only in what they record.
 *
 * The durability rule lives here, once: **nothing is recorded after an I/O error on the staging
 * handle since the body began, nor by a writer that lost its lease.** Both are checked again
 * inside the ledger's transaction (the fence), so a flush failing or a takeover happening while
 * the record waits for its commit still keeps it out.
 */
export class Intake {
  private bodies = 0;

  constructor(private readonly deps: IntakeDeps) {}

  /**
   * Takes the lease (or fails with `chunk_in_progress`) and prepares the body's writing. Beyond
   * `maxBodies` it refuses at once, before anything is opened: each body holds descriptors, and
   * running out of them would fail requests (and the ledger) at random instead.
   */
  async open(spec: BodySpec): Promise<Body> {
    const { deps } = this;
    if (this.bodies >= deps.maxBodies) {
      throw new SluiceError(
        'overloaded',
        `${this.bodies} request bodies are being written; retry shortly`,
        { max_concurrent_bodies: deps.maxBodies },
        { headers: { 'retry-after': '2' } },
      );
    }
    this.bodies++;
    let lease: Lease;
    try {
      lease = await deps.leases.acquire(`${spec.uploadId}:${spec.lease}`, {
        evict: spec.evict,
        takeoverAfterMs: spec.takeoverAfterMs,
        ended: spec.ended,
        stop: spec.stop,
      });
    } catch (err) {
      this.bodies--;
      throw err;
    }
    let file: StagingLease | null = null;
    try {
      const write = await spec.leased();
      file = write ? await deps.staging.openForWrite(spec.uploadId) : null;
    } catch (err) {
      lease.release();
      this.bodies--;
      throw ioError(err);
    }
    // A body that is not written is only hashed, here; a small one too: for 64 KiB the thread's
    // messages cost the event loop more than the hashing does (BENCHMARKS.md item 14).
    const inline = file === null || (spec.length !== undefined && spec.length <= INLINE_HASH_MAX);
    // Keyed by the upload: a body that starts where its whole-file digest ends continues it.
    const hasher = inline
      ? inlineHasher(spec.algorithms)
      : deps.hashing.job(deps.staging.pathOf(spec.uploadId), spec.offset, { algorithms: spec.algorithms, own: spec.own, key: spec.uploadId });
    return new Body(spec, lease, file, hasher, deps, () => this.bodies--);
  }

  /**
   * The lease alone, within the same body budget, for a body that goes to the store instead of a
   * staging file (a chunk staged as an S3 part). `done()` releases both, once.
   */
  async leaseOnly(spec: Pick<BodySpec, 'uploadId' | 'lease' | 'evict' | 'takeoverAfterMs' | 'ended' | 'stop'>): Promise<{ lease: Lease; done: () => void }> {
    if (this.bodies >= this.deps.maxBodies) {
      throw new SluiceError(
        'overloaded',
        `${this.bodies} request bodies are being written; retry shortly`,
        { max_concurrent_bodies: this.deps.maxBodies },
        { headers: { 'retry-after': '2' } },
      );
    }
    this.bodies++;
    let lease: Lease;
    try {
      lease = await this.deps.leases.acquire(`${spec.uploadId}:${spec.lease}`, {
        evict: spec.evict,
        takeoverAfterMs: spec.takeoverAfterMs,
        ended: spec.ended,
        stop: spec.stop,
      });
    } catch (err) {
      this.bodies--;
      throw err;
    }
    let released = false;
    return {
      lease,
      done: () => {
        if (released) return;
        released = true;
        lease.release();
        this.bodies--;
      },
    };
  }

  /** Resolves once a writer of `uploadId` whose body has ended has recorded and let go. */
  settled(uploadId: string, lease: string): Promise<unknown> | undefined {
    return this.deps.leases.settling(`${uploadId}:${lease}`);
  }

  /** Ends the writer of `uploadId`'s `lease`, live or not, and resolves once it let go. */
  interrupt(uploadId: string, lease: string): Promise<unknown> | undefined {
    return this.deps.leases.interrupt(`${uploadId}:${lease}`);
  }

  /** Ends every body that can be ended early (stream appends), each answered with `reason`. */
  stopAll(reason: Error): Promise<unknown> {
    return this.deps.leases.stopAll(reason);
  }
}

/** One body being taken in; `dispose()` it exactly once, whatever happened. */
export class Body {
  /** The staging handle's failure count when the body began: any change poisons it. */
  private readonly failuresAtStart: number;
  private disposed = false;

  constructor(
    private readonly spec: BodySpec,
    private readonly lease: Lease,
    private readonly file: StagingLease | null,
    private readonly hasher: BodyHasher,
    private readonly deps: IntakeDeps,
    private readonly done: () => void,
  ) {
    this.failuresAtStart = file?.handle.failures ?? 0;
  }

  /** Reads, writes, hashes and flushes the body; `checkpoint` records long bodies as they go. */
  async receive(stream: Readable, max: number, checkpoint?: WriteOptions['checkpoint']): Promise<WrittenBody> {
    return writeBody(this.file?.handle ?? null, stream, {
      offset: this.spec.offset,
      max,
      lease: this.lease,
      received: this.deps.gcPacer,
      hasher: this.hasher,
      minRate: this.deps.minBodyRate,
      ...(checkpoint && { checkpoint }),
    });
  }

  /**
   * Records what `op` records, ending at byte `end`, unless the handle was poisoned or the lease
   * lost - checked now and again inside the transaction (the fence `op` passes to the ledger,
   * whose `fenced` outcome becomes the client's error here). A `recorded` outcome lets the
   * hashing job's copy of the whole-file digest up to `end` be used, and the running digest go on.
   */
  async commit<R extends { kind: string }>(end: number, op: (fence: Fence) => Promise<R>): Promise<Exclude<R, { kind: 'fenced' }>> {
    this.check();
    const outcome = await op(() => this.clean());
    if (outcome.kind === 'fenced') {
      this.check();
      throw new SluiceError('chunk_in_progress', 'taken over by a newer request for the same bytes');
    }
    if (outcome.kind === 'recorded') {
      this.hasher.recorded(end);
      this.deps.digests.recorded(this.spec.uploadId);
    }
    return outcome as Exclude<R, { kind: 'fenced' }>;
  }

  /** Throws the error a client should see when this body can no longer record anything. */
  check(): void {
    if (!this.lease.held) throw new SluiceError('chunk_in_progress', 'taken over by a newer request for the same bytes');
    if (!this.clean()) throw poisoned();
  }

  /**
   * The error to answer for a body that ended with `error` (see WrittenBody): I/O errors become
   * retryable answers, a lost lease a conflict; anything else is passed on.
   */
  failure(error: unknown): unknown {
    if (error instanceof FencedError) return new SluiceError('chunk_in_progress', error.message);
    return isSluiceError(error) ? error : ioError(error);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.hasher.settle();
    this.file?.release();
    this.lease.release();
    this.done();
  }

  private clean(): boolean {
    return this.lease.held && (this.file === null || this.file.handle.failures === this.failuresAtStart);
  }
}

function poisoned(): SluiceError {
  return new SluiceError(
    'staging_failed',
    'writing to the staging disk failed while this request was written; nothing of it was recorded, send it again',
    {},
    { headers: { 'retry-after': '5' } },
  );
}

/**
 * File system errors of the staging disk as the client's answer: a full disk is 507, running out
 * of descriptors or an I/O error a retryable 503; anything else is passed on.
 */
export function ioError(err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new SluiceError('insufficient_storage', 'the disk is full: nothing from this request was recorded', {}, { cause: err });
  }
  if (code === 'EMFILE' || code === 'ENFILE') {
    return new SluiceError('overloaded', 'the server has too many open files; retry shortly', {}, { cause: err, headers: { 'retry-after': '5' } });
  }
  if (code === 'EIO' || code === 'EROFS' || code === 'EBADF') {
    return new SluiceError(
      'staging_failed',
      'writing to the staging disk failed; nothing of this request was recorded, send it again',
      {},
      { cause: err, headers: { 'retry-after': '5' } },
    );
  }
  return err;
}
