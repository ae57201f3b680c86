import { SluiceError } from '../../errors.js';
import type { StoredLocation, Upload } from '../../ledger/ledger.js';
import type { Download } from '../../storage/file-store.js';
import { isHere, owned, requireHere, STREAM_END, type Context } from './context.js';
import { expire } from './expire.js';

/** The upload as its owner sees it, expired on the spot if its time is up (the sweeper may not have run). */
export async function status(c: Context, owner: string, id: string): Promise<Upload> {
  const upload = await owned(c, owner, id);
  // (Only the node that holds its bytes lets them go.)
  if (upload.status === 'uploading' && upload.expiresAt <= c.now() && isHere(c, upload)) {
    await expire(c, id);
    return owned(c, owner, id);
  }
  return upload;
}

/** The upload as `status` gives it, for work that needs its bytes: on another node's disk, the client is sent there. */
export async function statusHere(c: Context, owner: string, id: string): Promise<Upload> {
  const upload = await status(c, owner, id);
  await requireHere(c, upload);
  return upload;
}

/**
 * Waits for a writer of the upload whose body has just ended (or broken off) to record its
 * durable bytes, so that a client resuming right after a network error reads the offset it must
 * continue from, not one that moves under it. Returns at once when nobody is settling.
 */
export async function settled(c: Context, id: string): Promise<void> {
  await c.intake.settled(id, STREAM_END);
}

/**
 * Ends an append still attached to a stream upload (its client may have given up on it; it
 * records what arrived) and resolves once it has: the offset read next is the real one, and a
 * request sent from it is accepted.
 */
export async function interrupted(c: Context, id: string): Promise<void> {
  // An append on another node is that node's to interrupt: the client is sent there. (With one
  // node there is no other: no ledger read on every HEAD.)
  if (c.config.node) {
    const upload = await c.ledger.get(id);
    if (upload) await requireHere(c, upload);
  }
  await c.intake.interrupt(id, STREAM_END);
}

/** Ends every append in flight, each recording what arrived and answered with `shutting_down`. */
export async function stopAppends(c: Context): Promise<void> {
  await c.intake.stopAll(
    new SluiceError('shutting_down', 'the server is shutting down; resume from the recorded offset', {}, { headers: { 'retry-after': '5' } }),
  );
}

/** Grid uploads that are not completed can miss chunks; stream uploads grow at their end. */
function canMissChunks(upload: Upload): boolean {
  return upload.status !== 'completed' && upload.layout === 'grid';
}

/** Missing chunk indexes from `from` on, ascending, at most `limit` of them. */
export function missingChunks(c: Context, upload: Upload, limit: number, from = 0): Promise<number[]> {
  if (!canMissChunks(upload)) return Promise.resolve([]);
  // Parts in the store (a direct upload, or chunks staged there): the ledger knows which ones are.
  if (upload.multipart !== null) return c.ledger.parts.missing(upload.id, upload.totalChunks, limit, from);
  return c.ledger.missingChunks(upload.id, upload.totalChunks, limit, from);
}

export function missingCount(upload: Upload): number {
  return canMissChunks(upload) ? upload.totalChunks - upload.chunksReceived : 0;
}

/**
 * A completed upload of this owner, ready to be read (or one being post-processed: its file is
 * stored, and its processor reads it); anything else is `upload_not_completed`.
 */
export async function completed(c: Context, owner: string, id: string): Promise<Upload & { location: StoredLocation }> {
  const upload = await owned(c, owner, id);
  // A file in a local store is on the disk of the node that stored it.
  if (c.store.backend === 'local') await requireHere(c, upload);
  if ((upload.status !== 'completed' && upload.status !== 'processing') || upload.location === null) {
    throw new SluiceError('upload_not_completed', `upload ${id} is ${upload.status}`, { upload_status: upload.status });
  }
  return upload as Upload & { location: StoredLocation };
}

/** Reads a completed upload's bytes (or a range of them) from its store. */
export function content(c: Context, upload: Upload & { location: StoredLocation }, range?: { start: number; end: number }): Promise<Download> {
  return c.store.read(upload.location, range, { fileName: upload.fileName, contentType: upload.contentType });
}
