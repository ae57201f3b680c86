import { createHash } from 'node:crypto';
import { SluiceError, isSluiceError } from '../../errors.js';
import type { DirectPart, Upload } from '../../ledger/ledger.js';
import { chunkSpan, type Span } from '../chunk-grid.js';
import type { Context } from './context.js';
import { discard } from './discard.js';
import { requireDirect, reportPart } from './direct.js';

/** S3 errors that mean the client's parts or ETags are wrong, not that S3 is unwell. */
const PART_ERRORS = new Set(['InvalidPart', 'InvalidPartOrder', 'EntityTooSmall', 'NoSuchUpload']);

/**
 * Finishes a direct upload: the parts are assembled at the store's hidden staging key, read back
 * once while hashing (bounded memory), compared with the declared SHA-256, and only then copied to
 * the final key. Nothing unverified is ever visible there.
 *
 * A mismatch answers 422. With per-part digests reported, the damaged parts are named and the
 * upload goes on: a new multipart upload gets the good parts (copied from the staging object) and
 * the damaged ones are sent again. Without them, nothing says which bytes are wrong: the upload is
 * failed. The staging object is deleted either way.
 */
export async function finishDirect(
  c: Context,
  upload: Upload,
  expected: string | null,
  reported: { index: number; etag: string }[] | undefined,
): Promise<Upload> {
  const { id } = upload;
  for (const r of reported ?? []) await reportPart(c, upload.owner, id, r.index, r.etag, undefined);
  const missing = await c.ledger.parts.missing(id, upload.totalChunks, 1000);
  if (missing.length > 0) {
    throw new SluiceError('chunks_missing', `${missing.length} of ${upload.totalChunks} parts were not reported`, {
      missing_chunks: missing,
    });
  }
  // Without the file's SHA-256 every part must have one (declared for its URL, or reported): the
  // read-back then checks each part against it, so that every byte is still verified.
  if (expected === null && (await allParts(c, upload)).some((p) => p.sha256 === null)) {
    throw new SluiceError('sha256_required', "give the file's sha256, or every part's sha256 when asking for its URL or reporting it");
  }
  const running = c.directJobs.get(id);
  if (running) return running;
  if (!(await c.ledger.transition(id, 'uploading', 'finishing', c.now()))) {
    const now = (await c.ledger.get(id)) as Upload;
    return c.directJobs.get(id) ?? Promise.resolve(now);
  }
  const job = verifyAndPromote(c, (await c.ledger.get(id)) as Upload, expected).finally(() => c.directJobs.delete(id));
  c.directJobs.set(id, job);
  return job;
}

/**
 * Finishes a stream upload staged in the store once its last byte is there (its last part sent by
 * the append that brought it): assembled, hashed (its running digest, or a read-back), promoted.
 * Its digest is whatever its bytes hash to. A second call joins the first.
 */
export async function finishStagedStream(c: Context, upload: Upload): Promise<Upload> {
  const { id } = upload;
  const running = c.directJobs.get(id);
  if (running) return running;
  if (!(await c.ledger.transition(id, 'uploading', 'finishing', c.now()))) {
    return c.directJobs.get(id) ?? ((await c.ledger.get(id)) as Upload);
  }
  const job = verifyAndPromote(c, (await c.ledger.get(id)) as Upload, null).finally(() => c.directJobs.delete(id));
  c.directJobs.set(id, job);
  return job;
}

/**
 * `expected` null: a stream upload staged in the store, whose bytes are whatever they hash to, or
 * a direct upload checked part by part against the parts' own SHA-256s.
 */
