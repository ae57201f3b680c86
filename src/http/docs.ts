import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { inSea } from '../lib/sea.js';

/**
 * The OpenAPI 3 document, generated from the route schemas, at `/openapi.json`, and a browsable
 * page at `/docs`. Registered before the routes so that it sees every one of them. Neither needs
 * credentials.
 */
export const docs = fp(
  async (app: FastifyInstance, { version }: { version: string }) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'sluice',
          version,
          description:
            'Resumable uploads: create a session, PUT chunks at their offsets in any order, finish with a whole-file SHA-256. ' +
            'Errors are RFC 9457 application/problem+json documents with a stable `code`. The tus 1.0 and IETF resumable-upload ' +
            'endpoint at /files/ follows those protocols and is described there.',
        },
        tags: [
          { name: 'uploads', description: 'Upload sessions' },
          { name: 'chunks', description: 'Chunk bodies (application/octet-stream)' },
          { name: 'operations', description: 'Health and metrics' },
        ],
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', description: 'AUTH_TOKENS token or a JWT' },
            signedUrl: { type: 'apiKey', in: 'query', name: 'signature', description: 'From upload_url / chunk_url_template' },
          },
        },
        security: [{ bearer: [] }],
      },
    });
    app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
    // swagger-ui serves its files from its package directory, which a single executable lacks.
    if (inSea()) return;
    await app.register(async (scope) => {
      scope.addHook('onRoute', (route) => {
        route.config = { ...(route.config as object), public: true };
      });
      await scope.register(swaggerUi, { routePrefix: '/docs' });
    });
  },
  { name: 'sluice-docs' },
);
