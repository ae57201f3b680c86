import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from './lib/package-root.js';
import { inSea, seaAsset } from './lib/sea.js';
import { formatBytes, parseBytes, parseDuration } from './lib/units.js';

/**
 * Everything sluice can be configured with. Loaded and validated once, at start-up, by
 * `loadConfig(process.env)`; the rest of the code receives this object and never reads the
 * environment itself.
 */
export interface Config {
  /** sluice's own version (from package.json), shown in the API document. */
  version: string;
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
  /** Where the tus endpoint is mounted, e.g. `/files`. */
  tusPath: string;
  /** Origins allowed by CORS: `*` or a list. */
  corsOrigins: '*' | string[];
  /**
   * Whether X-Forwarded-Proto/Host and Forwarded are believed (for Location URLs and client
   * addresses): false, true, or the proxies' addresses/CIDRs.
   */
  trustProxy: boolean | string[];
  auth: AuthConfig;
  /** Requests per RATE_LIMIT_WINDOW per user (per address when anonymous); 0 turns it off. */
  rateLimit: { max: number; windowMs: number };
  maxActiveUploadsPerUser: number;
  /** Bytes one user may have in unfinished uploads at once; undefined for no limit. */
  userQuota: number | undefined;
  /** MIME patterns (`image/*`, `application/pdf`) a finished file must match; undefined for any. */
  allowedTypes: string[] | undefined;
  /** Largest request head in bytes; larger ones get 431. */
  maxHeaderSize: number;
  /** Time a client has to send the request head (slow-loris guard). */
  headersTimeoutMs: number;
  /**
   * Free space kept on DATA_DIR beyond all reservations: a byte count, or a share of the
   * filesystem (`percent`), of which the smaller applies when both are given.
   */
  diskReserve: { bytes: number | undefined; percent: number | undefined };
  /** Overload protection: answer 503 + Retry-After beyond these (0 turns a check off). */
  overload: { maxEventLoopDelayMs: number; maxRssBytes: number };
  /**
   * How V8 trades memory for speed (src/lib/memory-profile.ts): `small` compiles less and keeps
   * smaller heaps, `fast` is Node's default.
   */
  memoryProfile: MemoryProfile;
  /** Received body bytes between young-generation collections that free socket buffers; 0 leaves it to V8. */
  gcEveryBytes: number;
  storage: StorageConfig;
}

export type MemoryProfile = 'small' | 'fast';

export interface AuthConfig {
  /** Static bearer tokens → user names (AUTH_TOKENS and AUTH_TOKENS_FILE). */
  tokens: Map<string, string>;
  jwt: { secret: string | undefined; jwksUrl: string | undefined; issuer: string | undefined; audience: string | undefined } | undefined;
  /** HMAC key for signed upload URLs; generated and kept in DATA_DIR when unset. */
  signingSecret: string | undefined;
  signedUrlTtlMs: number;
}

export type StorageConfig = { backend: 'local' } | S3Config;

export interface S3Config {
  backend: 's3';
  bucket: string;
  region: string;
  /** For S3-compatible services (MinIO, R2, Ceph, ...); AWS itself when unset. */
  endpoint: string | undefined;
  forcePathStyle: boolean;
  /** Key prefix for every object, e.g. `uploads/`. */
  prefix: string;
  /** Multipart part size; grown per file so that no file needs more than 10,000 parts. */
  partSize: number;
  /** Parts in flight at once; memory use is about partSize x queueSize. */
  queueSize: number;
  /**
   * When the SDK adds its own request checksums. `when_required` is needed by S3-compatible
   * servers that do not understand aws-chunked uploads (they would store the framing as data).
   */
  checksums: 'when_supported' | 'when_required';
  /** Lifetime of presigned download URLs. */
  presignTtlSeconds: number;
}

/** S3's own floor for every part but the last. */
export const S3_MIN_PART_SIZE = 5 * 1024 * 1024;

