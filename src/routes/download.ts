import type { FastifyReply, FastifyRequest } from 'fastify';
import parseRange from 'range-parser';
import { SluiceError } from '../errors.js';
import type { StoredLocation, Upload } from '../ledger/ledger.js';
import type { UploadService } from '../service/upload-service.js';

/**
 * Sends a completed upload's bytes from its store, with single-range `Range` support (RFC 9110
 * §14); several ranges at once are answered with the whole file, which the RFC allows. Used by the
 * native content route and by GET on a tus upload URL. The file name only ever appears in the
 * encoded `Content-Disposition` the caller gives.
 */
export async function sendDownload(
  request: FastifyRequest,
  reply: FastifyReply,
  service: UploadService,
  upload: Upload & { location: StoredLocation },
  disposition: string,
): Promise<FastifyReply> {
  let range: { start: number; end: number } | undefined;
  const header = request.headers.range;
  if (header !== undefined && upload.size > 0) {
    const parsed = parseRange(upload.size, header, { combine: true });
    if (parsed === -1) {
      reply.header('content-range', `bytes */${upload.size}`);
      throw new SluiceError('range_not_satisfiable', `the file is ${upload.size} bytes`);
    }
    if (Array.isArray(parsed) && parsed.type === 'bytes' && parsed.length === 1) range = parsed[0];
  }
  const download = await service.content(upload, range);
  if (download.kind === 'redirect') return reply.redirect(download.url, 302);

  reply
    .header('accept-ranges', 'bytes')
    .header('content-type', upload.contentType)
    .header('content-disposition', disposition)
    .header('x-content-type-options', 'nosniff')
    .header('etag', `"${upload.sha256}"`)
    .header('last-modified', new Date(upload.completedAt ?? upload.createdAt).toUTCString());
  if (range) {
    reply
      .code(206)
      .header('content-range', `bytes ${range.start}-${range.end}/${upload.size}`)
      .header('content-length', range.end - range.start + 1);
  } else {
    reply.header('content-length', upload.size);
  }
  return reply.send(download.stream);
}
