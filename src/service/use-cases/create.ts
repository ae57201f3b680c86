import { randomUUID } from 'node:crypto';
import { SluiceError } from '../../errors.js';
import type { NewUpload, Upload } from '../../ledger/ledger.js';
import { reserveMargin } from '../../storage/disk-space.js';
import { totalChunks } from '../chunk-grid.js';
import type { ComposeInput, CreateUploadInput, StreamUploadInput } from '../upload-types.js';
import { checkMetadata, checkNew, checkText, plainName, quotaExceeded, requireHere, type Context } from './context.js';
import { publishIfComplete } from './finish.js';
import { createStaged, createStagedStream } from './staged.js';

/** Creates a grid upload: fixed-size chunks, sent in any order. */
export async function createGrid(c: Context, owner: string, input: CreateUploadInput): Promise<Upload> {
  const { config } = c;
  checkNew(c, input.fileName, input.size);
  checkMetadata(input.metadata);
  if (input.contentType !== undefined) checkText('content_type', input.contentType);
  const chunkSize = input.chunkSize ?? config.defaultChunkSize;
  if (chunkSize < config.minChunkSize || chunkSize > config.maxChunkSize) {
    throw new SluiceError('chunk_size_out_of_range', `chunk_size must be between ${config.minChunkSize} and ${config.maxChunkSize} bytes`, {
      min_chunk_size: config.minChunkSize,
      max_chunk_size: config.maxChunkSize,
    });
  }
  const chunks = totalChunks(input.size, chunkSize);
  if (chunks > config.maxChunks) {
    throw new SluiceError('too_many_chunks', `${chunks} chunks of ${chunkSize} bytes exceed the limit of ${config.maxChunks}; use a larger chunk_size`, {
      max_chunks: config.maxChunks,
    });
  }
  const row: NewUpload = {
    ...fresh(c, owner),
    layout: 'grid',
    protocol: 'native',
    fileName: input.fileName,
    contentType: input.contentType ?? 'application/octet-stream',
    metadata: input.metadata ?? {},
    size: input.size,
    chunkSize,
    totalChunks: chunks,
    expectedSha256: input.sha256 ?? null,
  };
  // STAGING_BACKEND=s3: the chunks become the parts of a multipart upload; no staging file.
  if (c.config.stagingBackend === 's3' && input.size > 0) return createStaged(c, row);
  return open(c, row);
}

/**
 * Creates a stream upload: bytes appended in order. `size` undefined defers the length: the
 * staging file then grows as bytes arrive.
 */
export async function createStream(c: Context, owner: string, input: StreamUploadInput): Promise<Upload> {
  const row = stream(c, owner, input, input.size ?? 0);
  checkNew(c, row.fileName, input.size);
  checkMetadata(input.metadata);
  const full = { ...row, lengthDeferred: input.size === undefined, isPart: input.isPart };
  // STAGING_BACKEND=s3: appended bytes go to the store part by part. (The parts of a tus
  // concatenation stay on local staging: a composed upload is published from their files.)
  if (c.config.stagingBackend === 's3' && input.isPart !== true && input.size !== 0) return createStagedStream(c, full);
  return open(c, full);
}

/**
 * Creates a composed upload: the parts' bytes in order. It has no bytes (nor staging file) of its
 * own and is published, straight from the parts' files, once they are all complete.
 */
export async function createComposed(c: Context, owner: string, partIds: string[], input: ComposeInput): Promise<Upload> {
  if (input.fileName !== undefined) checkNew(c, input.fileName, undefined);
  checkMetadata(input.metadata);
  if (partIds.length === 0) throw new SluiceError('invalid_request', 'a composed upload needs at least one part');
  if (new Set(partIds).size !== partIds.length) throw new SluiceError('invalid_request', 'a part appears twice');
  let size = 0;
  for (const partId of partIds) {
    const part = await c.ledger.get(partId);
    if (!part || part.owner !== owner) throw new SluiceError('invalid_request', `no part upload ${partId}`);
    if (!part.isPart) throw new SluiceError('invalid_request', `upload ${partId} is not a part upload`);
    if (part.status !== 'uploading') throw new SluiceError('invalid_request', `part upload ${partId} is ${part.status}`);
    if (part.lengthDeferred) throw new SluiceError('invalid_request', `part upload ${partId} has no length yet`);
    // Its bytes are read from the parts' staging files: they must all be on this node's disk.
    await requireHere(c, part);
    size += part.size;
  }
  const row = stream(c, owner, input, size);
  checkNew(c, row.fileName, size);
  const upload = await insert(c, { ...row, parts: partIds });
  // Its parts may all be complete already (or become so later: see append).
  return publishIfComplete(c, upload.id);
}

