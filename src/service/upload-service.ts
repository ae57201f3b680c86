import type { DirectStore, PartTarget } from '../storage/direct-store.js';
import { createDirect, type DirectPartView, directPartUrl, directParts, reportPart } from './use-cases/direct.js';
import type { FastifyBaseLogger as Logger } from 'fastify';
import type { Config } from '../config.js';
import type { Chunk, FileChange, FileFilter, Ledger, LedgerEvent, ProcessingResult, StoredLocation, Upload } from '../ledger/ledger.js';
import { bodyBudget, descriptorLimit } from '../lib/descriptors.js';
import { createGcPacer } from '../lib/gc-pacer.js';
import { statFs, type StatFs } from '../storage/disk-space.js';
import type { Download, FileStore } from '../storage/file-store.js';
import type { StagingArea } from '../storage/staging-area.js';
import { HashWorker } from './hashing/hash-worker.js';
import { StoreDigests } from './hashing/store-digests.js';
import { RunningDigests } from './hashing/running-digest.js';
import { Intake } from './intake/intake.js';
import { Leases } from './intake/leases.js';
import { Publisher } from './publisher.js';
import { reconcile } from './reconcile.js';
import { TypePolicy } from './type-policy.js';
import { NO_HOOKS, type Hooks } from './hooks.js';
import type {
  AppendRequest,
  ChunkAddress,
  ChunkBody,
  ChunkReceipt,
  ComposeInput,
  CreateUploadInput,
  EventSink,
  ReconcileReport,
  StreamUploadInput,
} from './upload-types.js';
import { append } from './use-cases/append.js';
import { hasAllBytes, owned, type Context } from './use-cases/context.js';
import { createComposed, createGrid, createStream } from './use-cases/create.js';
import { abort, discard, terminate } from './use-cases/discard.js';
import { expire, expireDue, reopenAbandoned } from './use-cases/expire.js';
import { publishIfComplete, retryPublishing, startFinish } from './use-cases/finish.js';
import { receiveChunk } from './use-cases/receive-chunk.js';
import { events, processed, updateFile, waitProcessed } from './use-cases/processing.js';
import { completed, content, interrupted, missingChunks, missingCount, settled, status, stopAppends } from './use-cases/status.js';

export type * from './upload-types.js';

export interface ServiceDeps {
  config: Config;
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
  /** Where direct uploads go (the S3 backend); none with local storage. */
  direct?: DirectStore | undefined;
  log: Logger;
  now?: () => number;
  statfs?: StatFs;
  /** Told what happens (uploads created, bytes received, files published, ...). */
  events?: EventSink;
  /** The hashing thread (tests pass one with short idle times). */
  hashing?: HashWorker;
  /** The application's blocking hooks (HOOK_PRE_CREATE_URL, HOOK_PRE_PUBLISH_URL). */
  hooks?: Hooks;
}

/**
 * The one upload service, a facade over the use cases in `use-cases/`: protocol adapters (the
 * native API, tus, the IETF draft) translate HTTP into these calls, and nothing here knows about
 * HTTP or protocols. Uploads differ only by layout: `grid` (chunks in any order) or `stream`
 * (bytes appended at the end). The ledger is the truth for what has been received; the staging
 * area holds the bytes; the file store receives finished files; bytes come in only through the
 * intake (intake/intake.ts).
 */
export class UploadService {
  private readonly c: Context;
  private readonly hashing: HashWorker;
  /** Bodies written at once: MAX_CONCURRENT_BODIES, or what the descriptor limit allows. */
  readonly maxBodies: number;

  constructor(deps: ServiceDeps) {
    // Read through the global Date each time, so that a test clock can drive it.
    const now = deps.now ?? (() => Date.now());
    const emit = deps.events ?? (() => {});
    this.hashing = deps.hashing ?? new HashWorker();
    this.maxBodies = deps.config.maxConcurrentBodies || bodyBudget(descriptorLimit());
    const digests = new RunningDigests({
      hasher: this.hashing,
      pathOf: (id) => deps.staging.pathOf(id),
      recordedUntil: (id, from) => deps.ledger.recordedUntil(id, from),
      onError: (id, err) => deps.log.warn({ uploadId: id, err, event: 'digest_catch_up_failed' }, 'hashing received bytes failed; finishing reads them again'),
    });
    const leases = new Leases(now);
    const intake = new Intake({
      staging: deps.staging,
      hashing: this.hashing,
      digests,
      leases,
      gcPacer: createGcPacer(deps.config.gcEveryBytes),
      maxBodies: this.maxBodies,
      minBodyRate: deps.config.minBodyRate,
    });
    const typePolicy = deps.config.allowedTypes ? new TypePolicy(deps.config.allowedTypes) : undefined;
    const hooks = deps.hooks ?? NO_HOOKS;
    const c: Context = {
      config: deps.config,
      ledger: deps.ledger,
      staging: deps.staging,
      store: deps.store,
      log: deps.log,
      now,
      statfs: deps.statfs ?? statFs,
      emit,
      intake,
      digests,
      direct: deps.direct,
      directJobs: new Map(),
      storeDigests: new StoreDigests(),
      hooks,
      publisher: new Publisher({
        hooks,
        postProcess: deps.config.events.postProcessUrl !== undefined,
        ledger: deps.ledger,
        staging: deps.staging,
        store: deps.store,
        log: deps.log,
        now,
        typePolicy,
        emit,
        digests,
        discard: (id, how) => discard(c, id, how),
      }),
    };
    this.c = c;
    this.directBackend = deps.direct ? 'store' : 'local';
  }

