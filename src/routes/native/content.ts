import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import parseRange from 'range-parser';
import { SluiceError } from '../../errors.js';
import { attachment } from '../../lib/disposition.js';
import type { UploadService } from '../../service/upload-service.js';
import { Binary, IdParams, Problem } from './schemas.js';

/**
 * `GET /v1/uploads/:id/content`: the completed file, streamed from its store, with single-range
 * `Range` support (RFC 9110 §14). Several ranges at once are answered with the whole file, which
 * the RFC allows. The file name only ever appears in an encoded Content-Disposition.
 */
export const contentRoutes: FastifyPluginAsyncTypebox<{ service: UploadService }> = async (app, { service }) => {
  app.get(
    '/v1/uploads/:id/content',
    {
      schema: {
        tags: ['uploads'],
        summary: 'Download a completed upload',
        params: IdParams,
        response: { 200: Binary, 206: Binary, 404: Problem, 409: Problem, 416: Problem },
      },
    },
    async (request, reply) => {
      const upload = await service.completed(request.owner, request.params.id);
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
        .header('content-disposition', attachment(upload.fileName))
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
    },
  );
};
