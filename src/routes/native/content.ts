import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { attachment } from '../../lib/disposition.js';
import type { UploadService } from '../../service/upload-service.js';
import { sendDownload } from '../download.js';
import { Binary, IdParams, Problem } from './schemas.js';

/** `GET /v1/uploads/:id/content`: the completed file, as an attachment (see download.ts). */
export const contentRoutes: FastifyPluginAsyncTypebox<{ service: UploadService }> = async (app, { service }) => {
  // The same file under both names: an upload's content, and a file's (GET /v1/files lists them).
  for (const [url, tag] of [
    ['/v1/uploads/:id/content', 'uploads'],
    ['/v1/files/:id/content', 'files'],
  ] as const) {
    app.get(
      url,
      {
        // A download link (`download_url` in the status) stands in for the token.
        config: { signedUrl: 'download' },
        schema: {
          tags: [tag],
          summary: 'Download a completed upload (Range requests; with S3, a 302 to a presigned URL)',
          params: IdParams,
          response: { 200: Binary, 206: Binary, 404: Problem, 409: Problem, 416: Problem },
        },
      },
      async (request, reply) => {
        const upload = await service.completed(request.owner, request.params.id);
        return sendDownload(request, reply, service, upload, attachment(upload.fileName));
      },
    );
  }
};
