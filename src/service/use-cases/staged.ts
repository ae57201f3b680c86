import { SluiceError } from '../../errors.js';
import type { NewUpload, Upload } from '../../ledger/ledger.js';
import type { Context } from './context.js';
import { insert } from './create.js';
import { requireDirect } from './direct.js';
import { partSizeFor } from '../../storage/part-size.js';

/** The store's multipart limits: parts of 5 MiB to 5 GiB (the last one may be smaller), at most 10,000. */
export const MIN_PART = 5 * 1024 * 1024;
export const MAX_PART = 5 * 1024 ** 3;
export const MAX_PARTS = 10_000;

/**
 * A stream upload staged in the store: cut into parts of the S3 part size (grown so that the
 * largest file it may become needs at most 10,000), the bytes past the last whole part kept in a
 * tail object (append-to-store.ts). Nothing is reserved on the local disk.
 */
export async function createStagedStream(c: Context, row: NewUpload): Promise<Upload> {
  const direct = requireDirect(c);
  const partSize = partSizeFor(
    row.lengthDeferred ? c.config.maxUploadSize : row.size,
    c.config.storage.backend === 's3' ? c.config.storage.partSize : MIN_PART,
  );
  const multipart = await direct.begin(row.id);
  try {
    return await insert(c, { ...row, chunkSize: partSize, totalChunks: 0, multipart }, { localDisk: false });
  } catch (err) {
    await direct.discard(multipart).catch((e: unknown) => c.log.warn({ err: e, event: 'direct_discard_failed' }, 'aborting the multipart upload failed'));
    throw err;
  }
}

/** Refuses a grid that cannot be a multipart upload's parts. */
export function checkPartGrid(partSize: number, parts: number): void {
  if ((parts > 1 && partSize < MIN_PART) || partSize > MAX_PART) {
    throw new SluiceError('chunk_size_out_of_range', `a part is ${MIN_PART} to ${MAX_PART} bytes (only the last one may be smaller)`, {
      min_chunk_size: MIN_PART,
      max_chunk_size: MAX_PART,
    });
  }
  if (parts > MAX_PARTS) {
    throw new SluiceError('too_many_chunks', `${parts} parts of ${partSize} bytes exceed the store's ${MAX_PARTS}; use a larger chunk_size`, {
      max_chunks: MAX_PARTS,
    });
  }
}

/**
 * A grid upload staged in the store (STAGING_BACKEND=s3): its multipart upload begins now, each
 * chunk becomes its part `index + 1` (receive-to-store.ts), and finish assembles and verifies them
 * as for a direct upload. Nothing is reserved on the local disk.
 */
export async function createStaged(c: Context, row: NewUpload): Promise<Upload> {
  checkPartGrid(row.chunkSize, row.totalChunks);
  const direct = requireDirect(c);
  const multipart = await direct.begin(row.id);
  try {
    return await insert(c, { ...row, multipart }, { localDisk: false });
  } catch (err) {
    await direct.discard(multipart).catch((e: unknown) => c.log.warn({ err: e, event: 'direct_discard_failed' }, 'aborting the multipart upload failed'));
    throw err;
  }
}
