import { SluiceError } from '../../errors.js';
import { isStored, type Upload } from '../../ledger/ledger.js';
import { hasAllBytes, notWritable, type Context } from './context.js';
import { finishDirect, finishStagedStream } from './direct-finish.js';
import { statusHere } from './status.js';

/**
 * Checks that a grid upload can be finished and starts its publish job. Rejects at once for what
 * the caller must fix (missing chunks, no SHA-256, wrong state); `done` settles when the file is
 * stored or storing failed. The job belongs to the service, not to a request: a client that
 * disconnects does not cancel it, and a second finish joins it.
 */
export async function startFinish(
  c: Context,
  owner: string,
  id: string,
  sha256?: string,
  parts?: { index: number; etag: string }[],
): Promise<{ upload: Upload; done: Promise<Upload> }> {
  const upload = await statusHere(c, owner, id);
  // Finishing again answers what the first finish did (a post-processor may still be at work).
  if (isStored(upload)) {
    if (sha256 !== undefined && sha256 !== upload.sha256) {
      throw new SluiceError('file_checksum_mismatch', `the upload completed with SHA-256 ${upload.sha256}`, { sha256: upload.sha256 });
    }
    return { upload, done: Promise.resolve(upload) };
  }
  // A finish already running is joined; this caller is answered by its own sha256.
  const running = c.publisher.job(id, sha256);
  if (running) return { upload, done: running };
  if (upload.status !== 'uploading') throw notWritable(upload);
  if (upload.layout !== 'grid') {
    throw new SluiceError('upload_not_writable', `upload ${id} is finished by its last byte, not by a finish request`, { upload_status: upload.status });
  }
  if (sha256 !== undefined && upload.expectedSha256 !== null && sha256 !== upload.expectedSha256) {
    throw new SluiceError('invalid_request', `sha256 differs from the one given when the upload was created (${upload.expectedSha256})`);
  }
  const expected = sha256 ?? upload.expectedSha256;
  // A direct upload whose every part declared its SHA-256 is verified part by part (see finishDirect).
  const partwise = upload.transfer === 'direct' && upload.multipart !== null;
  if (expected === null && !partwise && c.config.requireFileSha256) {
    throw new SluiceError('sha256_required', 'give the whole-file sha256 when creating or finishing the upload (REQUIRE_FILE_SHA256)');
  }
  // Parts in the store (a direct upload, or chunks staged there): assembled and verified there.
  if (upload.multipart !== null) {
    const done = finishDirect(c, upload, expected, parts);
    done.catch(() => {});
    return { upload, done };
  }
  // The parts a client of direct uploads reports against this server's own part URLs: their ETags
  // are the chunks' SHA-256s.
  for (const part of parts ?? []) {
    const chunk = await c.ledger.getChunk(id, part.index);
    if (chunk && chunk.sha256 !== part.etag.replace(/"/g, '')) {
      throw new SluiceError('chunk_conflict', `part ${part.index + 1} was received with ETag "${chunk.sha256}", not ${part.etag}`, { index: part.index });
    }
  }

  const missing = await c.ledger.missingChunks(id, upload.totalChunks, 1000);
  if (missing.length > 0) {
    throw new SluiceError('chunks_missing', `${upload.totalChunks - upload.chunksReceived} of ${upload.totalChunks} chunks are missing`, {
      missing_chunks: missing,
    });
  }
  if (!(await c.ledger.transition(id, 'uploading', 'finishing', c.now()))) {
    // Another request moved it first: join its job, or report the state it reached.
    return startFinish(c, owner, id, sha256);
  }
  const done = c.publisher.start(upload, expected);
  return { upload: (await c.ledger.get(id)) as Upload, done };
}

/**
 * Publishes a stream or composed upload that has all its bytes (joining a job already running);
 * otherwise returns it as it is. Its digest is whatever its bytes hash to.
 */
export async function publishIfComplete(c: Context, id: string): Promise<Upload> {
  const joined = c.publisher.job(id);
  if (joined) return joined;
  const upload = await c.ledger.get(id);
  if (!upload || upload.status !== 'uploading' || !(await hasAllBytes(c, upload))) return upload as Upload;
  if (upload.multipart !== null) return finishStagedStream(c, upload);
  if (!(await c.ledger.transition(id, 'uploading', 'finishing', c.now()))) return c.publisher.job(id) ?? ((await c.ledger.get(id)) as Upload);
  return c.publisher.start((await c.ledger.get(id)) as Upload, null);
}

/** Publishes stream uploads that have every byte but were not published (a store outage, a crash). */
export async function retryPublishing(c: Context): Promise<number> {
  let started = 0;
  for (const id of await c.ledger.awaitingPublish(c.config.node?.id)) {
    if (c.publisher.job(id) !== undefined) continue;
    const upload = await c.ledger.get(id);
    if (!upload || !(await hasAllBytes(c, upload))) continue;
    started++;
    await publishIfComplete(c, id).catch((err: unknown) => c.log.warn({ uploadId: id, err, event: 'publish_retry_failed' }, 'publishing again failed'));
  }
  return started;
}
