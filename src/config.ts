import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from './lib/package-root.js';
import { inSea, seaAsset } from './lib/sea.js';
import { formatBytes, parseBytes, parseDuration } from './lib/units.js';

import { loadEventsConfig } from './config-events.js';
import type { AuthConfig, Config, MemoryProfile, StorageConfig } from './config-types.js';

export type * from './config-types.js';

/** S3's own floor for every part but the last. */
export const S3_MIN_PART_SIZE = 5 * 1024 * 1024;

/** sluice's version: from the binary's assets, or from the package.json of the package. */
const PACKAGE_VERSION = ((): string => {
  if (inSea()) return (JSON.parse(seaAsset('package.json').toString('utf8')) as { version: string }).version;
  if (packageRoot === undefined) return 'unknown';
  return (JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
})();

/** A boolean setting: 1/true/yes or 0/false/no. */
const flag = (r: string) => (/^(1|true|yes)$/i.test(r) ? true : /^(0|false|no)$/i.test(r) ? false : undefined);

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
  // "1KiB/30s": a body must bring at least that many bytes in every such window.
  // "0" turns the guard off: null while parsing (undefined would mean "not understood").
  const minBodyRateOrOff = read<{ bytes: number; windowMs: number } | null>(
    'MIN_BODY_RATE',
    { bytes: 1024, windowMs: 30_000 },
    (r) => {
      if (r.trim() === '0') return null;
      const [b, w] = r.split('/');
      const n = b === undefined ? undefined : bytes(b);
      const ms = w === undefined ? undefined : duration(w);
      return n !== undefined && ms !== undefined ? { bytes: n, windowMs: ms } : undefined;
    },
    'bytes per duration (e.g. 1KiB/30s) or 0',
  );
  const minBodyRate = minBodyRateOrOff ?? undefined;
  const directUrlTtlMs = read('DIRECT_URL_TTL', 3600_000, duration, 'a duration (e.g. 1h)');
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
  // A JWT without `exp` would be valid forever: refused unless this is turned off on purpose.
  const requireExp = read('JWT_REQUIRE_EXP', true, flag, 'true or false');
  if (jwtSecret !== undefined && jwtSecret.length < 32) problems.push('JWT_SECRET must be at least 32 characters (HS256 needs a 256-bit key)');
  const jwksUrl = read<string | undefined>('JWT_JWKS_URL', undefined, (r) => (/^https?:\/\/\S+$/.test(r) ? r : undefined), 'an http(s) URL');
  if (jwtSecret && jwksUrl) problems.push('set JWT_SECRET or JWT_JWKS_URL, not both');
  const signingSecret = env.SIGNING_SECRET?.trim() || undefined;
  if (signingSecret !== undefined && signingSecret.length < 32) problems.push('SIGNING_SECRET must be at least 32 characters');
  const introspectionUrl = read<string | undefined>(
    'AUTH_INTROSPECTION_URL',
    undefined,
    (r) => (/^https?:\/\/\S+$/.test(r.trim()) ? r.trim() : undefined),
    'an http(s) URL',
  );
  const introspectionId = env.AUTH_INTROSPECTION_CLIENT_ID?.trim() || undefined;
  const introspectionSecret = env.AUTH_INTROSPECTION_CLIENT_SECRET?.trim() || undefined;
  if (introspectionUrl && (!introspectionId || !introspectionSecret)) {
    problems.push('AUTH_INTROSPECTION_URL needs AUTH_INTROSPECTION_CLIENT_ID and AUTH_INTROSPECTION_CLIENT_SECRET (RFC 7662 client authentication)');
  }
  const auth: AuthConfig = {
    tokens,
    introspection: introspectionUrl
      ? {
          url: introspectionUrl,
          clientId: introspectionId ?? '',
          clientSecret: introspectionSecret ?? '',
          cacheMs: read('AUTH_INTROSPECTION_CACHE', 60_000, (r) => (r.trim() === '0' ? 0 : duration(r)), 'a duration (e.g. 60s) or 0'),
        }
      : undefined,
    jwt:
      jwtSecret || jwksUrl
        ? { secret: jwtSecret, jwksUrl, issuer: env.JWT_ISSUER?.trim() || undefined, audience: env.JWT_AUDIENCE?.trim() || undefined, requireExp }
        : undefined,
    signingSecret,
    signedUrlTtlMs: read('SIGNED_URL_TTL', 3600_000, duration, 'a duration (e.g. 1h)'),
  };
  const rateLimit = {
    max: read('RATE_LIMIT_MAX', 10_000, int(0, 10_000_000), 'a whole number (0 turns rate limiting off)'),
    windowMs: read('RATE_LIMIT_WINDOW', 60_000, duration, 'a duration (e.g. 1m)'),
  };
  const maxActiveUploadsPerUser = read('MAX_ACTIVE_UPLOADS_PER_USER', 1000, int(1, 10_000_000), 'a whole number from 1');
  const maxConcurrentBodies = read('MAX_CONCURRENT_BODIES', 0, int(0, 1_000_000), 'a whole number (0: from the descriptor limit)');
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
  const stagingBackend = read<'local' | 's3'>('STAGING_BACKEND', 'local', (r) => (r === 'local' || r === 's3' ? r : undefined), 'local or s3');
  if (stagingBackend === 's3' && backend !== 's3') problems.push('STAGING_BACKEND=s3 needs STORAGE_BACKEND=s3 (the parts are staged in its bucket)');
  let storage: StorageConfig = { backend: 'local' };
  if (backend === 's3') {
    const bool = flag;
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

  const events = loadEventsConfig(env, read, duration, problems);
  const requireFileSha256 = read('REQUIRE_FILE_SHA256', false, flag, 'true or false');
  const databaseUrl = read<string | undefined>(
    'DATABASE_URL',
    undefined,
    (r) => (/^postgres(ql)?:\/\/\S+$/.test(r.trim()) ? r.trim() : undefined),
    'a postgres:// URL (postgres://user:password@host:5432/database)',
  );
  // Several nodes on one ledger: each has a stable name, and a URL the others send its clients to.
  const nodeId = read('NODE_ID', os.hostname(), (r) => (/^[\w.:-]{1,128}$/.test(r.trim()) ? r.trim() : undefined), 'a name of [A-Za-z0-9_.:-]');
  const nodeUrl = read<string | undefined>(
    'NODE_URL',
    undefined,
    (r) => (/^https?:\/\/[^\s/]+$/.test(r.trim()) ? r.trim() : undefined),
    'an http(s) URL with no path',
  );

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
    minBodyRate,
    takeoverAfterMs,
    directUrlTtlMs,
    shutdownTimeoutMs,
    publicUrl,
    tusPath,
    corsOrigins,
    trustProxy,
    auth,
    rateLimit,
    maxActiveUploadsPerUser,
    maxConcurrentBodies,
    userQuota,
    allowedTypes,
    maxHeaderSize,
    headersTimeoutMs,
    diskReserve,
    overload,
    memoryProfile,
    gcEveryBytes,
    storage,
    stagingBackend,
    events,
    requireFileSha256,
    databaseUrl,
    // (With the embedded SQLite ledger there is one node, and uploads are not pinned to it.)
    node: databaseUrl ? { id: nodeId, url: nodeUrl ?? publicUrl } : undefined,
  };
}
