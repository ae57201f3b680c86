import { SluiceError } from '../../errors.js';
import { type Extent, isStored, type Upload } from '../../ledger/ledger.js';
import type { Body } from '../intake/intake.js';
import type { AppendRequest } from '../upload-types.js';
import { checkNew, hasAllBytes, notWritable, quotaExceeded, STREAM_END, type Context } from './context.js';
import { appendToStore } from './append-to-store.js';
import { discard } from './discard.js';
import { publishIfComplete } from './finish.js';
import { statusHere } from './status.js';

/** A long append is made durable and recorded every this many bytes. */
const CHECKPOINT_BYTES = 16 * 1024 * 1024;

/**
 * Appends bytes at `offset`, which must be the stream upload's current end. What arrives is
 * written and flushed; the bytes of a request cut short still count - unless the request carries
 * a checksum, which a partial body cannot match, so that then nothing is recorded. A newer
 * request for the same upload takes over from an older one at once (the old one is fenced: it
 * records nothing more). When the last byte arrives the upload is published before this returns.
 */
export async function append(c: Context, owner: string, id: string, req: AppendRequest): Promise<Upload> {
  let upload = await statusHere(c, owner, id);
  if (upload.layout !== 'stream')
    throw new SluiceError('upload_not_writable', `upload ${id} takes chunks, not appended bytes`, { upload_status: upload.status });
  if (upload.parts) throw new SluiceError('concat_final_immutable', 'a composed upload is made of its parts and takes no bytes itself');
  if (upload.status !== 'uploading') {
    if (isStored(upload) && req.offset !== upload.size) {
      throw new SluiceError('offset_mismatch', `the upload is complete at offset ${upload.size}`, { offset: upload.size });
    }
    throw notWritable(upload);
  }
  if (req.length !== undefined) upload = await fixLength(c, upload, req.length);
  if (upload.multipart !== null) upload = await appendToStore(c, upload, req);
  else upload = await appendToStaging(c, upload, req);
  return completed(c, upload, req);
}

/** Appends to the staging file: written, flushed and recorded, with checkpoints every 16 MiB. */
async function appendToStaging(c: Context, start: Upload, req: AppendRequest): Promise<Upload> {
  let upload = start;
  const { id } = upload;
  const started = c.now();
  let limit = 0;
  let tooMuch = (_body: string): SluiceError => new SluiceError('upload_too_large');
  // A body past the upload's length, when the caller asked for that to fail the upload.
  let overran = false;
  let intake: Body;
  try {
    intake = await c.intake.open({
      uploadId: id,
      lease: STREAM_END,
      evict: () => req.stream.destroy(new SluiceError('offset_mismatch', 'taken over by a newer request for the same upload')),
      takeoverAfterMs: 0,
      ended: () => req.stream.destroyed || req.stream.readableEnded,
      // Fails the body's reading (not its socket): what arrived is recorded and the request answered.
      stop: (reason) => {
        if (req.stream.listenerCount('error') > 0) req.stream.emit('error', reason);
      },
      offset: req.offset,
      length: req.declaredLength,
      // The whole-file digest covers appended bytes; their own SHA-256 is not wanted.
      own: false,
      algorithms: req.checksum?.algorithms ?? [],
      leased: async () => {
        // Read again under the lease: the end may have moved since.
        upload = (await c.ledger.get(id)) as Upload;
        if (upload.status !== 'uploading') throw notWritable(upload);
        if (req.offset !== upload.bytesReceived) {
          throw new SluiceError('offset_mismatch', `the bytes start at offset ${req.offset}, the upload is at ${upload.bytesReceived}`, {
            offset: upload.bytesReceived,
          });
        }
        ({ limit, tooMuch } = await room(c, upload, req.offset, req.strictLength === true));
        if (req.declaredLength !== undefined && req.declaredLength > limit) {
          const err = tooMuch(`the body (${req.declaredLength} bytes)`);
          overran = err.code === 'inconsistent_length';
          throw err;
        }
        return true;
      },
    });
  } catch (err) {
    if (overran) await deactivate(c, id);
    throw err;
  }
  try {
    const written = await intake.receive(
      req.stream,
      limit,
      // A checksummed body is all or nothing; any other long body is made durable as it goes.
      req.checksum
        ? undefined
        : {
            every: CHECKPOINT_BYTES,
            record: async (segment) => {
              upload = await record(c, intake, upload, segment, started);
              req.onDurable?.(upload.bytesReceived);
            },
          },
    );
    if (req.checksum) {
      if (written.error !== undefined) throw intake.failure(written.error);
      const expected = req.checksum.expected();
      const digest = written.checks.get(expected.algorithm);
      if (!digest) throw new SluiceError('checksum_algorithm_unsupported', `checksum algorithm ${expected.algorithm} is not supported`);
      if (!digest.equals(expected.digest)) throw new SluiceError('checksum_mismatch', `the body's ${expected.algorithm} is ${digest.toString('base64')}`);
    }
    // What was flushed without an error counts, even when the client went away meanwhile.
    if (written.flushed && written.bytes > written.segmentStart) {
      upload = await record(c, intake, upload, { offset: req.offset + written.segmentStart, length: written.bytes - written.segmentStart }, started);
    }
    if (written.error !== undefined) throw intake.failure(written.error);
    if (written.overflow) {
      const err = tooMuch('the body');
      overran = err.code === 'inconsistent_length';
      throw err;
    }
  } finally {
    intake.dispose();
    if (overran) await deactivate(c, id);
  }
  return upload;
}