  create = (owner: string, input: CreateUploadInput): Promise<Upload> => createGrid(this.c, owner, input);
  /** Direct uploads (see use-cases/direct.ts): the client sends parts straight to the store. */
  readonly directBackend: 'store' | 'local';
  createDirect = (owner: string, input: CreateUploadInput, partSha256?: string[]): Promise<Upload> => createDirect(this.c, owner, input, partSha256);
  directParts = (upload: Upload, from: number, limit: number): Promise<DirectPartView[]> => directParts(this.c, upload, from, limit);
  directPartUrl = (owner: string, id: string, index: number, sha256?: string): Promise<PartTarget> => directPartUrl(this.c, owner, id, index, sha256);
  /** Recorded chunks from index `from` on (a local direct upload's parts are its chunks). */
  receivedChunks = (upload: Upload, from: number, limit: number): Promise<Chunk[]> => this.c.ledger.chunks(upload.id, from, limit);
  reportPart = (owner: string, id: string, index: number, etag: string, sha256?: string): Promise<Upload> => reportPart(this.c, owner, id, index, etag, sha256);
  createStream = (owner: string, input: StreamUploadInput): Promise<Upload> => createStream(this.c, owner, input);
  createComposed = (owner: string, partIds: string[], input: ComposeInput): Promise<Upload> => createComposed(this.c, owner, partIds, input);

  get = (owner: string, id: string): Promise<Upload> => owned(this.c, owner, id);
  status = (owner: string, id: string): Promise<Upload> => status(this.c, owner, id);
  settled = (id: string): Promise<void> => settled(this.c, id);
  interrupted = (id: string): Promise<void> => interrupted(this.c, id);
  /** At shutdown: appends in flight record what arrived and are answered 503 (chunks go on). */
  stopAppends = (): Promise<void> => stopAppends(this.c);
  missingChunks = (upload: Upload, limit: number, from = 0): Promise<number[]> => missingChunks(this.c, upload, limit, from);
  missingCount = (upload: Upload): number => missingCount(upload);
  list = (owner: string, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]> => this.c.ledger.list(owner, limit, after);
  listFiles = (owner: string, filter: FileFilter, limit: number, after?: { createdAt: number; id: string }): Promise<Upload[]> =>
    this.c.ledger.listFiles(owner, filter, limit, after);
  completed = (owner: string, id: string): Promise<Upload & { location: StoredLocation }> => completed(this.c, owner, id);
  content = (upload: Upload & { location: StoredLocation }, range?: { start: number; end: number }): Promise<Download> => content(this.c, upload, range);
  hasAllBytes = (upload: Upload): Promise<boolean> => hasAllBytes(this.c, upload);
  /** Fraction of the file already verified and handed to the store while `finishing`. */
  finishProgress = (upload: Upload): number | undefined => this.c.publisher.progress(upload);

  receiveChunk = (owner: string, id: string, address: ChunkAddress, body: ChunkBody): Promise<ChunkReceipt> => receiveChunk(this.c, owner, id, address, body);
  append = (owner: string, id: string, req: AppendRequest): Promise<Upload> => append(this.c, owner, id, req);

  /** Finishes a grid upload (see use-cases/finish.ts); `done` settles when it is stored. */
  startFinish = (owner: string, id: string, sha256?: string, parts?: { index: number; etag: string }[]): Promise<{ upload: Upload; done: Promise<Upload> }> =>
    startFinish(this.c, owner, id, sha256, parts);
  async finish(owner: string, id: string, sha256?: string): Promise<Upload> {
    return (await this.startFinish(owner, id, sha256)).done;
  }
  publishIfComplete = (id: string): Promise<Upload> => publishIfComplete(this.c, id);
  retryPublishing = (): Promise<number> => retryPublishing(this.c);

  /** A post-processor's answer (use-cases/processing.ts). */
  processed = (id: string, result: ProcessingResult): Promise<Upload> => processed(this.c, id, result);
  waitProcessed = (upload: Upload, ms: number): Promise<Upload> => waitProcessed(this.c, upload, ms);
  updateFile = (owner: string, id: string, change: FileChange): Promise<Upload> => updateFile(this.c, owner, id, change);
  events = (owner: string, after: number, limit: number): Promise<LedgerEvent[]> => events(this.c, owner, after, limit);

  abort = (owner: string, id: string): Promise<void> => abort(this.c, owner, id);
  terminate = (owner: string, id: string): Promise<void> => terminate(this.c, owner, id);
  expire = (id: string): Promise<boolean> => expire(this.c, id);
  expireDue = (): Promise<number> => expireDue(this.c);
  /** Several nodes: finishes a stopped node left behind become finishable again. */
  reopenAbandoned = (): Promise<number> => reopenAbandoned(this.c);

  /** Start-up reconciliation of the ledger with the disk and the store (see reconcile.ts). */
  reconcile(): Promise<ReconcileReport> {
    const { ledger, staging, store, log, now } = this.c;
    return reconcile({ ledger, staging, store, log, now, node: this.c.config.node?.id });
  }

  /**
   * On shutdown: closes the staging files no request holds and stops the hashing thread (requests
   * still running then fail).
   */
  close(): Promise<void> {
    this.c.staging.close();
    return this.hashing.close();
  }
}
