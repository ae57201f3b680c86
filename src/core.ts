import type { DirectStore } from './storage/direct-store.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config.js';
import { DatabaseDamagedError, openDatabase } from './ledger/database.js';
import type { Ledger } from './ledger/ledger.js';
import { SqliteLedger } from './ledger/sqlite-ledger.js';
import { UploadService } from './service/upload-service.js';
import type { FileStore } from './storage/file-store.js';
import { LocalStore } from './storage/local-store.js';
import { StagingArea } from './storage/staging-area.js';
import type { StatFs } from './storage/disk-space.js';
import type { EventSink } from './service/upload-types.js';
import type { Hooks } from './service/hooks.js';

export interface CoreOverrides {
  /** Replaces the configured store (tests inject failing stores this way). */
  store?: FileStore;
  now?: () => number;
  /** Replaces fs.statfs (tests simulate small or full disks). */
  statfs?: StatFs;
  /** Told what the service does (metrics). */
  events?: EventSink;
  /** The application's blocking hooks (HOOK_PRE_CREATE_URL, HOOK_PRE_PUBLISH_URL). */
  hooks?: Hooks;
}

/** The engine without HTTP: ledger, staging area, store and the upload service over them. */
export interface Core {
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
  service: UploadService;
}

/** A reason the server cannot start that the operator can fix; main prints it and exits 1. */
export class StartupError extends Error {
  override name = 'StartupError';
}

/** Where direct uploads go: the S3 bucket's multipart uploads, next to the S3 store's finals. */
async function createDirect(config: Config, store: FileStore): Promise<DirectStore | undefined> {
  const storage = config.storage;
  if (storage.backend !== 's3' || store.backend !== 's3') return undefined;
  const [{ S3Direct }, { S3Store, createS3Client }] = await Promise.all([import('./storage/s3-direct.js'), import('./storage/s3-store.js')]);
  const finals = store instanceof S3Store ? store : new S3Store(createS3Client(storage), storage);
  return new S3Direct(finals.client, storage, finals);
}

async function createStore(config: Config): Promise<FileStore> {
  const storage = config.storage;
  if (storage.backend === 's3') {
    // Loaded only when used: the AWS SDK is a large part of the idle footprint of a local server.
    const { S3Store, createS3Client } = await import('./storage/s3-store.js');
    const store = new S3Store(createS3Client(storage), storage);
    try {
      await store.check();
      await store.checkWritable();
    } catch (err) {
      const reason = (err as { name?: string; message?: string }).name ?? 'Error';
      throw new StartupError(
        `S3 bucket ${JSON.stringify(storage.bucket)}${storage.endpoint ? ` at ${storage.endpoint}` : ''} is not reachable or not writable (${reason}: ${(err as Error).message})`,
        { cause: err },
      );
    }
    return store;
  }
  const local = new LocalStore(config.dataDir);
  await local.init();
  return local;
}

/** The ledger: PostgreSQL when DATABASE_URL is set (several nodes share it), else SQLite in DATA_DIR. */
async function openLedger(config: Config): Promise<Ledger> {
  const progressIntervalMs = config.events.progressIntervalMs;
  if (config.databaseUrl) {
    const { PgLedger } = await import('./ledger/pg-ledger.js');
    try {
      return await PgLedger.open(config.databaseUrl, { progressIntervalMs });
    } catch (err) {
      const where = new URL(config.databaseUrl);
      throw new StartupError(`the PostgreSQL ledger at ${where.host}${where.pathname} cannot be opened (${(err as Error).message})`, { cause: err });
    }
  }
  let db: ReturnType<typeof openDatabase>;
  try {
    db = openDatabase(path.join(config.dataDir, 'sluice.db'));
  } catch (err) {
    if (err instanceof DatabaseDamagedError) throw new StartupError(err.message, { cause: err });
    throw err;
  }
  return new SqliteLedger(db, { progressIntervalMs });
}

/** Opens everything under DATA_DIR; used by the server and by the one-shot commands. */
export async function openCore(config: Config, log: FastifyBaseLogger, overrides: CoreOverrides = {}): Promise<Core> {
  await fs.mkdir(config.dataDir, { recursive: true });
  const staging = new StagingArea(config.dataDir);
  await staging.init();
  const store = overrides.store ?? (await createStore(config));
  const ledger = await openLedger(config);
  const direct = await createDirect(config, store);
  const service = new UploadService({
    config,
    ledger,
    staging,
    store,
    direct,
    log,
    ...(overrides.now && { now: overrides.now }),
    ...(overrides.statfs && { statfs: overrides.statfs }),
    ...(overrides.events && { events: overrides.events }),
    ...(overrides.hooks && { hooks: overrides.hooks }),
  });
  return { ledger, staging, store, service };
}
