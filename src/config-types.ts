/** The shape of sluice's configuration (loaded and validated by config.ts). */

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
  /** A body slower than this many bytes per window ends with 408 (a trickle guard); undefined: off. */
  minBodyRate: { bytes: number; windowMs: number } | undefined;
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
  /**
   * Request bodies (chunks, appends) written at once; beyond it a request is answered 503 before
   * anything is opened. 0: derived from the process's descriptor limit at start-up.
   */
  maxConcurrentBodies: number;
  /** Bytes one user may have in unfinished uploads at once; undefined for no limit. */
  userQuota: number | undefined;
  /** MIME patterns (`image/*`, `application/pdf`) a finished file must match; undefined for any. */
  allowedTypes: string[] | undefined;
  /** Lifetime of a direct upload's part URLs (presigned S3 requests, or this server's signed chunk URLs). */
  directUrlTtlMs: number;
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
  /**
   * Where uploads are staged until finish: `local` (DATA_DIR/staging) or `s3` (each chunk or part
   * streamed into a part of a multipart upload in the bucket; no staging file on local disk).
   */
  stagingBackend: 'local' | 's3';
  events: EventsConfig;
  /**
   * A native upload's finish needs the whole-file SHA-256 (at creation or finish); false: without
   * one the file is stored with the digest the server computes (its chunks' digests were recorded).
   */
  requireFileSha256: boolean;
  /** A PostgreSQL ledger shared by several nodes (DATABASE_URL); undefined: SQLite in DATA_DIR. */
  databaseUrl: string | undefined;
  /**
   * This node among several on one shared ledger (DATABASE_URL): NODE_ID names it (stable across
   * restarts), NODE_URL is where other nodes send clients of uploads staged on its disk (undefined:
   * PUBLIC_URL, else the address it listens on). Undefined with the embedded ledger.
   */
  node: { id: string; url: string | undefined } | undefined;
}

/** Events for applications: the outbox, webhooks, blocking hooks and post-processing. */
export interface EventsConfig {
  webhookUrls: string[];
  /** Standard Webhooks secret (`whsec_...`) that signs every webhook, hook call and processing request. */
  secret: string | undefined;
  /** A webhook is retried (backoff from retryMinMs, with jitter) until this long after its event. */
  retryForMs: number;
  retryMinMs: number;
  timeoutMs: number;
  /** Events are kept this long for GET /v1/events (longer while a delivery still waits for one). */
  retentionMs: number;
  /** An `upload.progress` event at most this often per upload; 0: none. */
  progressIntervalMs: number;
  hooks: {
    preCreateUrl: string | undefined;
    prePublishUrl: string | undefined;
    timeoutMs: number;
    /** An unreachable hook lets the request through (instead of a retryable 503). */
    failOpen: boolean;
  };
  /** Stored uploads go to `processing` and this processor is told (a durable, signed delivery). */
  postProcessUrl: string | undefined;
  /** The service token the processor answers with (POST /v1/uploads/:id/processing). */
  processorToken: string | undefined;
}

export type MemoryProfile = 'small' | 'fast';

export interface AuthConfig {
  /** Static bearer tokens → user names (AUTH_TOKENS and AUTH_TOKENS_FILE). */
  tokens: Map<string, string>;
  jwt:
    | {
        secret: string | undefined;
        jwksUrl: string | undefined;
        issuer: string | undefined;
        audience: string | undefined;
        /** JWT_REQUIRE_EXP: a token without `exp` is refused. */
        requireExp: boolean;
      }
    | undefined;
  /**
   * OAuth 2 token introspection (RFC 7662): opaque bearer tokens are asked about at `url` with the
   * client's credentials; an active token's `sub` is the user. Answers are kept `cacheMs` (never
   * past the token's `exp`).
   */
  introspection: { url: string; clientId: string; clientSecret: string; cacheMs: number } | undefined;
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
