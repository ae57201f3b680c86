import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { SluiceError } from '../../errors.js';
import type { Chunk, Upload } from '../../ledger/ledger.js';
import type { Span } from '../chunk-grid.js';
import type { ChunkBody, ChunkReceipt } from '../upload-types.js';
import { notWritable, type Context } from './context.js';
import { requireDirect } from './direct.js';

/**
 * Receives one chunk of an upload staged in the store (STAGING_BACKEND=s3): the body streams
 * straight into the multipart upload's part `index + 1`, hashed on the way (and, when the client
 * declared its SHA-256, sent as the part's checksum for the store to check too). Recorded only
 * once the store has answered and the digest is right; nothing touches the local disk.
 *
 * A part the ledger already has is never sent again - the store would replace it - but only hashed,
 * to tell a retry (200) from other bytes (409), as a chunk staged on disk is never rewritten.
 */
export async function receiveToStore(c: Context, upload: Upload, span: Span, body: ChunkBody, started: number): Promise<ChunkReceipt> {
  const { id } = upload;
  const direct = requireDirect(c);
  const { lease, done } = await c.intake.leaseOnly({
    uploadId: id,
    lease: String(span.index),
    evict: () => body.stream.destroy(new SluiceError('chunk_in_progress', 'taken over by a newer request for the same chunk')),
    takeoverAfterMs: c.config.takeoverAfterMs,
  });
  try {
    const [known] = await c.ledger.parts.list(id, span.index, 1);
    const existing = known?.index === span.index && known.etag !== null ? known : undefined;
    if (existing && body.sha256 !== undefined && body.sha256 !== existing.sha256) {
      throw new SluiceError('chunk_conflict', `chunk ${span.index} was already received with SHA-256 ${existing.sha256}`, { index: span.index });
    }
    const hash = createHash('sha256');
    // A chunk that starts where the whole-file digest ends continues it (no read-back at finish).
    const whole = existing ? undefined : c.storeDigests.from(id, span.offset, () => createHash('sha256'));
    let bytes = 0;
    let overflow = false;
    const counted = new Transform({
      transform(piece: Buffer, _enc, next) {
        if (!lease.held) return next(new SluiceError('chunk_in_progress', 'taken over by a newer request for the same chunk'));
        lease.touch();
        if (bytes + piece.length > span.length) {
          overflow = true;
          return next(
            new SluiceError('chunk_length_mismatch', `chunk ${span.index} is ${span.length} bytes, the body is longer`, { expected_length: span.length }),
          );
        }
        bytes += piece.length;
        hash.update(piece);
        whole?.update(piece);
        next(null, piece);
      },
    });
    // The body's own failure (the client went away, a takeover, too many bytes) is what the
    // client is told, and it ends the request to the store.
    let failure: unknown;
    const abort = new AbortController();
    const fail = (err: unknown) => {
      failure ??= err;
      abort.abort();
    };
    counted.on('error', fail);
    body.stream.on('error', (err) => {
      fail(err);
      counted.destroy(err);
    });
    body.stream.pipe(counted);
    let etag: string | undefined;
    try {
      if (existing) {
        for await (const _ of counted) {
          // only hashed
        }
      } else {
        etag = await direct.uploadPart(upload.multipart as string, span.index + 1, counted, span.length, body.sha256, abort.signal);
      }
    } catch (err) {
      if (overflow)
        throw new SluiceError('chunk_length_mismatch', `chunk ${span.index} is ${span.length} bytes, the body is longer`, { expected_length: span.length });
      if (failure !== undefined) throw failure;
      if (err instanceof SluiceError) throw err;
      throw new SluiceError('storage_unavailable', 'the store did not take the chunk; send it again', {}, { cause: err, headers: { 'retry-after': '5' } });
    }
    if (failure !== undefined) throw failure;
    if (bytes !== span.length) {
      throw new SluiceError('chunk_length_mismatch', `chunk ${span.index} is ${span.length} bytes, the body had ${bytes}`, { expected_length: span.length });
    }
    const sha256 = hash.digest('hex');
    if (body.sha256 !== undefined && body.sha256 !== sha256) {
      throw new SluiceError('checksum_mismatch', `chunk ${span.index} hashes to ${sha256}, the client sent ${body.sha256}`, { index: span.index, sha256 });
    }
    const chunk: Chunk = { index: span.index, offset: span.offset, length: span.length, sha256, receivedAt: c.now() };
    if (existing) {
      if (existing.sha256 !== sha256)
        throw new SluiceError('chunk_conflict', `chunk ${span.index} was already received with different bytes`, { index: span.index });
      return { chunk, upload: (await c.ledger.get(id)) as Upload, created: false };
    }
    if (!lease.held) throw new SluiceError('chunk_in_progress', 'taken over by a newer request for the same chunk');
    const result = await c.ledger.parts.report(id, { index: span.index, length: span.length, etag: etag as string, sha256 }, c.now());
    if (result.kind === 'not_writable') throw notWritable(result.upload ?? upload);
    if (whole && result.kind === 'recorded') c.storeDigests.advanced(id, span.offset, whole, span.offset + span.length);
    c.emit({ type: 'received', protocol: upload.protocol, bytes: span.length, seconds: (c.now() - started) / 1000 });
    return { chunk, upload: result.upload, created: result.kind === 'recorded' };
  } finally {
    done();
  }
}
