import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SluiceError } from '../../errors.js';
import type { FileFilter } from '../../ledger/ledger.js';
import type { UrlSigner } from '../../http/signed-url.js';
import type { UrlOptions } from '../../http/urls.js';
import type { UploadService } from '../../service/upload-service.js';
import { decodeCursor, encodeCursor, presentUpload, withDownloadLink } from './present.js';
import { IdParams, Problem, UploadSummary } from './schemas.js';

export interface FileRouteOptions {
  service: UploadService;
  urls: UrlOptions;
  signer: UrlSigner;
  signedUrlTtlMs: number;
  now: () => number;
}

/** The fixed parameters of GET /v1/files; `metadata.<key>=<value>` ones are read beside them. */
const FIXED = new Set(['limit', 'cursor', 'content_type', 'created_after', 'created_before']);

/** GET /v1/files's query, as the ledger's filter; anything it does not know is a 400. */
function fileFilter(query: Record<string, unknown>): { filter: FileFilter; limit: number; after: { createdAt: number; id: string } | undefined } {
  const filter: FileFilter = {};
  const metadata: [string, string][] = [];
  const time = (name: string, raw: unknown): number => {
    const ms = typeof raw === 'string' ? Date.parse(raw) : Number.NaN;
    if (!Number.isFinite(ms)) throw new SluiceError('invalid_request', `${name} must be an ISO 8601 date-time`);
    return ms;
  };
  for (const [name, raw] of Object.entries(query)) {
    if (typeof raw !== 'string') throw new SluiceError('invalid_request', `${name} is given more than once`);
    if (name.startsWith('metadata.') && name.length > 'metadata.'.length) metadata.push([name.slice('metadata.'.length), raw]);
    else if (!FIXED.has(name))
      throw new SluiceError('invalid_request', `unknown parameter ${name}; filters are content_type, created_after, created_before and metadata.<key>`);
  }
  if (metadata.length > 10) throw new SluiceError('invalid_request', 'at most 10 metadata filters');
  if (metadata.length > 0) filter.metadata = metadata;
  if (typeof query.content_type === 'string') filter.contentType = query.content_type.toLowerCase();
  if (query.created_after !== undefined) filter.createdAfter = time('created_after', query.created_after);
  if (query.created_before !== undefined) filter.createdBefore = time('created_before', query.created_before);
  const limit = query.limit === undefined ? 100 : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new SluiceError('invalid_request', 'limit must be a whole number from 1 to 1000');
  const after = typeof query.cursor === 'string' ? decodeCursor(query.cursor) : undefined;
  if (query.cursor !== undefined && !after) throw new SluiceError('invalid_request', 'cursor is not one this server gave');
  return { filter, limit, after };
}

const FilePatch = Type.Object(
  {
    file_name: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    content_type: Type.Optional(Type.String({ maxLength: 255, pattern: '^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\\s*;.*)?$' })),
    metadata: Type.Optional(Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 4096 }), { maxProperties: 100 })),
  },
  { additionalProperties: false, minProperties: 1 },
);

/** `/v1/files`: completed uploads as files. */
export const fileRoutes: FastifyPluginAsyncTypebox<FileRouteOptions> = async (app, opts) => {
  const { service } = opts;
  const withLink = withDownloadLink(opts);
  app.get(
    '/v1/files',
    {
      schema: {
        tags: ['files'],
        summary: 'Your stored files, newest first: filter by content_type (image/* too), created_after/created_before and metadata.<key>=<value>',
        querystring: Type.Object(
          {
            limit: Type.Optional(Type.String({ description: '1 to 1000 (default 100)' })),
            cursor: Type.Optional(Type.String({ description: 'next_cursor of the page before' })),
            content_type: Type.Optional(Type.String()),
            created_after: Type.Optional(Type.String({ format: 'date-time' })),
            created_before: Type.Optional(Type.String({ format: 'date-time' })),
          },
          { additionalProperties: true },
        ),
        response: { 200: Type.Object({ files: Type.Array(UploadSummary), next_cursor: Type.Union([Type.String(), Type.Null()]) }), 400: Problem },
      },
    },
    async (request) => {
      const { filter, limit, after } = fileFilter(request.query as Record<string, unknown>);
      const rows = await service.listFiles(request.owner, filter, limit + 1, after);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return { files: page.map((u) => withLink(request, u)), next_cursor: rows.length > limit && last ? encodeCursor(last) : null };
    },
  );

  app.get(
    '/v1/files/:id',
    { schema: { tags: ['files'], summary: 'A stored file', params: IdParams, response: { 200: UploadSummary, 404: Problem, 409: Problem } } },
    async (request) => withLink(request, await service.completed(request.owner, request.params.id)),
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
