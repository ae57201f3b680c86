import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { attachment } from '../../lib/disposition.js';
import type { UploadService } from '../../service/upload-service.js';
import { sendDownload } from '../download.js';
import { Binary, IdParams, Problem } from './schemas.js';

/** `GET /v1/uploads/:id/content`: the completed file, as an attachment (see download.ts). */
export const contentRoutes: FastifyPluginAsyncTypebox<{ service: UploadService }> = async (app, { service }) => {
  app.get(
    '/v1/uploads/:id/content',
    {
      // A download link (`download_url` in the status) stands in for the token.
      config: { signedUrl: 'download' },
      schema: {
        tags: ['uploads'],
        summary: 'Download a completed upload',
        params: IdParams,
        response: { 200: Binary, 206: Binary, 404: Problem, 409: Problem, 416: Problem },
      },
    },
    async (request, reply) => {
      const upload = await service.completed(request.owner, request.params.id);
      return sendDownload(request, reply, service, upload, attachment(upload.fileName));
    },
  );
};
