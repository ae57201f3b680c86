import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config.js';
import { openDatabase, type Db } from './ledger/database.js';
import { Ledger } from './ledger/ledger.js';
import { UploadService } from './service/upload-service.js';
import type { FileStore } from './storage/file-store.js';
import { LocalStore } from './storage/local-store.js';
import { StagingArea } from './storage/staging-area.js';

export interface CoreOverrides {
  /** Replaces the configured store (tests inject failing stores this way). */
  store?: FileStore;
  now?: () => number;
}

/** The engine without HTTP: ledger, staging area, store and the upload service over them. */
export interface Core {
  db: Db;
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
  service: UploadService;
}

export class StorageStartupError extends Error {
  override name = 'StorageStartupError';
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
      throw new StorageStartupError(
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

/** Opens everything under DATA_DIR; used by the server and by the one-shot commands. */
export async function openCore(config: Config, log: FastifyBaseLogger, overrides: CoreOverrides = {}): Promise<Core> {
  await fs.mkdir(config.dataDir, { recursive: true });
  const staging = new StagingArea(config.dataDir);
  await staging.init();
  const store = overrides.store ?? (await createStore(config));
  const db = openDatabase(path.join(config.dataDir, 'sluice.db'));
  const ledger = new Ledger(db);
  const service = new UploadService({ config, ledger, staging, store, log, ...(overrides.now && { now: overrides.now }) });
  return { db, ledger, staging, store, service };
}
