import { SluiceError } from '../../errors.js';
import type { FileChange, LedgerEvent, ProcessingResult, Upload } from '../../ledger/ledger.js';
import { checkMetadata, checkText, owned, plainName, type Context } from './context.js';

/**
 * A post-processor's answer for an upload in `processing` (its file is stored): `completed` keeps
 * its outputs, `failed` fails the upload with the processor's message and removes the stored file,
 * so that a file the processor refused is never served. Repeating the same answer is a no-op (a
 * processor may retry); a different one after the first is refused.
 */
export async function processed(c: Context, id: string, result: ProcessingResult): Promise<Upload> {
  const upload = await c.ledger.get(id);
  if (!upload) throw new SluiceError('not_found', `no upload ${id}`);
  if (upload.status !== 'processing') {
    if (upload.processing?.status === result.status) return upload;
    throw new SluiceError('not_processing', `upload ${id} is ${upload.status}`, { upload_status: upload.status });
  }
  if (!(await c.ledger.processed(id, result, c.now()))) return processed(c, id, result);
  if (result.status === 'failed' && upload.location) {
    await c.store
      .delete(upload.location)
      .catch((err: unknown) => c.log.warn({ uploadId: id, err, event: 'processed_delete_failed' }, 'removing the file its processor failed did not work'));
  }
  c.log.info({ uploadId: id, processing: result.status, event: 'upload_processed' }, 'post-processing answered');
  return (await c.ledger.get(id)) as Upload;
}

/**
 * Waits up to `ms` for an upload to leave `processing` (Prefer: wait=N on finish). It reads the
 * ledger, not this process's memory, so that the answer may come through any node.
 */
export async function waitProcessed(c: Context, upload: Upload, ms: number, step = 100): Promise<Upload> {
  const deadline = Date.now() + ms;
  let now = upload;
  while (now.status === 'processing' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(step, Math.max(1, deadline - Date.now()))));
    now = (await c.ledger.get(upload.id)) ?? now;
  }
  return now;
}

/** A stored file's name, content type or metadata, changed by its owner (a `file.updated` event). */
export async function updateFile(c: Context, owner: string, id: string, change: FileChange): Promise<Upload> {
  const upload = await owned(c, owner, id);
  if (upload.isPart) throw new SluiceError('not_found', `no file ${id}`);
  if (change.fileName !== undefined) {
    checkText('file_name', change.fileName);
    if (!plainName(change.fileName))
      throw new SluiceError('invalid_request', 'file_name must be a plain file name: 1 to 255 bytes of UTF-8, no control characters, no / or \\');
  }
  if (change.contentType !== undefined) checkText('content_type', change.contentType);
  checkMetadata(change.metadata);
  const updated = await c.ledger.updateFile(id, change, c.now());
  if (!updated) throw new SluiceError('upload_not_completed', `upload ${id} is ${upload.status}`, { upload_status: upload.status });
  return updated;
}

/** The owner's events after `after` (GET /v1/events). */
export function events(c: Context, owner: string, after: number, limit: number): Promise<LedgerEvent[]> {
  return c.ledger.events.list(owner, after, limit);
}
