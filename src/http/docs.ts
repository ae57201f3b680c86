import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { inSea } from '../lib/sea.js';

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
 * page at `/docs`. Neither needs credentials.
 *
 * Both are built on first use, not at start-up: @fastify/swagger, swagger-ui and the YAML library
 * they bring cost an idle server about 2 MiB of RSS (64-65 -> 62.4 MiB, BENCHMARKS.md item 10) for
 * pages few requests ever ask for. The routes are recorded as they are added (this plugin is registered before
 * them); the first request for the documents replays them, schemas only, into a private Fastify
 * instance that carries the two plugins, and every docs request is then handed to that instance.
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
    // swagger-ui serves its files from its package directory, which a single executable lacks.
    if (inSea()) return;
    // Handed over whole: the docs server answers on the raw socket (this app's onSend hooks, such
    // as X-Request-ID, do not run for these pages).
    const forward = async (request: FastifyRequest, reply: FastifyReply) => {
      const inner = await docsServer();
      reply.hijack();
      inner.routing(request.raw, reply.raw);
    };
    for (const url of ['/docs', '/docs/*']) {
      app.route({ method: ['GET', 'HEAD'], url, config: { public: true }, schema: { hide: true }, exposeHeadRoute: false, handler: forward });
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
  if (!inSea()) void inner.register((await import('@fastify/swagger-ui')).default, { routePrefix: '/docs' });
  await inner.ready();
  app.log.debug({ event: 'docs_built', routes: routes.length }, 'API documents built');
  return inner;
}
