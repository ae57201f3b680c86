import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { UploadService } from '../../service/upload-service.js';
import { presentUpload } from './present.js';
import { IdParams, Problem, UploadSummary } from './schemas.js';

const FilePatch = Type.Object(
  {
    file_name: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    content_type: Type.Optional(Type.String({ maxLength: 255, pattern: '^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\\s*;.*)?$' })),
    metadata: Type.Optional(Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 4096 }), { maxProperties: 100 })),
  },
  { additionalProperties: false, minProperties: 1 },
);

/** `/v1/files`: completed uploads as files. */
export const fileRoutes: FastifyPluginAsyncTypebox<{ service: UploadService }> = async (app, { service }) => {
  app.get(
    '/v1/files/:id',
    { schema: { tags: ['files'], summary: 'A stored file', params: IdParams, response: { 200: UploadSummary, 404: Problem, 409: Problem } } },
    async (request) => presentUpload(await service.completed(request.owner, request.params.id)),
  );

  app.patch(
    '/v1/files/:id',
    {
      schema: {
        tags: ['files'],
        summary: "Change a stored file's name, content type or metadata (metadata is replaced as a whole); sends file.updated",
        description:
          'Only the ledger changes: an S3 object keeps the Content-Type and metadata it was stored with; downloads through sluice show the new values.',
        params: IdParams,
        body: FilePatch,
        response: { 200: UploadSummary, 400: Problem, 404: Problem, 409: Problem },
      },
    },
    async (request) => {
      const { file_name, content_type, metadata } = request.body;
      return presentUpload(await service.updateFile(request.owner, request.params.id, { fileName: file_name, contentType: content_type, metadata }));
    },
  );

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
