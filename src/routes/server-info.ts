import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../config.js';

const ServerInfo = Type.Object({
  name: Type.Literal('sluice'),
  version: Type.String(),
  /** Whether requests need a bearer token (the page then asks for one). */
  auth_required: Type.Boolean(),
  max_upload_size: Type.Integer(),
  /** Media types accepted (ALLOWED_TYPES), or null for any. */
  allowed_types: Type.Union([Type.Array(Type.String()), Type.Null()]),
  tus_endpoint: Type.String(),
  /** `store`: direct uploads send their parts straight to the bucket; `server`: to this server's part URLs. */
  direct_uploads: Type.Union([Type.Literal('store'), Type.Literal('server')]),
  /** The part size direct uploads use by default (grown so that a file needs at most 10,000 parts). */
  part_size: Type.Integer(),
  chunk_size: Type.Object({ default: Type.Integer(), min: Type.Integer(), max: Type.Integer() }),
});

/**
 * `GET /v1/server`: what a client needs to know before its first upload - whether it needs a
 * token, the limits it will be held to, and how direct uploads travel. Public, like /healthz.
 */
export const serverInfoRoutes: FastifyPluginAsyncTypebox<{ config: Config; authRequired: boolean }> = async (app, { config, authRequired }) => {
  const info = {
    name: 'sluice' as const,
    version: config.version,
    auth_required: authRequired,
    max_upload_size: config.maxUploadSize,
    allowed_types: config.allowedTypes ?? null,
    tus_endpoint: config.tusPath,
    direct_uploads: config.storage.backend === 's3' ? ('store' as const) : ('server' as const),
    part_size: config.storage.backend === 's3' ? config.storage.partSize : config.defaultChunkSize,
    chunk_size: { default: config.defaultChunkSize, min: config.minChunkSize, max: config.maxChunkSize },
  };
  app.get(
    '/v1/server',
    {
      config: { public: true },
      schema: { tags: ['uploads'], summary: 'What this server accepts (limits, authentication, direct uploads)', response: { 200: ServerInfo } },
    },
    async () => info,
  );
};
