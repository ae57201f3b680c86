import { createHash } from 'node:crypto';
import { writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { BodyHasher, SegmentDigest } from './hash-worker.js';
import type { Extent } from '../ledger/ledger.js';

/** Bytes written since the last fdatasync after which another one starts in the background. */
const BACKGROUND_FLUSH_BYTES = 4 * 1024 * 1024;

export interface WrittenBody {
  /** Bytes written and fdatasynced at `offset`. */
  bytes: number;
  /** Where the last segment starts (after the last checkpoint; 0 without checkpoints). */
  segmentStart: number;
  /** SHA-256 of the last segment's bytes, hex (of all bytes without checkpoints) - or see `sha256From`. */
  sha256: string;
  /** The file offset `sha256` starts at: the segment's start, or 0 when the hasher continued the whole-file digest. */
  sha256From: number;
  /** The hasher's other digests (a client's checksum algorithms), of all bytes. */
  checks: Map<string, Buffer>;
  /** Set when the body did not end normally (client gone, evicted, over `max`); `bytes` still counts. */
  error?: unknown;
  /** True when the body had more than `max` bytes (reading stopped there). */
  overflow: boolean;
}

export interface WriteOptions {
  offset: number;
  /** Stop reading after this many bytes; a longer body ends with `overflow`. */
  max: number;
  /** Called whenever bytes arrive (keeps the writer from being taken over as stale). */
  touch: () => void;
  /** Told the size of each piece once it is written; the GcPacer behind it frees earlier pieces. */
  received?: (bytes: number) => void;
  /** Hashes the bytes once written: SHA-256 per segment, plus any checksum algorithms it was given. */
  hasher: BodyHasher;
  /**
   * Make long bodies durable as they go: after every `every` bytes, fdatasync and hand the segment
   * to `record`, so that a crash mid-body keeps what was already received. The fdatasync runs while
   * later bytes keep arriving; segments are recorded in order, each once its bytes are durable.
   */
  checkpoint?: { every: number; record: (segment: Extent) => void | Promise<void> };
}

/**
 * Streams a body into a file (or, with no file, only through the hasher) with positional writes, hashing as it goes, and fdatasyncs what was
 * written whatever happened: a body cut short still leaves durable bytes that the caller may
 * record. Never buffers more than one incoming piece. Reading stops (without destroying the
 * socket, so an answer can still be sent) once `max` is exceeded.
 */
export async function writeBody(fh: FileHandle | null, stream: Readable, opts: WriteOptions): Promise<WrittenBody> {
  const { hasher } = opts;
  let bytes = 0;
  let segmentStart = 0;
  let error: unknown;
  let overflow = false;
  // Writeback overlaps receiving: an fdatasync in flight (at most one) while bytes keep arriving,
  // so the one that must finish before the answer finds little left to write.
  let flushing: Promise<void> | null = null;
  let unflushed = 0;
  // Checkpoints wait for their fdatasync in order, off the reading path.
  let checkpoints = Promise.resolve();
  try {
    for await (const piece of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      if (error !== undefined) break; // a checkpoint failed meanwhile
      opts.touch();
      let buf = piece;
      if (bytes + buf.length > opts.max) {
        overflow = true;
        buf = buf.subarray(0, opts.max - bytes);
      }
      if (buf.length > 0) {
        // Positional writes straight from the socket's buffers, synchronously: a 64 KiB write
        // into the page cache takes tens of microseconds, while the same write through the
        // thread pool (FileHandle.write) costs 5-10x the CPU in hand-offs (measured in
        // BENCHMARKS.md). Dirty pages cannot pile up to where the kernel throttles writers,
        // because every chunk (and every append checkpoint) is fdatasynced before it is counted.
        if (fh !== null) {
          for (let done = 0; done < buf.length; ) done += writeSync(fh.fd, buf, done, buf.length - done, opts.offset + bytes + done);
          unflushed += buf.length;
        }
        bytes += buf.length;
        // After the write: the hashing thread reads the bytes back from the file (a small body is
        // hashed right here instead).
        hasher.update(buf, opts.offset + bytes);
        opts.received?.(buf.length);
      }
      if (opts.checkpoint && fh && bytes - segmentStart >= opts.checkpoint.every) {
        const segment = { offset: opts.offset + segmentStart, length: bytes - segmentStart };
        const { record } = opts.checkpoint;
        // Both start now and settle in any order; a failure is handled once, in order, below.
        const ready = Promise.all([fh.datasync(), hasher.cut(opts.offset + bytes)]);
        ready.catch(() => {});
        unflushed = 0;
        checkpoints = checkpoints
          .then(() => ready)
          .then(([, d]) => record({ ...segment, sha256: d.sha256, sha256From: digestFrom(d, segment.offset) }))
          .catch((err: unknown) => void (error ??= err));
        segmentStart = bytes;
      } else if (fh && flushing === null && unflushed >= BACKGROUND_FLUSH_BYTES) {
        unflushed = 0;
        flushing = fh.datasync().then(
          () => void (flushing = null),
          (err: unknown) => void (error ??= err),
        );
      }
      if (overflow) break;
    }
  } catch (err) {
    error ??= err;
  }
  await checkpoints;
  // Durable before anyone records it: the ledger must never count bytes a crash could lose. The
  // last fdatasync starts without waiting for one still in flight (it covers every byte written
  // before it starts, whatever the other covers), so the two overlap on the disk.
  const [, , digests] = await Promise.all([flushing, fh?.datasync(), hasher.end(opts.offset + bytes)]);
  const sha256From = digestFrom(digests, opts.offset + segmentStart);
  return { bytes, segmentStart, sha256: digests.sha256, sha256From, checks: digests.checks, overflow, ...(error !== undefined && { error }) };
}

/** Where a digest the hasher answered starts: byte 0 when it continued the whole-file digest. */
function digestFrom(digest: SegmentDigest, segmentOffset: number): number {
  return digest.fromStart ? 0 : segmentOffset;
}

/** SHA-256 of everything a stream yields. */
export async function hashStream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const buf of stream) hash.update(buf as Buffer);
  return hash.digest('hex');
}
