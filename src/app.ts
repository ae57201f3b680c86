import cors from '@fastify/cors';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Config } from './config.js';
import { openCore, type Core, type CoreOverrides } from './core.js';
import { frameworkErrorRenderer, registerErrorHandler, type ErrorFamily } from './http/error-handler.js';
import { ANONYMOUS, registerIdentity } from './http/identity.js';
import { Authenticator } from './http/authenticator.js';
import { UrlSigner } from './http/signed-url.js';
import { loadSigningKey } from './http/signing-key.js';
import { SluiceError } from './errors.js';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import { healthRoutes } from './routes/health.js';
import { chunkRoutes } from './routes/native/chunks.js';
import { contentRoutes } from './routes/native/content.js';
import { fileRoutes } from './routes/native/files.js';
import { uploadRoutes } from './routes/native/uploads.js';
import { partRoutes } from './routes/native/parts.js';
import { tusErrorRenderer } from './routes/tus/tus-errors.js';
import { tusRoutes } from './routes/tus/tus-routes.js';
import { serverInfoRoutes } from './routes/server-info.js';
import { webRoutes } from './routes/web.js';
import { answerClientError, serverFactory } from './http/server-factory.js';
import { docs } from './http/docs.js';
import { MemoryPressure } from './http/memory-pressure.js';
import { Metrics, metricsRoutes } from './http/metrics.js';
import { ownBaseUrl, wireEvents } from './events/wiring.js';
import { eventRoutes } from './routes/native/events.js';
import type { AddressInfo } from 'node:net';

export interface AppOverrides extends CoreOverrides {
  /** A logger switch or pino options; defaults to the configured level on stdout. */
  logger?: boolean | Record<string, unknown>;
}

export interface Sluice extends Core {
  app: FastifyInstance;
  authenticator: Authenticator;
}

const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Request headers browsers may send: the native API's, tus's and the IETF draft's. */
const CORS_REQUEST_HEADERS = [
  'Authorization',
  'Content-Type',
  'Content-Range',
  'Content-Digest',
  'X-Chunk-Sha256',
  'X-Request-ID',
  'Prefer',
  'Range',
  'X-HTTP-Method-Override',
  'Tus-Resumable',
  'Upload-Length',
  'Upload-Offset',
  'Upload-Metadata',
  'Upload-Defer-Length',
  'Upload-Concat',
  'Upload-Checksum',
  'Upload-Complete',
  'Upload-Draft-Interop-Version',
];

/** Response headers browser code may read. */
const CORS_EXPOSED_HEADERS = [
  'Location',
  'X-Request-ID',
  'Content-Range',
  'Content-Disposition',
  'Preference-Applied',
  'Retry-After',
  'Upload-Offset',
  'Upload-Length',
  'Upload-Defer-Length',
  'Upload-Metadata',
  'Upload-Expires',
  'Upload-Concat',
  'Tus-Version',
  'Tus-Resumable',
  'Tus-Max-Size',
  'Tus-Extension',
  'Tus-Checksum-Algorithm',
  'Upload-Complete',
  'Upload-Limit',
  'Upload-Draft-Interop-Version',
];

