import path from 'node:path';
import { formatBytes, parseBytes, parseDuration } from './lib/units.js';

/**
 * Everything sluice can be configured with. Loaded and validated once, at start-up, by
 * `loadConfig(process.env)`; the rest of the code receives this object and never reads the
 * environment itself.
 */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  logLevel: string;
  maxUploadSize: number;
  defaultChunkSize: number;
  minChunkSize: number;
  maxChunkSize: number;
  maxChunks: number;
  uploadTtlMs: number;
  /** How often the sweeper looks for expired uploads. */
  sweepIntervalMs: number;
  /** A socket that sends nothing for this long is closed (slow-loris and dead-peer guard). */
  idleTimeoutMs: number;
  /** A chunk writer that has received no bytes for this long may be taken over by a new request. */
  takeoverAfterMs: number;
  /** How long SIGTERM waits for in-flight requests before the process exits anyway. */
  shutdownTimeoutMs: number;
  /** Base URL used to build absolute URLs in responses; derived from the request when unset. */
  publicUrl: string | undefined;
  storage: StorageConfig;
}

export type StorageConfig = { backend: 'local' };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Reads and validates the configuration; throws one ConfigError listing every bad value. */
export function loadConfig(env: Env, cwd = process.cwd()): Config {
  const problems: string[] = [];
  const read = <T>(name: string, fallback: T, parse: (raw: string) => T | undefined, hint: string): T => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const value = parse(raw);
    if (value === undefined) {
      problems.push(`${name}=${JSON.stringify(raw)} is not ${hint}`);
      return fallback;
    }
    return value;
  };
  const int = (min: number, max: number) => (raw: string) => {
    if (!/^\d+$/.test(raw.trim())) return undefined;
    const n = Number(raw);
    return n >= min && n <= max ? n : undefined;
  };
  const bytes = (raw: string) => {
    const n = parseBytes(raw);
    return n !== undefined && n > 0 ? n : undefined;
  };
  const duration = (raw: string) => {
    const n = parseDuration(raw);
    return n !== undefined && n > 0 ? n : undefined;
  };

  const port = read('PORT', 8080, int(0, 65535), 'a port number (0-65535)');
  const host = read('HOST', '127.0.0.1', (r) => r.trim() || undefined, 'a host');
  const dataDir = path.resolve(cwd, read('DATA_DIR', './data', (r) => r, 'a path'));
  const logLevel = read('LOG_LEVEL', 'info', (r) => (LOG_LEVELS.includes(r) ? r : undefined), `one of ${LOG_LEVELS.join(', ')}`);
  const maxUploadSize = read('MAX_UPLOAD_SIZE', 100 * 1024 ** 3, bytes, 'a positive byte size (e.g. 5GiB)');
  const defaultChunkSize = read('DEFAULT_CHUNK_SIZE', 8 * 1024 ** 2, bytes, 'a positive byte size (e.g. 8MiB)');
  const minChunkSize = read('MIN_CHUNK_SIZE', 64 * 1024, bytes, 'a positive byte size (e.g. 64KiB)');
  const maxChunkSize = read('MAX_CHUNK_SIZE', 256 * 1024 ** 2, bytes, 'a positive byte size (e.g. 256MiB)');
  const maxChunks = read('MAX_CHUNKS', 10_000, int(1, 1_000_000), 'a whole number from 1 to 1000000');
  const uploadTtlMs = read('UPLOAD_TTL', 24 * 3600_000, duration, 'a duration (e.g. 24h, 30m)');
  const sweepIntervalMs = read('SWEEP_INTERVAL', 60_000, duration, 'a duration (e.g. 1m)');
  const idleTimeoutMs = read('IDLE_TIMEOUT', 60_000, duration, 'a duration (e.g. 60s)');
  const takeoverAfterMs = read('CHUNK_TAKEOVER_AFTER', 15_000, duration, 'a duration (e.g. 15s)');
  const shutdownTimeoutMs = read('SHUTDOWN_TIMEOUT', 15_000, duration, 'a duration (e.g. 15s)');
  const publicUrl = read<string | undefined>('PUBLIC_URL', undefined, (r) => {
    try {
      const u = new URL(r);
      return u.protocol === 'http:' || u.protocol === 'https:' ? r.replace(/\/+$/, '') : undefined;
    } catch {
      return undefined;
    }
  }, 'an http(s) URL');
  const backend = read('STORAGE_BACKEND', 'local', (r) => (r === 'local' ? r : undefined), 'a storage backend (local)');

  if (minChunkSize > maxChunkSize) {
    problems.push(`MIN_CHUNK_SIZE (${formatBytes(minChunkSize)}) is larger than MAX_CHUNK_SIZE (${formatBytes(maxChunkSize)})`);
  }
  if (defaultChunkSize < minChunkSize || defaultChunkSize > maxChunkSize) {
    problems.push(`DEFAULT_CHUNK_SIZE (${formatBytes(defaultChunkSize)}) must lie between MIN_CHUNK_SIZE and MAX_CHUNK_SIZE`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    port,
    host,
    dataDir,
    logLevel,
    maxUploadSize,
    defaultChunkSize,
    minChunkSize,
    maxChunkSize,
    maxChunks,
    uploadTtlMs,
    sweepIntervalMs,
    idleTimeoutMs,
    takeoverAfterMs,
    shutdownTimeoutMs,
    publicUrl,
    storage: { backend: backend as 'local' },
  };
}
