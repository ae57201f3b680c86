import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export interface WrittenBody {
  /** Bytes written and fdatasynced at `offset`. */
  bytes: number;
  /** Where the last segment starts (after the last checkpoint; 0 without checkpoints). */
  segmentStart: number;
  /** SHA-256 of the last segment's bytes, hex (of all bytes without checkpoints). */
  sha256: string;
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
  /** More hashes to feed with the same bytes (a client checksum, a running whole-file hash). */
  also?: Hash[];
  /**
   * Make long bodies durable as they go: after every `every` bytes, fdatasync and hand the segment
   * to `record`, so that a crash mid-body keeps what was already received.
   */
  checkpoint?: { every: number; record: (segment: { offset: number; length: number; sha256: string }) => void };
}

/**
 * Streams a body into a file (or, with no file, only through the hashes) with positional writes, hashing as it goes, and fdatasyncs what was
 * written whatever happened: a body cut short still leaves durable bytes that the caller may
 * record. Never buffers more than one incoming piece. Reading stops (without destroying the
 * socket, so an answer can still be sent) once `max` is exceeded.
 */
export async function writeBody(fh: FileHandle | null, stream: Readable, opts: WriteOptions): Promise<WrittenBody> {
  let hash = createHash('sha256');
  let bytes = 0;
  let segmentStart = 0;
  let error: unknown;
  let overflow = false;
  try {
    for await (const piece of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      opts.touch();
      let buf = piece;
      if (bytes + buf.length > opts.max) {
        overflow = true;
        buf = buf.subarray(0, opts.max - bytes);
      }
      if (buf.length > 0) {
        hash.update(buf);
        for (const h of opts.also ?? []) h.update(buf);
        let done = fh === null ? buf.length : 0; // no file: hash only
        while (done < buf.length && fh !== null) {
          const { bytesWritten } = await fh.write(buf, done, buf.length - done, opts.offset + bytes + done);
          done += bytesWritten;
        }
        bytes += buf.length;
      }
      if (opts.checkpoint && fh && bytes - segmentStart >= opts.checkpoint.every) {
        await fh.datasync();
        opts.checkpoint.record({ offset: opts.offset + segmentStart, length: bytes - segmentStart, sha256: hash.digest('hex') });
        hash = createHash('sha256');
        segmentStart = bytes;
      }
      if (overflow) break;
    }
  } catch (err) {
    error = err;
  }
  // Durable before anyone records it: the ledger must never count bytes a crash could lose.
  await fh?.datasync();
  return { bytes, segmentStart, sha256: hash.digest('hex'), overflow, ...(error !== undefined && { error }) };
}

/** SHA-256 of everything a stream yields. */
export async function hashStream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const buf of stream) hash.update(buf as Buffer);
  return hash.digest('hex');
}