/** sluice's version: from the binary's assets, or from the package.json of the package. */
const PACKAGE_VERSION = ((): string => {
  if (inSea()) return (JSON.parse(seaAsset('package.json').toString('utf8')) as { version: string }).version;
  if (packageRoot === undefined) return 'unknown';
  return (JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
})();

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
  const dataDir = path.resolve(
    cwd,
    read('DATA_DIR', './data', (r) => r, 'a path'),
  );
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
  const publicUrl = read<string | undefined>(
    'PUBLIC_URL',
    undefined,
    (r) => {
      try {
        const u = new URL(r);
        return u.protocol === 'http:' || u.protocol === 'https:' ? r.replace(/\/+$/, '') : undefined;
      } catch {
        return undefined;
      }
    },
    'an http(s) URL',
  );
  const tusPath = read(
    'TUS_PATH',
    '/files',
    (r) => (/^\/[\w.~-]+(\/[\w.~-]+)*$/.test(r) && !r.startsWith('/v1') ? r : undefined),
    'a path such as /files (not under /v1)',
  );
  const corsOrigins = read<'*' | string[]>(
    'CORS_ORIGINS',
    '*',
    (r) => {
      if (r.trim() === '*') return '*';
      const list = r
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean);
      return list.length > 0 && list.every((o) => /^https?:\/\/[^/\s]+$/.test(o)) ? list : undefined;
    },
    '* or a comma-separated list of origins (https://app.example.com)',
  );
  const trustProxy = read<boolean | string[]>(
    'TRUST_PROXY',
    false,
    (r) => {
      if (/^(1|true|yes)$/i.test(r)) return true;
      if (/^(0|false|no)$/i.test(r)) return false;
      const list = r
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
      return list.length > 0 && list.every((a) => /^[0-9a-fA-F.:]+(\/\d{1,3})?$/.test(a)) ? list : undefined;
    },
    'true, false, or a comma-separated list of proxy addresses/CIDRs',
  );
  const tokens = new Map<string, string>();
  const addToken = (token: string, user: string, where: string) => {
    if (token.length < 16) problems.push(`${where}: tokens must be at least 16 characters`);
    else if (!/^[\w.@+-]{1,128}$/.test(user)) problems.push(`${where}: user ${JSON.stringify(user)} must be 1-128 of [A-Za-z0-9_.@+-]`);
    else tokens.set(token, user);
  };
  for (const pair of (env.AUTH_TOKENS ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const i = pair.lastIndexOf(':');
    if (i <= 0) problems.push('AUTH_TOKENS must look like "token:user,token2:user2"');
    else addToken(pair.slice(0, i), pair.slice(i + 1), 'AUTH_TOKENS');
  }
  if (env.AUTH_TOKENS_FILE) {
    try {
      const lines = readFileSync(path.resolve(cwd, env.AUTH_TOKENS_FILE), 'utf8').split('\n');
      lines.forEach((line, n) => {
        const text = line.trim();
        if (text === '' || text.startsWith('#')) return;
        const [token, user, extra] = text.split(/\s+/);
        if (!token || !user || extra !== undefined) problems.push(`AUTH_TOKENS_FILE line ${n + 1} must be "token user"`);
        else addToken(token, user, `AUTH_TOKENS_FILE line ${n + 1}`);
      });
    } catch (err) {
      problems.push(`AUTH_TOKENS_FILE cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  const jwtSecret = env.JWT_SECRET?.trim() || undefined;
  if (jwtSecret !== undefined && jwtSecret.length < 32) problems.push('JWT_SECRET must be at least 32 characters (HS256 needs a 256-bit key)');
  const jwksUrl = read<string | undefined>('JWT_JWKS_URL', undefined, (r) => (/^https?:\/\/\S+$/.test(r) ? r : undefined), 'an http(s) URL');
  if (jwtSecret && jwksUrl) problems.push('set JWT_SECRET or JWT_JWKS_URL, not both');
  const signingSecret = env.SIGNING_SECRET?.trim() || undefined;
  if (signingSecret !== undefined && signingSecret.length < 32) problems.push('SIGNING_SECRET must be at least 32 characters');
  const auth: AuthConfig = {
    tokens,
    jwt:
      jwtSecret || jwksUrl
        ? { secret: jwtSecret, jwksUrl, issuer: env.JWT_ISSUER?.trim() || undefined, audience: env.JWT_AUDIENCE?.trim() || undefined }
        : undefined,
    signingSecret,
    signedUrlTtlMs: read('SIGNED_URL_TTL', 3600_000, duration, 'a duration (e.g. 1h)'),
  };
  const rateLimit = {
    max: read('RATE_LIMIT_MAX', 10_000, int(0, 10_000_000), 'a whole number (0 turns rate limiting off)'),
    windowMs: read('RATE_LIMIT_WINDOW', 60_000, duration, 'a duration (e.g. 1m)'),
  };
  const maxActiveUploadsPerUser = read('MAX_ACTIVE_UPLOADS_PER_USER', 1000, int(1, 10_000_000), 'a whole number from 1');
  const userQuota = read<number | undefined>('USER_QUOTA', undefined, bytes, 'a positive byte size (e.g. 50GiB)');
  const allowedTypes = read<string[] | undefined>(
    'ALLOWED_TYPES',
    undefined,
    (r) => {
      const list = r
        .split(',')
        .map((p) => p.trim().toLowerCase())
        .filter(Boolean);
      return list.length > 0 && list.every((p) => /^([a-z0-9!#$&^_.+-]+|\*)\/([a-z0-9!#$&^_.+-]+|\*)$/.test(p)) ? list : undefined;
    },
    'a comma-separated list of MIME patterns (image/*, application/pdf)',
  );
  const maxHeaderSize = read(
    'MAX_HEADER_SIZE',
    16 * 1024,
    (r) => {
      const n = bytes(r);
      return n !== undefined && n >= 1024 && n <= 1024 * 1024 ? n : undefined;
    },
    'a byte size from 1KiB to 1MiB',
  );
  const diskReserve = read<{ bytes: number | undefined; percent: number | undefined }>(
    'DISK_RESERVE',
    { bytes: 1024 ** 3, percent: 5 },
    (r) => {
      const pct = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(r);
      if (pct) return Number(pct[1]) <= 50 ? { bytes: undefined, percent: Number(pct[1]) } : undefined;
      const n = r.trim() === '0' ? 0 : bytes(r);
      return n === undefined ? undefined : { bytes: n, percent: undefined };
    },
    'a byte size (1GiB), a percentage up to 50% or 0',
  );
  const overload = {
    maxEventLoopDelayMs: read('OVERLOAD_EVENT_LOOP_DELAY', 1000, (r) => (r.trim() === '0' ? 0 : duration(r)), 'a duration (e.g. 1s) or 0'),
    maxRssBytes: read('OVERLOAD_MAX_RSS', 0, (r) => (r.trim() === '0' ? 0 : bytes(r)), 'a byte size (e.g. 512MiB) or 0'),
  };
  const memoryProfile = read<MemoryProfile>('MEMORY_PROFILE', 'small', (r) => (r === 'small' || r === 'fast' ? r : undefined), 'small or fast');
  const gcEveryBytes = read('GC_EVERY', 4 * 1024 * 1024, (r) => (r.trim() === '0' ? 0 : bytes(r)), 'a byte size (e.g. 1MiB) or 0');
  const headersTimeoutMs = read('HEADERS_TIMEOUT', 20_000, duration, 'a duration (e.g. 20s)');
  const backend = read('STORAGE_BACKEND', 'local', (r) => (r === 'local' || r === 's3' ? r : undefined), 'a storage backend (local or s3)');
  let storage: StorageConfig = { backend: 'local' };
  if (backend === 's3') {
    const bool = (r: string) => (/^(1|true|yes)$/i.test(r) ? true : /^(0|false|no)$/i.test(r) ? false : undefined);
    const bucket = env.S3_BUCKET?.trim();
    if (!bucket) problems.push('S3_BUCKET is required when STORAGE_BACKEND=s3');
    const endpoint = read<string | undefined>('S3_ENDPOINT', undefined, (r) => (/^https?:\/\/[^\s]+$/.test(r) ? r : undefined), 'an http(s) URL');
    storage = {
      backend: 's3',
      bucket: bucket ?? '',
      region: read('S3_REGION', 'us-east-1', (r) => (/^[a-z0-9-]+$/.test(r) ? r : undefined), 'a region name'),
      endpoint,
      forcePathStyle: read('S3_FORCE_PATH_STYLE', false, bool, 'true or false'),
      prefix: read('S3_PREFIX', '', (r) => (/^[\w!\-.*'()/]*$/.test(r) && !r.startsWith('/') ? r : undefined), 'a key prefix of safe characters'),
      partSize: read(
        'S3_PART_SIZE',
        16 * 1024 ** 2,
        (r) => {
          const n = bytes(r);
          return n !== undefined && n >= S3_MIN_PART_SIZE && n <= 5 * 1024 ** 3 ? n : undefined;
        },
        'a byte size from 5MiB to 5GiB',
      ),
      queueSize: read('S3_QUEUE_SIZE', 4, int(1, 64), 'a whole number from 1 to 64'),
      checksums: read<'when_supported' | 'when_required'>(
        'S3_CHECKSUMS',
        endpoint ? 'when_required' : 'when_supported',
        (r) => (r === 'when_supported' || r === 'when_required' ? r : undefined),
        'when_supported or when_required',
      ),
      presignTtlSeconds: Math.round(read('S3_PRESIGN_TTL', 300_000, duration, 'a duration (e.g. 5m)') / 1000),
    };
  }

  if (minChunkSize > maxChunkSize) {
    problems.push(`MIN_CHUNK_SIZE (${formatBytes(minChunkSize)}) is larger than MAX_CHUNK_SIZE (${formatBytes(maxChunkSize)})`);
  }
  if (defaultChunkSize < minChunkSize || defaultChunkSize > maxChunkSize) {
    problems.push(`DEFAULT_CHUNK_SIZE (${formatBytes(defaultChunkSize)}) must lie between MIN_CHUNK_SIZE and MAX_CHUNK_SIZE`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    version: PACKAGE_VERSION,
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
    tusPath,
    corsOrigins,
    trustProxy,
    auth,
    rateLimit,
    maxActiveUploadsPerUser,
    userQuota,
    allowedTypes,
    maxHeaderSize,
    headersTimeoutMs,
    diskReserve,
    overload,
    memoryProfile,
    gcEveryBytes,
    storage,
  };
}