/** After the bytes: a declared end is checked, and an upload with every byte is published. */
async function completed(c: Context, start: Upload, req: AppendRequest): Promise<Upload> {
  let upload = start;
  const { id } = upload;
  if (req.complete) {
    if (upload.lengthDeferred) upload = await fixLength(c, upload, upload.bytesReceived);
    else if (upload.bytesReceived !== upload.size) {
      throw new SluiceError('inconsistent_length', `the upload was declared complete at ${upload.bytesReceived} of ${upload.size} bytes`, {
        offset: upload.bytesReceived,
      });
    }
  }
  if (!(await hasAllBytes(c, upload))) return upload;
  if (upload.isPart) {
    for (const composedId of await c.ledger.composedOf(id)) await publishIfComplete(c, composedId);
    return (await c.ledger.get(id)) as Upload;
  }
  return publishIfComplete(c, id);
}

/**
 * How many bytes the body may bring. An upload without a length reserves nothing up front: its
 * bytes count against USER_QUOTA as they arrive, so the body may not take more than the quota
 * leaves (the ledger checks again when it records them).
 */
export async function room(c: Context, upload: Upload, offset: number, strict: boolean) {
  const left = (upload.lengthDeferred ? c.config.maxUploadSize : upload.size) - offset;
  const quota = c.config.userQuota;
  const counts = upload.lengthDeferred && quota !== undefined;
  const reserved = counts ? await c.ledger.reserved(upload.owner) : 0;
  const quotaRoom = counts ? Math.max(0, quota - reserved) : Number.POSITIVE_INFINITY;
  const tooMuch = (body: string): SluiceError => {
    if (quotaRoom < left) return quotaExceeded(c, reserved, body);
    const detail = `${body} runs past the end of the upload (${left} bytes left)`;
    if (strict && !upload.lengthDeferred) return new SluiceError('inconsistent_length', `${detail}; the upload is failed`);
    return new SluiceError('upload_too_large', detail);
  };
  return { limit: Math.min(left, quotaRoom), tooMuch };
}

/** Records durable appended bytes as one extent; throws if the upload moved on or closed. */
async function record(c: Context, intake: Body, upload: Upload, extent: Extent, started: number): Promise<Upload> {
  const result = await intake.commit(extent.offset + extent.length, (fence) => c.ledger.recordExtent(upload.id, extent, c.now(), c.config.userQuota, fence));
  if (result.kind === 'over_quota') throw quotaExceeded(c, result.reserved, `${extent.length} more bytes`);
  if (result.kind === 'offset_moved') throw new SluiceError('offset_mismatch', 'the upload moved on meanwhile', { offset: result.upload.bytesReceived });
  if (result.kind === 'not_writable') throw notWritable(result.upload ?? upload);
  c.emit({ type: 'received', protocol: upload.protocol, bytes: extent.length, seconds: (c.now() - started) / 1000 });
  return result.upload;
}

/** Sets a deferred length once the client knows it; a known length can only be repeated. */
export async function fixLength(c: Context, upload: Upload, length: number): Promise<Upload> {
  if (!upload.lengthDeferred) {
    if (length !== upload.size) throw new SluiceError('inconsistent_length', `the upload's length is ${upload.size} and cannot change`);
    return upload;
  }
  checkNew(c, upload.fileName, length);
  if (length < upload.bytesReceived)
    throw new SluiceError('invalid_request', `the length ${length} is less than the ${upload.bytesReceived} bytes already received`);
  const result = await c.ledger.setLength(upload.id, length, c.now(), c.config.userQuota);
  if (result.kind === 'over_quota') throw quotaExceeded(c, result.reserved, `a length of ${length}`);
  // (A stream staged in the store has no staging file: its tail is as long as it is.)
  if (result.kind === 'set' && upload.multipart === null) await c.staging.resize(upload.id, length);
  return (await c.ledger.get(upload.id)) as Upload;
}

/**
 * Fails an upload whose bytes ran past its length: its client and the server no longer agree on
 * what the upload is, so nothing more of it is taken (its staging bytes are freed).
 */
export async function deactivate(c: Context, id: string): Promise<void> {
  await discard(c, id, { from: 'uploading', to: 'failed', now: c.now(), failure: 'a request brought bytes past the upload length' });
}
