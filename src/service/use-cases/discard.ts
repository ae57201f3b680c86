import { SluiceError } from '../../errors.js';
import type { Discard } from '../../ledger/ledger.js';
import { notWritable, owned, type Context } from './context.js';
import { statusHere } from './status.js';

/**
 * Drops an upload's bytes: the guarded state change and the forgetting of every received range
 * in one ledger transaction (its reservations end with the state), then its running digest and
 * its staging file. The one way abort, expiry and a failed publish let go of bytes. False when
 * the upload was not in `how.from` (someone else moved it first; nothing changed).
 */
export async function discard(c: Context, id: string, how: Discard): Promise<boolean> {
  const upload = await c.ledger.get(id);
  if (!(await c.ledger.discard(id, how))) return false;
  c.digests.forget(id);
  c.storeDigests.forget(id);
  await c.staging.remove(id);
  // Parts in the store (direct, or staged there): its multipart upload (or assembled object) goes too.
  if (upload && upload.multipart !== null && c.direct) {
    await c.direct
      .discard(upload.multipart)
      .catch((err: unknown) => c.log.warn({ uploadId: id, err, event: 'direct_discard_failed' }, "removing a direct upload's parts from the store failed"));
  }
  return true;
}

/** Aborts an upload that is still being uploaded; aborting an aborted upload is a no-op. */
export async function abort(c: Context, owner: string, id: string): Promise<void> {
  const upload = await statusHere(c, owner, id);
  if (upload.status === 'aborted') return;
  if (upload.status === 'expired') throw new SluiceError('upload_expired');
  // Its bytes are about to be published as part of another upload: they are not the client's to drop.
  if (upload.isPart && (await c.ledger.composedOf(id)).length > 0) {
    throw new SluiceError('part_in_use', `upload ${id} is a part of a composed upload that is not finished; terminate that one first`);
  }
  if (upload.status !== 'uploading' || !(await discard(c, id, { from: 'uploading', to: 'aborted', now: c.now() }))) {
    throw notWritable(await owned(c, owner, id));
  }
  c.log.info({ uploadId: id, event: 'upload_aborted' }, 'upload aborted');
  c.emit({ type: 'aborted' });
}

/**
 * Ends an upload for good: an unfinished one is aborted, a failed one too, and a completed one
 * has its stored file removed. Either way the upload is gone for all later requests.
 */
export async function terminate(c: Context, owner: string, id: string): Promise<void> {
  const upload = await statusHere(c, owner, id);
  if ((upload.status === 'completed' || upload.status === 'processing') && upload.location && !upload.isPart) {
    if (!(await c.ledger.terminateCompleted(id, c.now()))) throw notWritable(await owned(c, owner, id));
    await c.store.delete(upload.location);
    c.log.info({ uploadId: id, event: 'upload_terminated' }, 'completed upload terminated');
    return;
  }
  if (upload.status === 'failed' && (await c.ledger.transition(id, 'failed', 'aborted', c.now()))) return;
  await abort(c, owner, id);
}
