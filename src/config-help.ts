/**
 * The environment the server reads, for `sluice serve --help` (the binary ships without the
 * README). A unit test checks that every variable `loadConfig` reads is listed here and in the
 * README's tables.
 */
export const ENVIRONMENT: readonly (readonly [name: string, fallback: string, meaning: string])[] = [
  ['PORT', '8080', 'TCP port'],
  ['HOST', '127.0.0.1', 'address to listen on (0.0.0.0 for all)'],
  ['DATA_DIR', './data', 'SQLite ledger (sluice.db), staging/ and files/'],
  ['LOG_LEVEL', 'info', 'fatal, error, warn, info, debug, trace or silent'],
  ['MAX_UPLOAD_SIZE', '100GiB', 'largest upload'],
  ['DEFAULT_CHUNK_SIZE', '8MiB', 'chunk size when the client gives none'],
  ['MIN_CHUNK_SIZE', '64KiB', 'smallest chunk_size a client may ask for'],
  ['MAX_CHUNK_SIZE', '256MiB', 'largest chunk_size a client may ask for'],
  ['MAX_CHUNKS', '10000', 'most chunks one upload may have'],
  ['UPLOAD_TTL', '24h', 'an unfinished upload expires this long after creation'],
  ['SWEEP_INTERVAL', '1m', 'how often expired uploads are removed'],
  ['IDLE_TIMEOUT', '60s', 'a socket silent this long is closed'],
  ['MIN_BODY_RATE', '1KiB/30s', 'a chunk or PATCH body slower than this ends with 408 (a PATCH keeps what arrived); 0 turns it off'],
  ['CHUNK_TAKEOVER_AFTER', '15s', 'a silent chunk writer may be taken over after this'],
  ['SHUTDOWN_TIMEOUT', '15s', 'how long SIGTERM waits for in-flight requests'],
  ['PUBLIC_URL', '(from the request)', 'base of absolute URLs in responses'],
  ['TRUST_PROXY', 'false', 'true, or proxy addresses/CIDRs whose X-Forwarded-* are believed'],
  ['TUS_PATH', '/files', 'where the tus (and IETF draft) endpoint is mounted'],
  ['CORS_ORIGINS', '*', 'allowed browser origins: * or a comma-separated list'],
  ['AUTH_TOKENS', '(none)', 'token:user,... bearer tokens (16+ characters each)'],
  ['AUTH_TOKENS_FILE', '(none)', 'file of "token user" lines'],
  ['JWT_SECRET', '(none)', 'accept HS256 bearer JWTs signed with this secret (32+ characters)'],
  ['JWT_JWKS_URL', '(none)', 'accept RS256/ES256 bearer JWTs whose keys this JWKS URL serves'],
  ['JWT_ISSUER', '(none)', 'required iss of JWTs'],
  ['JWT_REQUIRE_EXP', 'true', 'refuse JWTs without an exp claim (401); false accepts tokens that never expire'],
  ['JWT_AUDIENCE', '(none)', 'required aud of JWTs'],
  ['SIGNING_SECRET', '(DATA_DIR/signing.key)', 'HMAC key of signed upload URLs'],
  ['SIGNED_URL_TTL', '1h', 'lifetime of signed upload URLs'],
  ['STAGING_BACKEND', 'local', 'local or s3: where uploads are staged until finish (s3 needs STORAGE_BACKEND=s3)'],
  ['DIRECT_URL_TTL', '1h', "lifetime of a direct upload's part URLs"],
  ['MAX_ACTIVE_UPLOADS_PER_USER', '1000', 'unfinished uploads one user may have'],
  [
    'MAX_CONCURRENT_BODIES',
    '(from the descriptor limit)',
    'chunk and PATCH bodies written at once; beyond it 503 overloaded with Retry-After, before anything is opened',
  ],
  ['USER_QUOTA', '(none)', 'bytes one user may reserve in unfinished uploads'],
  ['RATE_LIMIT_MAX', '10000', 'requests per window per user; 0 turns it off'],
  ['RATE_LIMIT_WINDOW', '1m', 'the rate limit window'],
  ['ALLOWED_TYPES', '(any)', 'MIME patterns a finished file must match (by magic number)'],
  ['MAX_HEADER_SIZE', '16KiB', 'largest request head (431 beyond)'],
  ['HEADERS_TIMEOUT', '20s', 'time allowed to send a request head'],
  ['DISK_RESERVE', 'min(1GiB, 5%)', 'free space kept on DATA_DIR beyond reservations: bytes, a percentage or 0'],
  ['OVERLOAD_EVENT_LOOP_DELAY', '1s', 'answer 503 overloaded beyond this event-loop delay; 0 turns it off'],
  ['OVERLOAD_MAX_RSS', '0 (off)', 'answer 503 overloaded beyond this much anonymous memory (after a collection; again below 90 % of it)'],
  ['MEMORY_PROFILE', 'small', "small (V8 sized for footprint, no optimising compiler during start-up) or fast (Node's defaults: ~20 MiB more)"],
  ['GC_EVERY', '4MiB', 'received body bytes between collections that free socket buffers; 0 leaves it to V8'],
  ['STORAGE_BACKEND', 'local', 'where finished files go: local (DATA_DIR/files/) or s3'],
  ['S3_BUCKET', '(required for s3)', 'bucket for finished files'],
  ['S3_REGION', 'us-east-1', 'region'],
  ['S3_ENDPOINT', '(AWS)', 'endpoint of an S3-compatible service'],
  ['S3_FORCE_PATH_STYLE', 'false', 'path-style URLs (most S3-compatible services need true)'],
  ['S3_PREFIX', '(empty)', 'key prefix, e.g. uploads/'],
  ['S3_PART_SIZE', '16MiB', 'multipart part size (memory while finishing: part size x queue size)'],
  ['S3_QUEUE_SIZE', '4', 'parts in flight'],
  ['S3_CHECKSUMS', 'when_supported', 'SDK request checksums: when_supported or when_required (default with S3_ENDPOINT)'],
  ['S3_PRESIGN_TTL', '5m', 'lifetime of presigned download URLs'],
];

/** The environment as `--help` text. */
export function environmentHelp(): string {
  const width = Math.max(...ENVIRONMENT.map(([name]) => name.length));
  const lines = ENVIRONMENT.map(([name, fallback, meaning]) => `  ${name.padEnd(width)}  ${meaning} [${fallback}]`);
  return [
    'Environment (sizes take KiB/MiB/GiB suffixes, durations s/m/h; [default]):',
    ...lines,
    '',
    'S3 credentials come from the AWS SDK default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, roles).',
  ].join('\n');
}
