import cors from '@fastify/cors';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { openCore, type Core, type CoreOverrides } from './core.js';
import { registerErrorHandler } from './http/error-handler.js';
import { registerIdentity } from './http/identity.js';
import { healthRoutes } from './routes/health.js';
import { chunkRoutes } from './routes/native/chunks.js';
import { contentRoutes } from './routes/native/content.js';
import { uploadRoutes } from './routes/native/uploads.js';

export interface AppOverrides extends CoreOverrides {
  /** A logger switch or pino options; defaults to the configured level on stdout. */
  logger?: boolean | Record<string, unknown>;
}

export interface Sluice extends Core {
  app: FastifyInstance;
}

const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

/** Builds the whole server from a validated config; nothing here reads the environment. */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<Sluice> {
  const app = Fastify({
    logger: overrides.logger ?? { level: config.logLevel },
    // A socket that is silent this long is closed: a dead or slow-loris client cannot hold a
    // chunk (or a socket) forever. Request bodies of any length are fine while bytes keep flowing.
    connectionTimeout: config.idleTimeoutMs,
    requestTimeout: 0,
    routerOptions: { ignoreTrailingSlash: true },
    // Strict JSON: unknown fields are refused (not silently dropped) and types are not coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const core = await openCore(config, app.log, overrides);
  const { db, service, store } = core;
  const recovered = service.recover();
  if (recovered > 0) app.log.warn({ count: recovered, event: 'finish_recovered' }, 'uploads interrupted while finishing are retryable again');

  registerErrorHandler(app);
  registerIdentity(app);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  await app.register(cors, { origin: '*', exposedHeaders: ['Location', 'X-Request-ID', 'Content-Range', 'Content-Disposition'] });

  await app.register(healthRoutes, { db, dataDir: config.dataDir, store });
  await app.register(uploadRoutes, { service, publicUrl: config.publicUrl });
  await app.register(chunkRoutes, { service });
  await app.register(contentRoutes, { service });

  // The sweeper: expires uploads whose time is up and removes their staging bytes.
  const sweep = async () => {
    try {
      const n = await service.expireDue();
      if (n > 0) app.log.info({ count: n, event: 'sweep' }, 'expired uploads removed');
    } catch (err) {
      app.log.error({ err, event: 'sweep_failed' }, 'expiry sweep failed');
    }
  };
  const sweeper = setInterval(() => void sweep(), config.sweepIntervalMs);
  sweeper.unref();
  app.addHook('onReady', sweep);
  // Node closes idle keep-alive sockets once, when close() starts. A streamed response that ends a
  // tick later leaves its socket open until the keep-alive timeout, holding shutdown for a minute;
  // so keep closing idle sockets until the server is really closed.
  app.addHook('preClose', async () => {
    const timer = setInterval(() => app.server.closeIdleConnections(), 100);
    timer.unref();
    app.server.once('close', () => clearInterval(timer));
  });
  app.addHook('onClose', async () => {
    clearInterval(sweeper);
    db.close();
  });

  return { app, ...core };
}
