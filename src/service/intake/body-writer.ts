import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { SluiceError } from '../../errors.js';
import type { StagingHandle } from '../../storage/staging-handle.js';
import type { BodyHasher } from '../hashing/hash-worker.js';
import type { Lease } from './leases.js';

/** Bytes written since the last flush after which another one starts in the background. */
const BACKGROUND_FLUSH_BYTES = 4 * 1024 * 1024;

export interface WrittenBody {
  /** Bytes written and flushed at `offset` (all of them, unless `error` is set). */
  bytes: number;
  /** Where the last segment starts (after the last checkpoint; 0 without checkpoints). */
  segmentStart: number;
  /** The body's own SHA-256 of the last segment, hex, when the hasher was asked for it. */
  sha256: string | undefined;
  /** The hasher's other digests (a client's checksum algorithms), of all bytes. */
  checks: Map<string, Buffer>;
  /**
   * Set when the body did not end normally: the client went away, the writer was taken over, or
   * a write, a flush or a checkpoint failed. Bytes past the last checkpoint must then not be
   * recorded unless `flushed` is true (a client that went away left durable bytes behind).
   */
  error?: unknown;
  /** True when every written byte was flushed without an error (the final flush included). */
  flushed: boolean;
  /** True when the body had more than `max` bytes (reading stopped there). */
  overflow: boolean;
}

export interface WriteOptions {
  offset: number;
  /** Stop reading after this many bytes; a longer body ends with `overflow`. */
  max: number;
  /** Touched whenever bytes arrive; once it is no longer held, nothing more is written. */
  lease: Lease;
  /** Told the size of each piece once it is written; the GcPacer behind it frees earlier pieces. */
  received?: (bytes: number) => void;
  /** Hashes the bytes once written. */
  hasher: BodyHasher;
  /**
   * Make long bodies durable as they go: after every `every` bytes, flush and hand the segment to
   * `record`, so that a crash mid-body keeps what was already received. The flush runs while
   * later bytes keep arriving; segments are recorded in order, each once its bytes are durable.
   */
  checkpoint?: { every: number; record: (segment: { offset: number; length: number }) => Promise<void> };
  /**
   * MIN_BODY_RATE: a body that brings fewer than `bytes` in any `windowMs` ends with 408, its
   * socket kept so that the answer can be sent (what arrived is flushed and may be recorded).
   */
  minRate?: { bytes: number; windowMs: number } | undefined;
}

/** The writer lost its lease: another request for the same bytes took over. */
export class FencedError extends Error {
  override name = 'FencedError';
}

/**
 * Streams a body into a staging handle (or, with none, only through the hasher) with positional
 * writes, hashing as it goes, and flushes what was written whatever happened, so that a body cut
 * short still leaves durable bytes that the caller may record. Never buffers more than one
 * incoming piece. Reading stops (without destroying the socket, so an answer can still be sent)
 * once `max` is exceeded; writing stops the moment the lease is lost.
 */
export async function writeBody(handle: StagingHandle | null, stream: Readable, opts: WriteOptions): Promise<WrittenBody> {
  const { hasher, lease } = opts;
  let bytes = 0;
  let segmentStart = 0;
  let error: unknown;
  let overflow = false;
  let flushFailed = false;
  // Writeback overlaps receiving: a background flush (at most one) while bytes keep arriving, so
  // the one that must finish before the answer finds little left to write.
  let flushing: Promise<void> | null = null;
  let unflushed = 0;
  // Checkpoints wait for their flush in order, off the reading path.
  let checkpoints = Promise.resolve();
  const failed = (err: unknown): void => {
    flushFailed = true;
    error ??= err;
  };
  // The rate guard fails the stream's iteration (not the socket), so the loop ends as for any
  // body that stopped, and the request can still be answered.
  let since = 0;
  const guard =
    opts.minRate &&
    setInterval(() => {
      if (since >= (opts.minRate as { bytes: number }).bytes) {
        since = 0;
        return;
      }
      if (stream.listenerCount('error') > 0)
        stream.emit('error', new SluiceError('request_timeout', `the body arrived slower than ${opts.minRate?.bytes} bytes per ${opts.minRate?.windowMs} ms`));
    }, opts.minRate.windowMs);
  try {
    for await (const piece of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      if (error !== undefined) break; // a flush or a checkpoint failed meanwhile
      if (!lease.held) throw new FencedError('taken over by a newer request for the same bytes');
      lease.touch();
      let buf = piece;
      if (bytes + buf.length > opts.max) {
        overflow = true;
        buf = buf.subarray(0, opts.max - bytes);
      }
      if (buf.length > 0) {
        if (handle !== null) {
          try {
            handle.write(buf, opts.offset + bytes);
          } catch (err) {
            failed(err);
            break;
          }
          unflushed += buf.length;
        }
        bytes += buf.length;
        since += buf.length;
        // After the write: the hashing thread reads the bytes back from the file (a small body is
        // hashed right here instead).
        hasher.update(buf, opts.offset + bytes);
        opts.received?.(buf.length);
      }
      if (opts.checkpoint && handle && bytes - segmentStart >= opts.checkpoint.every) {
        const segment = { offset: opts.offset + segmentStart, length: bytes - segmentStart };
        const { record } = opts.checkpoint;
        // Both start now and settle in any order; a failure is handled once, in order, below.
        const ready = Promise.all([handle.flush(), hasher.cut(opts.offset + bytes)]);
        ready.catch(() => {});
        unflushed = 0;
        checkpoints = checkpoints
          .then(() => ready)
          .then(() => (error === undefined ? record(segment) : undefined))
          .catch(failed);
        segmentStart = bytes;
      } else if (handle && flushing === null && unflushed >= BACKGROUND_FLUSH_BYTES) {
        unflushed = 0;
        flushing = handle.flush().then(() => {
          flushing = null;
        }, failed);
      }
      if (overflow) break;
    }
  } catch (err) {
    error ??= err;
  } finally {
    if (guard) clearInterval(guard);
  }
  await checkpoints;
  // Durable before anyone records it: the ledger must never count bytes a crash could lose. The
  // last flush covers every byte written before it starts, whatever a running one covers.
  const [, last, digests] = await Promise.all([
    flushing,
    handle?.flush().then(
      () => true,
      (err: unknown) => {
        failed(err);
        return false;
      },
    ),
    hasher.end(opts.offset + bytes),
  ]);
  const flushed = !flushFailed && last !== false;
  return { bytes, segmentStart, sha256: digests.sha256, checks: digests.checks, overflow, flushed, ...(error !== undefined && { error }) };
}

/** SHA-256 of everything a stream yields. */
export async function hashStream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const buf of stream) hash.update(buf as Buffer);
  return hash.digest('hex');
}
