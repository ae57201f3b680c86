import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { Readable } from 'node:stream';
import { SluiceError, isSluiceError } from '../../errors.js';
import type { StagedAppend, Upload } from '../../ledger/ledger.js';
import type { AppendRequest } from '../upload-types.js';
import { deactivate, room } from './append.js';
import { notWritable, quotaExceeded, STREAM_END, type Context } from './context.js';
import { requireDirect } from './direct.js';

type Part = StagedAppend['parts'][number];

/**
 * Appends bytes to a stream upload staged in the store (STAGING_BACKEND=s3), with the rules of
 * `append`: the offset must be the upload's end, a request cut short keeps what arrived (unless it
 * carries a checksum), a newer request takes over at once.
 *
 * The upload's bytes are whole parts of `chunkSize` in the multipart upload plus a tail: the bytes
 * past the last whole part, in an object of their own (as tusd's `.part`), named in the ledger. A
 * request reads the tail back into a spool file on the local disk, adds its bytes, sends each part
 * as it fills (recorded at once: a part is a checkpoint), and leaves what is left as a new tail -
 * or, with the last byte, as the last part. So the local disk holds at most one part per request,
 * and the next request may run on any node that shares the ledger and the bucket.
 */
export async function appendToStore(c: Context, start: Upload, req: AppendRequest): Promise<Upload> {
  const { id } = start;
  const direct = requireDirect(c);
  const { lease, done } = await c.intake.leaseOnly({
    uploadId: id,
    lease: STREAM_END,
    evict: () => req.stream.destroy(new SluiceError('offset_mismatch', 'taken over by a newer request for the same upload')),
    takeoverAfterMs: 0,
    ended: () => req.stream.destroyed || req.stream.readableEnded,
    stop: (reason) => {
      if (req.stream.listenerCount('error') > 0) req.stream.emit('error', reason);
    },
  });
  const spool = c.staging.pathOf(`${id}.spool-${randomUUID()}`);
  let overran = false;
  try {
    // Read again under the lease: the end may have moved since.
    let upload = (await c.ledger.get(id)) as Upload;
    if (upload.status !== 'uploading') throw notWritable(upload);
    if (req.offset !== upload.bytesReceived) {
      throw new SluiceError('offset_mismatch', `the bytes start at offset ${req.offset}, the upload is at ${upload.bytesReceived}`, {
        offset: upload.bytesReceived,
      });
    }
    const { limit, tooMuch } = await room(c, upload, req.offset, req.strictLength === true);
    if (req.declaredLength !== undefined && req.declaredLength > limit) {
      const err = tooMuch(`the body (${req.declaredLength} bytes)`);
      overran = err.code === 'inconsistent_length';
      throw err;
    }
    const ref = upload.multipart as string;
    const partSize = upload.chunkSize;
    const started = c.now();
    const abort = new AbortController();
    const file = await fs.open(spool, 'w+');
    try {
      let index = Math.floor(upload.bytesReceived / partSize);
      let pending = upload.bytesReceived - index * partSize;
      let partHash = createHash('sha256');
      const whole = c.storeDigests.from(id, upload.bytesReceived, () => createHash('sha256'));
      if (pending > 0) {
        if (upload.tail === null) throw new Error(`upload ${id} has ${pending} bytes past its last part and no tail`);
        let at = 0;
        for await (const piece of await direct.readTail(upload.tail, pending)) {
          await file.write(piece as Buffer, 0, (piece as Buffer).length, at);
          partHash.update(piece as Buffer);
          at += (piece as Buffer).length;
        }
        if (at !== pending) throw new Error(`the tail of upload ${id} has ${at} bytes, not ${pending}`);
      }

      // Only a body with a checksum is all or nothing: its parts are recorded once it is checked.
      const checks = req.checksum ? new Map(req.checksum.algorithms.map((a) => [a, createHash(a)])) : undefined;
      const held: Part[] = [];
      let end = upload.bytesReceived;
      let recordedEnd = upload.bytesReceived;
      let received = 0;
      let overflow = false;
      let failure: unknown;

      const send = async (): Promise<Part> => {
        const sha256 = partHash.digest('hex');
        const body = pending === 0 ? Readable.from([]) : createReadStream('', { fd: file.fd, autoClose: false, start: 0, end: pending - 1 });
        const etag = await direct.uploadPart(ref, index + 1, body, pending, sha256, abort.signal);
        const part = { index, length: pending, etag, sha256 };
        index++;
        pending = 0;
        partHash = createHash('sha256');
        return part;
      };
      const record = async (staged: StagedAppend, covered: Hash | undefined): Promise<void> => {
        const result = await c.ledger.recordStaged(id, staged, c.now(), c.config.userQuota, () => lease.held);
        if (result.kind === 'fenced') throw new SluiceError('offset_mismatch', 'taken over by a newer request for the same upload');
        if (result.kind === 'over_quota') throw quotaExceeded(c, result.reserved, `${staged.extent.length} more bytes`);
        if (result.kind === 'offset_moved') throw new SluiceError('offset_mismatch', 'the upload moved on meanwhile', { offset: result.upload.bytesReceived });
        if (result.kind === 'not_writable') throw notWritable(result.upload ?? upload);
        if (covered) c.storeDigests.advanced(id, staged.extent.offset, covered, staged.extent.offset + staged.extent.length);
        if (upload.tail !== null && upload.tail !== staged.tail) {
          const old = upload.tail;
          void direct.dropTail(old).catch((err: unknown) => c.log.warn({ uploadId: id, err, event: 'tail_drop_failed' }, 'deleting an old tail failed'));
        }
        upload = result.upload;
        recordedEnd = upload.bytesReceived;
        c.emit({ type: 'received', protocol: upload.protocol, bytes: staged.extent.length, seconds: (c.now() - started) / 1000 });
        req.onDurable?.(recordedEnd);
      };

      try {
        for await (const chunk of req.stream) {
          if (!lease.held) throw new SluiceError('offset_mismatch', 'taken over by a newer request for the same upload');
          lease.touch();
          let buf = chunk as Buffer;
          if (received + buf.length > limit) {
            buf = buf.subarray(0, limit - received);
            overflow = true;
          }
          while (buf.length > 0) {
            const slice = buf.subarray(0, Math.min(buf.length, partSize - pending));
            await file.write(slice, 0, slice.length, pending);
            partHash.update(slice);
            whole?.update(slice);
            for (const h of checks?.values() ?? []) h.update(slice);
            pending += slice.length;
            received += slice.length;
            end += slice.length;
            buf = buf.subarray(slice.length);
            if (pending < partSize) continue;
            const part = await send();
            if (checks) held.push(part);
            else await record({ extent: { offset: recordedEnd, length: end - recordedEnd }, parts: [part], tail: null }, whole?.copy());
          }
          if (overflow) break;
        }
      } catch (err) {
        failure = err;
      }
      if (!lease.held) throw new SluiceError('offset_mismatch', 'taken over by a newer request for the same upload');
      if (checks && req.checksum) {
        if (failure !== undefined) throw failure;
        const expected = req.checksum.expected();
        const digest = checks.get(expected.algorithm)?.digest();
        if (!digest) throw new SluiceError('checksum_algorithm_unsupported', `checksum algorithm ${expected.algorithm} is not supported`);
        if (!digest.equals(expected.digest)) throw new SluiceError('checksum_mismatch', `the body's ${expected.algorithm} is ${digest.toString('base64')}`);
      }
      // What arrived counts even when the client went away meanwhile - unless the store failed.
      const storeFailed = failure !== undefined && !isSluiceError(failure) && !clientGone(failure);
      if (storeFailed) throw unavailable(failure);
      const last = !overflow && (upload.lengthDeferred ? req.complete === true && failure === undefined : end === upload.size);
      // The last part may be short, or even empty when it is the only one (an empty file).
      const lastPart = last && (pending > 0 || index === 0);
      if (end > recordedEnd || held.length > 0 || lastPart) {
        const parts = [...held];
        let tail: string | null = null;
        try {
          if (lastPart) parts.push(await send());
          else if (pending > 0) {
            tail = await direct.putTail(ref, createReadStream('', { fd: file.fd, autoClose: false, start: 0, end: pending - 1 }), pending, abort.signal);
          }
        } catch (err) {
          throw unavailable(err);
        }
        await record({ extent: { offset: recordedEnd, length: end - recordedEnd }, parts, tail }, whole);
      }
      if (failure !== undefined) throw failure;
      if (overflow) {
        const err = tooMuch('the body');
        overran = err.code === 'inconsistent_length';
        throw err;
      }
      return upload;
    } finally {
      abort.abort();
      await file.close();
    }
  } finally {
    await fs.rm(spool, { force: true });
    done();
    if (overran) await deactivate(c, id);
  }
}

/** The request's own end (the client went away), as opposed to the store failing. */
function clientGone(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as Error).message === 'aborted';
}

function unavailable(err: unknown): unknown {
  if (isSluiceError(err)) return err;
  return new SluiceError(
    'storage_unavailable',
    'the store did not take the bytes; ask for the offset and send the rest again',
    {},
    {
      cause: err,
      headers: { 'retry-after': '5' },
    },
  );
}
