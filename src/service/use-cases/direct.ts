import { SluiceError } from '../../errors.js';
import type { DirectPart, Upload } from '../../ledger/ledger.js';
import type { PartTarget } from '../../storage/direct-store.js';
import { partSizeFor } from '../../storage/part-size.js';
import { chunkSpan, type Span, totalChunks } from '../chunk-grid.js';
import type { CreateUploadInput } from '../upload-types.js';
import { checkMetadata, checkNew, checkText, notWritable, owned, type Context } from './context.js';
import { fresh, insert } from './create.js';
import { checkPartGrid, MIN_PART } from './staged.js';

const HEX_SHA256 = /^[0-9a-f]{64}$/;

export interface DirectPartView {
  part: DirectPart | undefined;
  /** Where to send it; absent once the upload no longer takes parts. */
  target: PartTarget | undefined;
}

/**
 * Creates a direct upload: the client sends its parts straight to the store (presigned part URLs)
 * and the bytes never pass through this server. The grid is the store's part grid; no staging file
 * is made. `partSha256` (hex, one per part, optional) is signed into each part's URL.
 */
export async function createDirect(c: Context, owner: string, input: CreateUploadInput, partSha256: string[] | undefined): Promise<Upload> {
  const direct = requireDirect(c);
  checkNew(c, input.fileName, input.size);
  checkMetadata(input.metadata);
  if (input.contentType !== undefined) checkText('content_type', input.contentType);
  // A multipart upload has at least one part.
  if (input.size === 0) throw new SluiceError('invalid_request', 'a direct upload has at least one byte; send an empty file through this server');
  const partSize = input.chunkSize ?? partSizeFor(input.size, c.config.storage.backend === 's3' ? c.config.storage.partSize : MIN_PART);
  const parts = totalChunks(input.size, partSize);
  checkPartGrid(partSize, parts);
  if (partSha256 !== undefined && (partSha256.length > parts || partSha256.some((d) => !HEX_SHA256.test(d.toLowerCase())))) {
    throw new SluiceError('invalid_request', `part_sha256 lists at most ${parts} SHA-256s, 64 hexadecimal digits each`);
  }
  const row = fresh(c, owner);
  const multipart = await direct.begin(row.id);
  let upload: Upload;
  try {
    upload = await insert(
      c,
      {
        ...row,
        layout: 'grid',
        protocol: 'native',
        fileName: input.fileName,
        contentType: input.contentType ?? 'application/octet-stream',
        metadata: input.metadata ?? {},
        size: input.size,
        chunkSize: partSize,
        totalChunks: parts,
        expectedSha256: input.sha256 ?? null,
        transfer: 'direct',
        multipart,
      },
      { localDisk: false },
    );
  } catch (err) {
    await direct.discard(multipart).catch((e: unknown) => c.log.warn({ err: e, event: 'direct_discard_failed' }, 'aborting the multipart upload failed'));
    throw err;
  }
  if (partSha256?.length) {
    await c.ledger.parts.declare(
      upload.id,
      partSha256.map((sha256, index) => ({ index, length: partLength(upload, index), sha256: sha256.toLowerCase() })),
    );
  }
  return upload;
}

/** Parts `from`..`from + limit - 1` of a direct upload: what was reported, and fresh URLs to send them. */
export async function directParts(c: Context, upload: Upload, from: number, limit: number): Promise<DirectPartView[]> {
  const direct = requireDirect(c);
  const known = new Map((await c.ledger.parts.list(upload.id, from, limit)).map((p) => [p.index, p]));
  const out: DirectPartView[] = [];
  for (let index = from; index < Math.min(upload.totalChunks, from + limit); index++) {
    const part = known.get(index);
    const target =
      upload.status === 'uploading' && upload.multipart !== null
        ? await direct.partUrl(upload.multipart, index + 1, { sha256: part?.declaredSha256 ?? undefined, expiresInSeconds: urlTtl(c) })
        : undefined;
    out.push({ part, target });
  }
  return out;
}

/** A URL for one part; with `sha256`, the store refuses other bytes for it. */
export async function directPartUrl(c: Context, owner: string, id: string, index: number, sha256: string | undefined): Promise<PartTarget> {
  const upload = await writable(c, owner, id, index);
  if (sha256 !== undefined) {
    if (!HEX_SHA256.test(sha256)) throw new SluiceError('invalid_request', 'sha256 must be 64 hexadecimal digits');
    await c.ledger.parts.declare(id, [{ index, length: partLength(upload, index), sha256 }]);
  }
  const declared = sha256 ?? (await c.ledger.parts.list(id, index, 1)).find((p) => p.index === index)?.declaredSha256 ?? undefined;
  return requireDirect(c).partUrl(upload.multipart as string, index + 1, { sha256: declared, expiresInSeconds: urlTtl(c) });
}

/** Records that the client sent part `index` (its store ETag, and its SHA-256 if it knows it). */
export async function reportPart(c: Context, owner: string, id: string, index: number, etag: string, sha256: string | undefined): Promise<Upload> {
  const upload = await writable(c, owner, id, index);
  if (sha256 !== undefined && !HEX_SHA256.test(sha256)) throw new SluiceError('invalid_request', 'sha256 must be 64 hexadecimal digits');
  const clean = etag.replace(/"/g, '').trim();
  if (clean.length === 0 || clean.length > 200) throw new SluiceError('invalid_request', 'etag is the ETag the store answered for the part');
  const result = await c.ledger.parts.report(id, { index, length: partLength(upload, index), etag: clean, sha256: sha256 ?? null }, c.now());
  if (result.kind === 'not_writable') throw notWritable(result.upload ?? upload);
  return result.upload;
}

async function writable(c: Context, owner: string, id: string, index: number): Promise<Upload> {
  const upload = await owned(c, owner, id);
  if (upload.transfer !== 'direct')
    throw new SluiceError('upload_not_writable', `upload ${id} takes its bytes through this server`, { upload_status: upload.status });
  if (upload.status !== 'uploading') throw notWritable(upload);
  if (!Number.isInteger(index) || index < 0 || index >= upload.totalChunks) {
    throw new SluiceError('invalid_range', `part numbers of this upload are 1 to ${upload.totalChunks}`);
  }
  return upload;
}

export function requireDirect(c: Context) {
  if (!c.direct) throw new SluiceError('invalid_request', 'this server stores files on local disk: direct uploads go to its own part URLs');
  return c.direct;
}

function partLength(upload: Upload, index: number): number {
  return (chunkSpan(upload, index) as Span).length;
}

function urlTtl(c: Context): number {
  return Math.max(1, Math.floor(c.config.directUrlTtlMs / 1000));
}