/** Builds the whole server from a validated config; nothing here reads the environment. */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<Sluice> {
  // tus and IETF requests get the protocol's plain-text errors, wherever the error is raised.
  const underTus = (url: string) => {
    const path = url.split('?')[0] as string;
    return path === config.tusPath || path.startsWith(`${config.tusPath}/`);
  };
  const renderTusError = tusErrorRenderer(config.maxUploadSize);
  const tusFamily: ErrorFamily = { matches: (request) => underTus(request.url), render: renderTusError };
  const app = Fastify({
    logger: overrides.logger ?? { level: config.logLevel },
    // Timeouts (idle sockets closed, bodies unbounded in time) are set on the server it creates.
    serverFactory: serverFactory(config),
    trustProxy: config.trustProxy === false ? false : config.trustProxy === true ? true : config.trustProxy.join(','),
    routerOptions: { ignoreTrailingSlash: true },
    // Strict JSON: unknown fields are refused (not silently dropped) and types are not coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } },
    // Errors raised while routing (a URL too long, a malformed URL) get the same problem documents.
    frameworkErrors: frameworkErrorRenderer(tusFamily),
    clientErrorHandler: answerClientError,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const metrics = new Metrics();
  // Links sent outside a request (to hooks and webhooks) are signed, and absolute on this server.
  let signer: UrlSigner | undefined;
  const wired = wireEvents(
    config,
    app.log,
    () => ownBaseUrl(config.publicUrl, app.server.address() as AddressInfo | null),
    () => signer as UrlSigner,
  );
  const core = await openCore(config, app.log, { ...overrides, events: metrics.record, ...(wired.hooks && { hooks: wired.hooks }) });
  const { ledger, service, store } = core;
  const report = await service.reconcile();
  if (Object.values(report).some((n) => n > 0)) app.log.warn({ ...report, event: 'reconciled' }, 'start-up reconciliation changed state');

  // RFC 9112 section 9.3.2: pipelined requests are answered in order, and a request that follows a
  // non-safe one on the same connection must see its effects. Node parses a pipelined request as
  // soon as the one before has its body, while that one may still be flushing and recording; so a
  // request waits until the response before it on its connection is done.
  const previous = new WeakMap<object, Promise<void>>();
  app.addHook('onRequest', async (request, reply) => {
    const socket = request.raw.socket;
    const before = previous.get(socket);
    // 'finish' when the response is sent; 'close' when the connection went first.
    previous.set(
      socket,
      new Promise<void>((resolve) => {
        reply.raw.once('finish', () => resolve());
        reply.raw.once('close', () => resolve());
      }),
    );
    if (before) await before;
  });
  registerErrorHandler(app, tusFamily);
  app.decorate('onClientAborted', () => metrics.clientAborted());
  const authenticator = new Authenticator(config.auth, overrides.now ?? Date.now);
  signer = new UrlSigner(await loadSigningKey(config.dataDir, config.auth.signingSecret));
  registerIdentity(app, { authenticator, signer, ledger, now: overrides.now ?? Date.now });
  // Overload: answer 503 + Retry-After instead of falling over (event-loop delay, memory). The
  // operational routes (health, metrics) are never shed: they report the overload instead.
  const overloaded = (what: string) =>
    new SluiceError('overloaded', `the server is overloaded (${what}); retry in a few seconds`, {}, { headers: { 'retry-after': '10' } });
  await app.register(underPressure, {
    maxEventLoopDelay: config.overload.maxEventLoopDelayMs,
    pressureHandler: async (request: FastifyRequest, _reply: unknown, type: string) => {
      if (request.routeOptions.config.public === true) return;
      throw overloaded(type);
    },
  });
  const memory = new MemoryPressure(config.overload.maxRssBytes);
  memory.start();
  // Only when there is a limit: nothing to check on every request otherwise.
  if (config.overload.maxRssBytes > 0) {
    app.addHook('onRequest', async (request) => {
      if (memory.shedding && request.routeOptions.config.public !== true) throw overloaded('memory');
    });
  }
  if (config.rateLimit.max > 0) {
    await app.register(rateLimit, {
      max: config.rateLimit.max,
      timeWindow: config.rateLimit.windowMs,
      // After authentication, so that the budget is per user (per address for anonymous users).
      hook: 'preHandler',
      keyGenerator: (request) => (request.owner === ANONYMOUS ? `ip:${request.ip}` : `user:${request.owner}`),
      allowList: (request) => request.routeOptions.config.public === true,
      errorResponseBuilder: (_request, context) =>
        new SluiceError('rate_limited', `more than ${context.max} requests in ${context.after}; retry after ${context.after}`),
    });
  }
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // Every log line of a request about an upload carries its id (including "request completed").
  app.addHook('preValidation', async (request, reply) => {
    const id = (request.params as { id?: unknown } | undefined)?.id;
    if (typeof id === 'string' && UPLOAD_ID.test(id)) {
      request.log = request.log.child({ uploadId: id });
      reply.log = request.log;
    }
  });
  await app.register(cors, {
    origin: config.corsOrigins === '*' ? '*' : config.corsOrigins,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    allowedHeaders: CORS_REQUEST_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    maxAge: 86_400,
    // tus clients send plain OPTIONS (no Origin) to discover the server: let every OPTIONS reach
    // its route (the tus one adds Tus-* headers) instead of answering it as a strict preflight.
    strictPreflight: false,
    preflightContinue: true,
  });

  await app.register(docs, { version: config.version });
  await app.register(healthRoutes, { ledger, dataDir: config.dataDir, store, memory });
  await app.register(metricsRoutes, { metrics, ledger });
  await app.register(webRoutes);
  await app.register(serverInfoRoutes, { config, authRequired: !authenticator.anonymous });
  const urls = { publicUrl: config.publicUrl, trustProxy: config.trustProxy };
  const routeNow = overrides.now ?? Date.now;
  await app.register(uploadRoutes, {
    service,
    urls,
    signer,
    signedUrlTtlMs: config.auth.signedUrlTtlMs,
    directUrlTtlMs: config.directUrlTtlMs,
    now: routeNow,
  });
  await app.register(partRoutes, { service, urls, signer, directUrlTtlMs: config.directUrlTtlMs, now: routeNow });
  await app.register(chunkRoutes, { service, maxChunkSize: config.maxChunkSize });
  await app.register(contentRoutes, { service });
  await app.register(fileRoutes, { service, urls, signer, signedUrlTtlMs: config.auth.signedUrlTtlMs, now: routeNow });
  await app.register(eventRoutes, { service, staged: wired.staged, processorToken: config.events.processorToken });
  await app.register(tusRoutes, {
    service,
    tusPath: config.tusPath,
    maxUploadSize: config.maxUploadSize,
    uploadTtlMs: config.uploadTtlMs,
    urls,
    renderError: renderTusError,
    now: overrides.now ?? (() => Date.now()),
  });

  // The sweeper: expires uploads whose time is up and removes their staging bytes.
  const sweep = async () => {
    try {
      const n = await service.expireDue();
      if (n > 0) app.log.info({ count: n, event: 'sweep' }, 'expired uploads removed');
      // tus uploads with every byte but no published file (a store outage): try again.
      await service.retryPublishing();
      await service.reopenAbandoned();
      await ledger.events.prune(Date.now() - config.events.retentionMs);
      await ledger.maintain();
    } catch (err) {
      app.log.error({ err, event: 'sweep_failed' }, 'expiry sweep failed');
    }
  };
  const sweeper = setInterval(() => void sweep(), config.sweepIntervalMs);
  // Several nodes on one ledger: this node says where it is, so that the others can send it the
  // clients of uploads staged on its disk, and how recently it was alive.
  const node = config.node;
  const heartbeat = async () => {
    if (!node) return;
    const url = node.url ?? ownBaseUrl(config.publicUrl, app.server.address() as AddressInfo | null);
    await ledger
      .heartbeat(node.id, url, Date.now())
      .catch((err: unknown) => app.log.warn({ err, event: 'heartbeat_failed' }, 'recording this node in the ledger failed'));
  };
  const beat = node ? setInterval(() => void heartbeat(), 15_000) : undefined;
  beat?.unref();
  app.server.once('listening', () => void heartbeat());
  sweeper.unref();
  app.addHook('onReady', sweep);
  // Webhooks (and the post-processor's deliveries) go out from the outbox once the server is up.
  const dispatcher = wired.dispatcher(ledger.events, metrics.webhookAttempt);
  if (dispatcher) app.addHook('onReady', () => dispatcher.start());
  // Node closes idle keep-alive sockets once, when close() starts. A streamed response that ends a
  // tick later leaves its socket open until the keep-alive timeout, holding shutdown for a minute;
  // so keep closing idle sockets until the server is really closed.
  app.addHook('preClose', async () => {
    // tus and IETF appends in flight record what arrived and are answered 503 at once (their
    // clients resume from the offset); native chunks get SHUTDOWN_TIMEOUT to finish.
    void service.stopAppends();
    const timer = setInterval(() => app.server.closeIdleConnections(), 100);
    timer.unref();
    app.server.once('close', () => clearInterval(timer));
  });
  app.addHook('onClose', async () => {
    clearInterval(sweeper);
    if (beat) clearInterval(beat);
    await dispatcher?.stop();
    memory.stop();
    await core.service.close();
    await ledger.close();
  });

  return { app, ...core, authenticator };
}
