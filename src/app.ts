import fs from 'node:fs/promises';
import path from 'node:path';
import cors from '@fastify/cors';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { registerErrorHandler } from './http/error-handler.js';
import { registerIdentity } from './http/identity.js';
import { openDatabase, type Db } from './ledger/database.js';
import { Ledger } from './ledger/ledger.js';
import { healthRoutes } from './routes/health.js';
import { chunkRoutes } from './routes/native/chunks.js';
import { contentRoutes } from './routes/native/content.js';
import { uploadRoutes } from './routes/native/uploads.js';
import { UploadService } from './service/upload-service.js';
import type { FileStore } from './storage/file-store.js';
import { LocalStore } from './storage/local-store.js';
import { StagingArea } from './storage/staging-area.js';

export interface AppOverrides {
  /** Replaces the configured store (tests inject failing stores this way). */
  store?: FileStore;
  now?: () => number;
  /** A pino logger or logger options; defaults to the configured level on stdout. */
  logger?: boolean | Record<string, unknown>;
}

export interface Sluice {
  app: FastifyInstance;
  service: UploadService;
  db: Db;
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
}

const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

/** Builds the whole server from a validated config; nothing here reads the environment. */
export async function buildApp(config: Config, overrides: AppOverrides = {}): Promise<Sluice> {
  await fs.mkdir(config.dataDir, { recursive: true });
  const staging = new StagingArea(config.dataDir);
  await staging.init();
  let store = overrides.store;
  if (!store) {
    const local = new LocalStore(config.dataDir);
    await local.init();
    store = local;
  }
  const db = openDatabase(path.join(config.dataDir, 'sluice.db'));
  const ledger = new Ledger(db);

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

  const service = new UploadService({ config, ledger, staging, store, log: app.log, ...(overrides.now && { now: overrides.now }) });
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
  app.addHook('onClose', async () => {
    clearInterval(sweeper);
    db.close();
  });

  return { app, service, db, ledger, staging, store };
}
