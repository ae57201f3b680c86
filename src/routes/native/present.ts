import type { FastifyRequest } from 'fastify';
import type { Upload } from '../../ledger/ledger.js';
import type { UrlSigner } from '../../http/signed-url.js';
import { absoluteUrl, type UrlOptions } from '../../http/urls.js';

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The JSON shape of an upload in the native API (snake_case, ISO times). A grid upload (chunks at
 * offsets) shows its grid; a stream upload (tus, IETF: bytes appended at the end) has none, only
 * an offset of a length - which it may not know yet - and, when composed, its parts.
 */
export function presentUpload(u: Upload) {
  // A processing upload's file is stored: every byte is in.
  const done = u.status === 'completed' || u.status === 'processing';
  const grid =
    u.layout === 'grid'
      ? { chunk_size: u.chunkSize, total_chunks: u.totalChunks, chunks_received: done ? u.totalChunks : u.chunksReceived }
      : { ...(u.parts !== null && { part_uploads: u.parts }) };
  return {
    id: u.id,
    file_name: u.fileName,
    layout: u.layout,
    protocol: u.protocol,
    transfer: u.transfer,
    ...(!u.lengthDeferred && { size: u.size }),
    ...grid,
    status: u.status,
    content_type: u.contentType,
    metadata: u.metadata,
    bytes_received: done ? u.size : u.bytesReceived,
    progress: done ? 1 : u.size === 0 || u.lengthDeferred ? 0 : u.bytesReceived / u.size,
    created_at: iso(u.createdAt),
    expires_at: iso(u.expiresAt),
    ...(u.completedAt !== null && { completed_at: iso(u.completedAt) }),
    ...((u.sha256 ?? u.expectedSha256) !== null && { sha256: (u.sha256 ?? u.expectedSha256) as string }),
    ...(u.location !== null && { location: u.location }),
    ...(u.failure !== null && { failure: u.failure }),
    ...(u.processing !== null && { processing: u.processing }),
  };
}

/** Opaque keyset cursor for listing: the last row's (created_at, id). */
export function encodeCursor(u: Upload): string {
  return Buffer.from(JSON.stringify([u.createdAt, u.id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: number; id: string } | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string') {
      return { createdAt: value[0] as number, id: value[1] };
    }
  } catch {
    // fall through: not a cursor we made
  }
  return undefined;
}

/**
 * A completed upload as shown with its signed download link (`download_url`), for a browser, which
 * cannot send a token with a link.
 */
export function withDownloadLink(opts: { urls: UrlOptions; signer: UrlSigner; signedUrlTtlMs: number; now: () => number }) {
  return (request: FastifyRequest, upload: Upload) => {
    const shown = presentUpload(upload);
    if (upload.status !== 'completed') return shown;
    const expiresAt = Math.floor((opts.now() + opts.signedUrlTtlMs) / 1000);
    const link = `${absoluteUrl(request, opts.urls, `/v1/uploads/${upload.id}/content`)}?${opts.signer.query(upload.id, expiresAt, 'download')}`;
    return { ...shown, download_url: link };
  };
}
