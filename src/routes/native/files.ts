import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { UploadService } from '../../service/upload-service.js';
import { IdParams, Problem } from './schemas.js';

/** `/v1/files`: completed uploads as files. */
export const fileRoutes: FastifyPluginAsyncTypebox<{ service: UploadService }> = async (app, { service }) => {
  app.delete(
    '/v1/files/:id',
    {
      schema: {
        tags: ['files'],
        summary: 'Delete a file: its stored bytes are removed (an unfinished upload is aborted); deleting it again is a no-op',
        params: IdParams,
        response: { 204: Type.Null(), 404: Problem, 409: Problem },
      },
    },
    async (request, reply) => {
      await service.terminate(request.owner, request.params.id);
      return reply.code(204).send(null);
    },
  );
};
