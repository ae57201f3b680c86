import { SluiceError } from '../../errors.js';
import type { Chunk, Upload } from '../../ledger/ledger.js';
import { chunkSpan, spanForRange, type Span } from '../chunk-grid.js';
import type { ChunkAddress, ChunkBody, ChunkReceipt } from '../upload-types.js';
import { notWritable, type Context } from './context.js';
import { receiveToStore } from './receive-to-store.js';
import { statusHere } from './status.js';

/**
 * Receives one chunk of a grid upload: streams the body into the staging file at the chunk's
 * offset while hashing it, flushes it, verifies it, and only then records it. A chunk that is
 * already recorded is hashed but never rewritten: the same bytes are an idempotent retry, other
 * bytes a conflict. A chunk is all or nothing: a body cut short records nothing.
 */
export async function receiveChunk(c: Context, owner: string, id: string, address: ChunkAddress, body: ChunkBody): Promise<ChunkReceipt> {
  const upload = await statusHere(c, owner, id);
  if (upload.status !== 'uploading') throw notWritable(upload);
  if (upload.layout !== 'grid') {
    throw new SluiceError('upload_not_writable', `upload ${id} takes its bytes in order at its end, not as chunks`, { upload_status: upload.status });
  }
  if (upload.transfer === 'direct') {
    throw new SluiceError('upload_not_writable', `upload ${id} is a direct upload: its parts go to their part URLs`, { upload_status: upload.status });
  }
  const span = resolveSpan(upload, address);
  if (body.declaredLength !== undefined && body.declaredLength !== span.length) {
    throw new SluiceError('chunk_length_mismatch', `chunk ${span.index} is ${span.length} bytes, the request declares ${body.declaredLength}`, {
      expected_length: span.length,
    });
  }
  const started = c.now();
  // Staged in the store (STAGING_BACKEND=s3): the chunk becomes a part of its multipart upload.
  if (upload.multipart !== null) return receiveToStore(c, upload, span, body, started);
  const intake = await c.intake.open({
    uploadId: id,
    lease: String(span.index),
    evict: () => body.stream.destroy(new SluiceError('chunk_in_progress', 'taken over by a newer request for the same chunk')),
    takeoverAfterMs: c.config.takeoverAfterMs,
    offset: span.offset,
    length: span.length,
    leased: async () => {
      const existing = await c.ledger.getChunk(id, span.index);
      if (existing && body.sha256 !== undefined && body.sha256 !== existing.sha256) {
        throw new SluiceError('chunk_conflict', `chunk ${span.index} was already received with SHA-256 ${existing.sha256}`, { index: span.index });
      }
      // A recorded chunk is only hashed (to tell a retry from a conflict), never rewritten.
      return existing === undefined;
    },
    own: true,
    algorithms: [],
  });
  try {
    const written = await intake.receive(body.stream, span.length);
    if (written.error !== undefined) throw intake.failure(written.error);
    if (written.overflow || written.bytes !== span.length) {
      throw new SluiceError(
        'chunk_length_mismatch',
        `chunk ${span.index} is ${span.length} bytes, the body ${written.overflow ? 'is longer' : `had ${written.bytes}`}`,
        {
          expected_length: span.length,
        },
      );
    }
    const sha256 = written.sha256 as string;
    if (body.sha256 !== undefined && body.sha256 !== sha256) {
      throw new SluiceError('checksum_mismatch', `chunk ${span.index} hashes to ${sha256}, the client sent ${body.sha256}`, { index: span.index, sha256 });
    }
    const chunk: Chunk = { index: span.index, offset: span.offset, length: span.length, sha256, receivedAt: c.now() };
    const end = span.offset + span.length;
    const result = await intake.commit(end, (fence) => c.ledger.recordChunk(id, chunk, fence));
    switch (result.kind) {
      case 'recorded':
        c.emit({ type: 'received', protocol: upload.protocol, bytes: span.length, seconds: (c.now() - started) / 1000 });
        return { chunk, upload: result.upload, created: true };
      case 'duplicate':
        return { chunk: (await c.ledger.getChunk(id, span.index)) as Chunk, upload: result.upload, created: false };
      case 'conflict':
        throw new SluiceError('chunk_conflict', `chunk ${span.index} was already received with different bytes`, { index: span.index });
      case 'not_writable':
        throw notWritable(result.upload ?? upload);
    }
  } finally {
    intake.dispose();
  }
}

function resolveSpan(upload: Upload, address: ChunkAddress): Span {
  if ('index' in address) {
    const span = chunkSpan(upload, address.index);
    if (!span) throw new SluiceError('invalid_range', `chunk index must be from 0 to ${upload.totalChunks - 1}`, { total_chunks: upload.totalChunks });
    return span;
  }
  const { first, last, size } = address.range;
  if (size !== upload.size) throw new SluiceError('invalid_range', `the Content-Range total ${size} is not the upload size ${upload.size}`);
  const span = spanForRange(upload, first, last);
  if (!span) {
    throw new SluiceError('invalid_range', `bytes ${first}-${last} is not exactly one chunk of ${upload.chunkSize} bytes`, { chunk_size: upload.chunkSize });
  }
  return span;
}