/** A stream upload's row: no grid (one "chunk" as long as the file), no declared digest. */
function stream(c: Context, owner: string, input: ComposeInput, size: number): NewUpload {
  const { protocol, contentType, metadata, echo } = input;
  const row = fresh(c, owner);
  return {
    ...row,
    layout: 'stream',
    protocol,
    fileName: input.fileName ?? `upload-${row.id}`,
    contentType,
    metadata,
    echo,
    size,
    chunkSize: Math.max(size, 1),
    totalChunks: 0,
    expectedSha256: null,
  };
}

export function fresh(c: Context, owner: string) {
  const now = c.now();
  // On a shared ledger the upload is this node's (its bytes, unless staged in the store, are on its disk).
  return { id: randomUUID(), owner, createdAt: now, expiresAt: now + c.config.uploadTtlMs, node: c.config.node?.id ?? null };
}

/** The staging file first (sized and durable), then the ledger row; the file goes if the row does not come. */
async function open(c: Context, u: NewUpload): Promise<Upload> {
  await c.staging.create(u.id, u.size);
  try {
    return await insert(c, u);
  } catch (err) {
    await c.staging.remove(u.id);
    throw err;
  }
}

/**
 * The pre-create hook's say (HOOK_PRE_CREATE_URL), for every protocol: it may refuse the upload
 * (rejected_by_hook) or rename it and replace its metadata, which must still follow the rules.
 */
async function askPreCreate(c: Context, u: NewUpload): Promise<NewUpload> {
  const changes = await c.hooks.preCreate(u);
  const fileName = changes.fileName ?? u.fileName;
  const metadata = changes.metadata ?? u.metadata;
  try {
    checkText('file_name', fileName);
    checkMetadata(metadata);
  } catch {
    throw new SluiceError('hook_unavailable', "the pre-create hook's file_name or metadata is not valid Unicode");
  }
  if (!plainName(fileName)) throw new SluiceError('hook_unavailable', "the pre-create hook's file_name is not a plain file name");
  return { ...u, fileName, metadata };
}

/**
 * Inserts a new upload within its owner's limits (MAX_ACTIVE_UPLOADS_PER_USER, USER_QUOTA) and
 * within the disk's free space (DISK_RESERVE kept free), before any byte is accepted.
 */
export async function insert(c: Context, given: NewUpload, opts: { localDisk: boolean } = { localDisk: true }): Promise<Upload> {
  const u = await askPreCreate(c, given);
  // A local store writes a composed upload's parts into a new file: that copy needs room too.
  let disk: { free: number; margin: number; copies: boolean } | undefined;
  if (opts.localDisk) {
    const { free, total } = await c.statfs(c.config.dataDir);
    disk = { free, margin: reserveMargin(total, c.config.diskReserve), copies: c.store.backend === 'local' };
  }
  const result = await c.ledger.create(u, { maxActive: c.config.maxActiveUploadsPerUser, quota: c.config.userQuota }, disk);
  switch (result.kind) {
    case 'created':
      c.emit({ type: 'created', protocol: result.upload.protocol });
      return result.upload;
    case 'no_space':
      throw new SluiceError(
        'insufficient_storage',
        `${u.size} bytes do not fit: ${result.free} free, ${result.outstanding} promised to unfinished uploads, ${disk?.margin ?? 0} kept in reserve`,
      );
    case 'too_many':
      throw new SluiceError('too_many_uploads', `${result.active} unfinished uploads: finish or abort some first`, {
        max_active_uploads: c.config.maxActiveUploadsPerUser,
      });
    case 'over_quota':
      throw quotaExceeded(c, result.reserved);
    case 'part_in_use':
      throw new SluiceError('part_in_use', `upload ${result.part} is already a part of another composed upload`, { part: result.part });
  }
}
