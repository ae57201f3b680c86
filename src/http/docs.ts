import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import fp from 'fastify-plugin';
import { packageRoot } from '../lib/package-root.js';
import { inSea, seaAsset } from '../lib/sea.js';

/**
 * The /docs page's files: sluice's own page (web/) around Swagger UI's bundle (swagger-ui-dist).
 * In the single executable all of them are assets of the binary.
 */
const DOCS_FILES: Record<string, { name: string; from: 'web' | 'swagger'; type: string }> = {
  '/docs': { name: 'docs.html', from: 'web', type: 'text/html; charset=utf-8' },
  '/docs/docs.js': { name: 'docs.js', from: 'web', type: 'text/javascript; charset=utf-8' },
  '/docs/docs.css': { name: 'docs.css', from: 'web', type: 'text/css; charset=utf-8' },
  '/docs/swagger-ui.css': { name: 'swagger-ui.css', from: 'swagger', type: 'text/css; charset=utf-8' },
  '/docs/swagger-ui-bundle.js': { name: 'swagger-ui-bundle.js', from: 'swagger', type: 'text/javascript; charset=utf-8' },
};

function readDocsFile(name: string, from: 'web' | 'swagger'): Buffer | undefined {
  try {
    if (inSea()) return seaAsset(name);
    const dir = from === 'web' ? path.join(packageRoot ?? '.', 'web') : path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
    return readFileSync(path.join(dir, name));
  } catch {
    return undefined;
  }
}

const OPENAPI = (version: string): FastifyDynamicSwaggerOptions['openapi'] => ({
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
    { name: 'direct', description: 'Direct uploads: part URLs for the store (S3) or this server, and the parts sent' },
    { name: 'files', description: 'Completed uploads as files' },
    { name: 'events', description: 'Events for applications, post-processing answers, staged bytes for pre-publish hooks' },
    { name: 'operations', description: 'Health and metrics' },
  ],
  components: {
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'AUTH_TOKENS token or a JWT' },
      signedUrl: { type: 'apiKey', in: 'query', name: 'signature', description: 'From upload_url / chunk_url_template' },
    },
  },
  security: [{ bearer: [] }],
});

/**
 * The OpenAPI 3 document, generated from the route schemas, at `/openapi.json`, and a browsable
 * page at `/docs` (sluice's page around Swagger UI). Neither needs credentials; both are in the
 * single executable too.
 *
 * The document is built on first use, not at start-up: @fastify/swagger and the YAML library it
 * brings cost an idle server RSS (BENCHMARKS.md item 10) for a page few requests ever ask for.
 * The routes are recorded as they are added (this plugin is registered before them); the first
 * request for the document replays them, schemas only, into a private Fastify instance that
 * carries @fastify/swagger.
 */
export const docs = fp(
  async (app: FastifyInstance, { version }: { version: string }) => {
    const routes: RouteOptions[] = [];
    app.addHook('onRoute', (route) => {
      // Hidden routes (this plugin's own among them) are left out of the document anyway.
      if ((route.schema as { hide?: boolean } | undefined)?.hide !== true) routes.push(route);
    });
    let server: Promise<FastifyInstance> | undefined;
    const docsServer = () => {
      server ??= buildDocsServer(app, routes, version).catch((err: unknown) => {
        server = undefined; // a failed build (say, a missing package) is tried again next time
        throw err;
      });
      return server;
    };
    app.addHook('onClose', async () => {
      if (server) await (await server.catch(() => undefined))?.close();
    });
    app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => (await docsServer()).swagger());
    // The page and Swagger UI's files, read on first use (most servers never serve them).
    const cache = new Map<string, Buffer | undefined>();
    for (const [url, file] of Object.entries(DOCS_FILES)) {
      app.route({
        method: ['GET', 'HEAD'],
        url,
        config: { public: true },
        schema: { hide: true },
        exposeHeadRoute: false,
        handler: async (_request: FastifyRequest, reply: FastifyReply) => {
          if (!cache.has(url)) cache.set(url, readDocsFile(file.name, file.from));
          const body = cache.get(url);
          if (!body) return reply.code(404).type('text/plain').send(`${file.name} is missing from this build`);
          return reply
            .type(file.type)
            .header('cache-control', 'public, max-age=3600')
            .header('x-content-type-options', 'nosniff')
            .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
            .send(body);
        },
      });
    }
  },
  { name: 'sluice-docs' },
);

async function buildDocsServer(app: FastifyInstance, routes: RouteOptions[], version: string): Promise<FastifyInstance> {
  const [{ default: Fastify }, { default: swagger }] = await Promise.all([import('fastify'), import('@fastify/swagger')]);
  const inner = Fastify({ logger: false, routerOptions: { ignoreTrailingSlash: true } });
  // The replayed routes never run: their schemas are read, not compiled.
  inner.setValidatorCompiler(() => () => true);
  inner.setSerializerCompiler(() => (data) => JSON.stringify(data));
  // Plugins load in order when ready() runs: swagger first, so that its onRoute hook sees the routes.
  void inner.register(swagger, { openapi: OPENAPI(version) });
  void inner.register(async (scope) => {
    for (const route of routes) {
      // As recorded: the HEAD routes Fastify added to GET ones are among them.
      scope.route({ method: route.method, url: route.url, schema: route.schema, exposeHeadRoute: false, handler: async () => undefined });
    }
  });
  await inner.ready();
  app.log.debug({ event: 'docs_built', routes: routes.length }, 'API documents built');
  return inner;
}