async function verifyAndPromote(c: Context, upload: Upload, expected: string | null): Promise<Upload> {
  const direct = requireDirect(c);
  const { id } = upload;
  const ref = upload.multipart as string;
  const started = c.now();
  const parts = await allParts(c, upload);
  const back = async (reason: string) => {
    await c.ledger.transition(id, 'finishing', 'uploading', c.now(), reason);
  };
  try {
    await direct.complete(
      ref,
      parts.map((p) => ({ partNumber: p.index + 1, etag: p.etag as string })),
    );
  } catch (err) {
    await back('the store refused to assemble the parts');
    const name = (err as { name?: string }).name ?? '';
    if (PART_ERRORS.has(name)) {
      throw new SluiceError('chunk_conflict', `the store refused the parts: ${(err as Error).message}; send the parts again and report their ETags`, {});
    }
    throw unavailable(err);
  }

  // Bytes that came through this server in order were hashed on the way: that digest is the file's
  // (each part was checked by the store against what was sent), and nothing needs reading back.
  const running = c.storeDigests.sha256(id, upload.size);
  const partwise = expected === null && upload.transfer === 'direct';
  let digests: { whole: string; parts: string[]; size: number };
  if (running !== undefined && (expected === null || running === expected)) {
    digests = { whole: running, parts: [], size: upload.size };
  } else {
    try {
      // The file's digest alone first; each part's is computed only to tell which ones are damaged.
      digests = await readBack(c, upload, ref, partwise);
      if (expected !== null && digests.whole !== expected && parts.some((p) => p.sha256 !== null)) digests = await readBack(c, upload, ref, true);
    } catch (err) {
      await back('reading the assembled parts back failed');
      throw unavailable(err);
    }
  }
  const sha256 = expected ?? digests.whole;
  const partsMatch = !partwise || parts.every((p) => p.sha256 === digests.parts[p.index]);
  if (digests.size === upload.size && digests.whole === sha256 && partsMatch) {
    // The application's last word, on verified bytes that are not visible anywhere yet.
    try {
      await c.hooks.prePublish(upload, { sha256, size: upload.size, open: () => direct.read(ref) });
    } catch (err) {
      if (isSluiceError(err) && err.code === 'rejected_by_hook') {
        await discard(c, id, { from: 'finishing', to: 'failed', now: c.now(), failure: err.message });
        c.emit({ type: 'failed', protocol: upload.protocol });
      } else await back('the pre-publish hook could not be asked; the parts are kept, finish again');
      throw err;
    }
    let location: Awaited<ReturnType<typeof direct.promote>>;
    try {
      location = await direct.promote(ref, { id, fileName: upload.fileName, contentType: upload.contentType, sha256, size: upload.size });
    } catch (err) {
      await back('copying the verified file to its key failed');
      throw unavailable(err);
    }
    await c.ledger.complete(id, sha256, location, c.now(), c.config.events.postProcessUrl !== undefined && !upload.isPart);
    c.storeDigests.forget(id);
    c.log.info(
      { uploadId: id, size: upload.size, ms: c.now() - started, event: 'upload_completed', transfer: upload.transfer, read_back: running === undefined },
      'upload completed',
    );
    c.emit({ type: 'completed', protocol: upload.protocol, bytes: upload.size, seconds: (c.now() - started) / 1000 });
    return (await c.ledger.get(id)) as Upload;
  }

  // The bytes are not the declared file: which parts differ from what their client reported?
  const damaged = parts.filter((p) => p.sha256 !== null && p.sha256 !== digests.parts[p.index]).map((p) => p.index);
  const detail = partwise
    ? 'parts differ from the SHA-256 declared for them'
    : `the parts hash to ${digests.whole} (${digests.size} bytes), not to ${sha256} (${upload.size} bytes)`;
  if (damaged.length > 0) {
    const keep = parts
      .filter((p) => !damaged.includes(p.index))
      .map((p) => {
        const span = chunkSpan(upload, p.index) as Span;
        return { partNumber: p.index + 1, start: span.offset, end: span.offset + span.length - 1 };
      });
    try {
      const fresh = await direct.restart(ref, id, keep);
      const kept = [...fresh.etags].map(([partNumber, etag]) => ({ index: partNumber - 1, etag }));
      await c.ledger.parts.restart(id, fresh.ref, kept, c.now(), `parts ${damaged.map((i) => i + 1).join(', ')} were damaged`);
    } catch (err) {
      await back('the damaged parts could not be set aside');
      throw unavailable(err);
    }
    throw new SluiceError('file_checksum_mismatch', `${detail}; parts ${damaged.map((i) => i + 1).join(', ')} differ from their SHA-256: send them again`, {
      corrupt_parts: damaged.map((i) => i + 1),
      corrupt_chunks: damaged,
    });
  }
  // (discard removes the staging object and the multipart upload from the store too.)
  await discard(c, id, { from: 'finishing', to: 'failed', now: c.now(), failure: detail });
  c.emit({ type: 'failed', protocol: upload.protocol });
  throw new SluiceError('file_checksum_mismatch', detail, { sha256: digests.whole });
}

/** Every part of a direct upload, in order (they are all reported by now). */
async function allParts(c: Context, upload: Upload): Promise<DirectPart[]> {
  const out: DirectPart[] = [];
  // (A stream staged in the store has as many parts as it recorded; a grid, its chunk count.)
  for (let from = 0; from < Math.max(upload.totalChunks, upload.chunksReceived); from = out.length) {
    const page = await c.ledger.parts.list(upload.id, from, 1000);
    if (page.length === 0) break;
    out.push(...page);
  }
  return out;
}

/** Hashes the assembled object once: the whole file, and (`perPart`) each part on the grid. */
async function readBack(c: Context, upload: Upload, ref: string, perPart: boolean): Promise<{ whole: string; parts: string[]; size: number }> {
  const stream = await requireDirect(c).read(ref);
  const whole = createHash('sha256');
  const parts: string[] = [];
  let part = createHash('sha256');
  let inPart = 0;
  let size = 0;
  for await (const piece of stream as AsyncIterable<Buffer>) {
    whole.update(piece);
    size += piece.length;
    if (!perPart) continue;
    let buf = piece;
    while (buf.length > 0) {
      const take = Math.min(buf.length, upload.chunkSize - inPart);
      part.update(buf.subarray(0, take));
      inPart += take;
      buf = buf.subarray(take);
      if (inPart === upload.chunkSize) {
        parts.push(part.digest('hex'));
        part = createHash('sha256');
        inPart = 0;
      }
    }
  }
  if (inPart > 0) parts.push(part.digest('hex'));
  return { whole: whole.digest('hex'), parts, size };
}

function unavailable(err: unknown): SluiceError {
  if (isSluiceError(err)) return err;
  return new SluiceError('storage_unavailable', 'the store failed while finishing; the parts are kept, finish again later', {}, { cause: err });
}
