import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger as Logger } from 'fastify';
import type { Config } from '../config.js';
import { SluiceError } from '../errors.js';
import type { Chunk, Extent, Ledger, NewUpload, StoredLocation, Upload } from '../ledger/ledger.js';
import type { Download, FileStore } from '../storage/file-store.js';
import type { StagingArea } from '../storage/staging-area.js';
import { createGcPacer, type GcPacer } from '../lib/gc-pacer.js';
import { chunkSpan, spanForRange, totalChunks, type Span } from './chunk-grid.js';
import { InFlight } from './in-flight.js';
import { Publisher } from './publisher.js';
import { RunningDigests } from './running-digest.js';
import { HashWorker, inlineHasher, type BodyHasher } from './hash-worker.js';
import { reconcile } from './reconcile.js';
import type {
  AppendRequest,
  ChunkAddress,
  ChunkBody,
  ChunkReceipt,
  ConcatInput,
  CreateUploadInput,
  EventSink,
  ReconcileReport,
  StreamUploadInput,
} from './upload-types.js';

export type * from './upload-types.js';
import { writeBody } from './body-writer.js';
import { TypePolicy } from './type-policy.js';
import { reserveMargin, statFs, type StatFs } from '../storage/disk-space.js';

/** Algorithms a trailer may name; all are computed while the body streams, one is checked. */
const TRAILER_ALGORITHMS = ['sha1', 'md5', 'sha256'];

export interface ServiceDeps {
  config: Config;
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
  log: Logger;
  now?: () => number;
  statfs?: StatFs;
  /** Told what happens (uploads created, bytes received, files published, ...). */
  events?: EventSink;
}

/**
 * The one upload service. Protocol adapters (the native API, tus) translate HTTP into these calls;
 * nothing here knows about HTTP. The ledger is the truth for what has been received; the staging
 * area holds the bytes; the file store receives finished files.
 */
export class UploadService {
  private readonly config: Config;
  private readonly ledger: Ledger;
  private readonly staging: StagingArea;
  private readonly store: FileStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly inFlight: InFlight;
  private readonly statfs: StatFs;
  private readonly publisher: Publisher;
  private readonly digests: RunningDigests;
  private readonly hasher: HashWorker;
  private readonly emit: EventSink;
  private readonly gcPacer: GcPacer;

  constructor(deps: ServiceDeps) {
    this.config = deps.config;
    this.ledger = deps.ledger;
    this.staging = deps.staging;
    this.store = deps.store;
    this.log = deps.log;
    this.now = deps.now ?? Date.now;
    this.inFlight = new InFlight(deps.config.takeoverAfterMs, this.now);
    const typePolicy = deps.config.allowedTypes ? new TypePolicy(deps.config.allowedTypes) : undefined;
    this.emit = deps.events ?? (() => {});
    this.gcPacer = createGcPacer(deps.config.gcEveryBytes);
    this.hasher = new HashWorker();
    this.digests = new RunningDigests({
      hasher: this.hasher,
      pathOf: (id) => this.staging.pathOf(id),
      recordedUntil: (id, from) => this.ledger.recordedUntil(id, from),
      onError: (id, err) => this.log.warn({ uploadId: id, err, event: 'digest_catch_up_failed' }, 'hashing received bytes failed; finishing reads them again'),
    });
    this.publisher = new Publisher({
      ledger: this.ledger,
      staging: this.staging,
      store: this.store,
      log: this.log,
      now: this.now,
      typePolicy,
      emit: this.emit,
      digests: this.digests,
    });
    this.statfs = deps.statfs ?? statFs;
  }

  async create(owner: string, input: CreateUploadInput): Promise<Upload> {
    const { config } = this;
    this.checkNew(input.fileName, input.size);
    const chunkSize = input.chunkSize ?? config.defaultChunkSize;
    if (chunkSize < config.minChunkSize || chunkSize > config.maxChunkSize) {
      throw new SluiceError('chunk_size_out_of_range', `chunk_size must be between ${config.minChunkSize} and ${config.maxChunkSize} bytes`, {
        min_chunk_size: config.minChunkSize,
        max_chunk_size: config.maxChunkSize,
      });
    }
    const chunks = totalChunks(input.size, chunkSize);
    if (chunks > config.maxChunks) {
      throw new SluiceError('too_many_chunks', `${chunks} chunks of ${chunkSize} bytes exceed the limit of ${config.maxChunks}; use a larger chunk_size`, {
        max_chunks: config.maxChunks,
      });
    }
    const id = randomUUID();
    const now = this.now();
    await this.staging.create(id, input.size);
    try {
      return await this.insert({
        id,
        owner,
        protocol: 'native',
        fileName: input.fileName,
        contentType: input.contentType ?? 'application/octet-stream',
        metadata: input.metadata ?? {},
        size: input.size,
        chunkSize,
        totalChunks: chunks,
        expectedSha256: input.sha256 ?? null,
        createdAt: now,
        expiresAt: now + config.uploadTtlMs,
      });
    } catch (err) {
      await this.staging.remove(id);
      throw err;
    }
  }

  /**
   * Inserts a new upload within its owner's limits (MAX_ACTIVE_UPLOADS_PER_USER, USER_QUOTA) and
   * within the disk's free space (DISK_RESERVE kept free), before any byte is accepted.
   */
  private async insert(u: NewUpload): Promise<Upload> {
    const { free, total } = await this.statfs(this.config.dataDir);
    const disk = { free, margin: reserveMargin(total, this.config.diskReserve) };
    const result = this.ledger.createWithin(u, { maxActive: this.config.maxActiveUploadsPerUser, quota: this.config.userQuota }, disk);
    switch (result.kind) {
      case 'created':
        this.emit({ type: 'created', protocol: result.upload.protocol });
        return result.upload;
      case 'no_space':
        throw new SluiceError('insufficient_storage', `${u.size} bytes do not fit: ${result.free} free, ${result.outstanding} promised to unfinished uploads, ${disk.margin} kept in reserve`);
      case 'too_many':
        throw new SluiceError('too_many_uploads', `${result.active} unfinished uploads: finish or abort some first`, {
          max_active_uploads: this.config.maxActiveUploadsPerUser,
        });
      case 'over_quota':
        throw this.quotaExceeded(result.reserved);
    }
  }

  private quotaExceeded(reserved: number, what = 'the upload'): SluiceError {
    return new SluiceError('quota_exceeded', `${what} does not fit: ${reserved} bytes are already reserved by unfinished uploads`, {
      user_quota: this.config.userQuota,
      reserved,
    });
  }

  /** Rules every new upload follows, whatever the protocol. */
  private checkNew(fileName: string, size: number | undefined): void {
    // file_name is metadata only (paths come from the id), but it is echoed in headers, listings
    // and downloads, so it must be a plain name: 1-255 bytes of UTF-8, no control or bidi
    // characters (which can disguise "gpj.exe" as "exe.jpg"), no path separators, not . or ..
    if (
      Buffer.byteLength(fileName, 'utf8') > 255 ||
      fileName.length === 0 ||
      UNSAFE_NAME_CHARS.test(fileName) ||
      fileName === '.' ||
      fileName === '..'
    ) {
      throw new SluiceError('invalid_request', 'file_name must be a plain file name: 1 to 255 bytes of UTF-8, no control characters, no / or \\');
    }
    if (size !== undefined && size > this.config.maxUploadSize) {
      throw new SluiceError('upload_too_large', `size ${size} exceeds the maximum of ${this.config.maxUploadSize} bytes`, {
        max_upload_size: this.config.maxUploadSize,
      });
    }
  }

  /** The upload as its owner sees it; another owner's upload is indistinguishable from none. */
  get(owner: string, id: string): Upload {
    const upload = this.ledger.getUpload(id);
    if (!upload || upload.owner !== owner) throw new SluiceError('not_found', `no upload ${id}`);
    return upload;
  }

  /**
   * Like `get`, and expires the upload on the spot if its time is up (the sweeper may not have run).
   * A tus upload whose PATCH has just ended (or broken off) is answered once that PATCH has recorded
   * its durable bytes, so that a client resuming after a network error reads the offset it must
   * continue from, not one that moves under it.
   */
  async status(owner: string, id: string): Promise<Upload> {
    let upload = this.get(owner, id);
    const settling = upload.protocol === 'tus' ? this.inFlight.settling(appendKey(id)) : undefined;
    if (settling) {
      await settling;
      upload = this.get(owner, id);
    }
    if (upload.status === 'uploading' && upload.expiresAt <= this.now()) {
      await this.expire(id);
      return this.get(owner, id);
    }
    return upload;
  }

  /** Missing chunk indexes from `from` on, ascending, at most `limit` of them. */
  missingChunks(upload: Upload, limit: number, from = 0): number[] {
    return canMissChunks(upload) ? this.ledger.missingChunks(upload.id, upload.totalChunks, limit, from) : [];
  }

  missingCount(upload: Upload): number {
    return canMissChunks(upload) ? upload.totalChunks - upload.chunksReceived : 0;
  }

  /**
   * Receives one chunk: streams the body into the staging file at the chunk's offset while hashing
   * it, makes it durable (fdatasync), verifies it, and only then records it in the ledger. A chunk
   * that is already recorded is hashed but never rewritten: the same bytes are an idempotent retry,
   * other bytes a conflict.
   */
  async receiveChunk(owner: string, id: string, address: ChunkAddress, body: ChunkBody): Promise<ChunkReceipt> {
    const upload = await this.requireWritable(owner, id);
    const span = this.resolveSpan(upload, address);
    if (body.declaredLength !== undefined && body.declaredLength !== span.length) {
      throw new SluiceError('chunk_length_mismatch', `chunk ${span.index} is ${span.length} bytes, the request declares ${body.declaredLength}`, {
        expected_length: span.length,
      });
    }

    const started = this.now();
    const writer = await this.inFlight.acquire(`${id}:${span.index}`, () =>
      body.stream.destroy(new SluiceError('chunk_in_progress', 'taken over by a newer request for the same chunk')),
    );
    // The body's hasher is told, whatever happens, that nothing more of it will be recorded.
    let settle = (): void => {};
    try {
      const existing = this.ledger.getChunk(id, span.index);
      if (existing && body.sha256 !== undefined && body.sha256 !== existing.sha256) {
        throw new SluiceError('chunk_conflict', `chunk ${span.index} was already received with SHA-256 ${existing.sha256}`, {
          index: span.index,
        });
      }
      // A recorded chunk is only hashed (to tell a retry from a conflict), never rewritten.
      const file = existing ? null : await this.staging.openForWrite(id);
      // The chunk's own SHA-256 is checked and recorded; a chunk that continues the whole-file
      // digest also feeds it from the same reads.
      const chunkHasher = file ? this.hasherFor(id, span.offset, span.length, [], true) : inlineHasher();
      settle = () => chunkHasher.settle();
      let written;
      try {
        written = await writeBody(file?.fh ?? null, body.stream, { offset: span.offset, max: span.length, touch: writer.touch, received: this.gcPacer, hasher: chunkHasher });
      } finally {
        file?.release();
      }
      // A chunk is all or nothing: a body cut short leaves nothing recorded.
      if (written.error !== undefined) throw written.error;
      if (written.overflow || written.bytes !== span.length) {
        throw new SluiceError('chunk_length_mismatch', `chunk ${span.index} is ${span.length} bytes, the body ${written.overflow ? 'is longer' : `had ${written.bytes}`}`, {
          expected_length: span.length,
        });
      }
      const sha256 = written.sha256;
      if (body.sha256 !== undefined && body.sha256 !== sha256) {
        throw new SluiceError('checksum_mismatch', `chunk ${span.index} hashes to ${sha256}, the client sent ${body.sha256}`, {
          index: span.index,
          sha256,
        });
      }
      const chunk: Chunk = { index: span.index, offset: span.offset, length: span.length, sha256, receivedAt: this.now() };
      const result = await this.ledger.recordChunk(id, chunk);
      switch (result.kind) {
        case 'recorded':
          chunkHasher.recorded(span.offset + span.length);
          this.digests.recorded(id);
          this.emit({ type: 'received', protocol: 'native', bytes: span.length, seconds: (this.now() - started) / 1000 });
          return { chunk, upload: result.upload, created: true };
        case 'duplicate':
          return { chunk: this.ledger.getChunk(id, span.index) as Chunk, upload: result.upload, created: false };
        case 'conflict':
          throw new SluiceError('chunk_conflict', `chunk ${span.index} was already received with different bytes`, { index: span.index });
        case 'not_writable':
          throw notWritable(result.upload ?? upload);
      }
    } finally {
      settle();
      writer.release();
    }
  }

  /**
   * Finishes an upload: every chunk must be present; the whole file is hashed in one read that also
   * feeds the store, and only a verified file is published. Finishing a completed upload returns it
   * again; a finish already running in this process is joined, not repeated.
   */
  async finish(owner: string, id: string, sha256?: string): Promise<Upload> {
    return (await this.startFinish(owner, id, sha256)).done;
  }

  /**
   * Checks that the upload can be finished and starts the job. Rejects at once for what the caller
   * must fix (missing chunks, no SHA-256, wrong state); `done` settles when the file is stored or
   * storing failed. The job belongs to the service, not to a request: a client that disconnects
   * does not cancel it.
   */
  async startFinish(owner: string, id: string, sha256?: string): Promise<{ upload: Upload; done: Promise<Upload> }> {
    const upload = await this.status(owner, id);
    if (upload.status === 'completed') {
      if (sha256 !== undefined && sha256 !== upload.sha256) {
        throw new SluiceError('file_checksum_mismatch', `the upload completed with SHA-256 ${upload.sha256}`, { sha256: upload.sha256 });
      }
      return { upload, done: Promise.resolve(upload) };
    }
    const running = this.publisher.job(id);
    if (running) return { upload, done: running };
    if (upload.status !== 'uploading') throw notWritable(upload);
    requireNative(upload);

    if (sha256 !== undefined && upload.expectedSha256 !== null && sha256 !== upload.expectedSha256) {
      throw new SluiceError('invalid_request', `sha256 differs from the one given when the upload was created (${upload.expectedSha256})`);
    }
    const expected = sha256 ?? upload.expectedSha256;
    if (expected === null) throw new SluiceError('sha256_required', 'give the whole-file sha256 when creating or finishing the upload');

    const missing = this.ledger.missingChunks(id, upload.totalChunks, 1000);
    if (missing.length > 0) {
      throw new SluiceError('chunks_missing', `${upload.totalChunks - upload.chunksReceived} of ${upload.totalChunks} chunks are missing`, {
        missing_chunks: missing,
      });
    }
    if (!this.ledger.transition(id, 'uploading', 'finishing', this.now())) {
      // Another request moved it first: join its job, or report the state it reached.
      return this.startFinish(owner, id, sha256);
    }
    const done = this.publisher.start(upload, expected);
    return { upload: this.ledger.getUpload(id) as Upload, done };
  }

  // ---------------------------------------------------------------------------------------------
  // Uploads that grow at their end (tus). Same ledger, same staging file, same publishing.

  /**
   * Creates an upload whose bytes are appended in order. `size` undefined defers the length
   * (tus creation-defer-length): the staging file then grows as bytes arrive.
   */
  async createStream(owner: string, input: StreamUploadInput): Promise<Upload> {
    this.checkNew(input.fileName, input.size);
    const id = randomUUID();
    const now = this.now();
    await this.staging.create(id, input.size ?? 0);
    try {
      return await this.insert({
        id,
        owner,
        protocol: 'tus',
        fileName: input.fileName,
        contentType: input.contentType,
        metadata: input.metadata,
        size: input.size ?? 0,
        chunkSize: Math.max(input.size ?? 1, 1),
        totalChunks: 0,
        expectedSha256: null,
        createdAt: now,
        expiresAt: now + this.config.uploadTtlMs,
        lengthDeferred: input.size === undefined,
        tusMetadata: input.tusMetadata,
        concat: input.partial ? 'partial' : null,
      });
    } catch (err) {
      await this.staging.remove(id);
      throw err;
    }
  }

  /**
   * Creates a final upload that concatenates partial uploads in order (tus concatenation). It has
   * no bytes of its own; it is published, straight from the partials' files, once they are all
   * complete - now, or when the last one completes (concatenation-unfinished).
   */
  async createConcatenation(owner: string, partIds: string[], input: ConcatInput): Promise<Upload> {
    this.checkNew(input.fileName, undefined);
    if (partIds.length === 0) throw new SluiceError('invalid_request', 'a final upload needs at least one partial upload');
    if (new Set(partIds).size !== partIds.length) throw new SluiceError('invalid_request', 'a partial upload appears twice');
    let size = 0;
    for (const partId of partIds) {
      const part = this.ledger.getUpload(partId);
      if (!part || part.owner !== owner) throw new SluiceError('invalid_request', `no partial upload ${partId}`);
      if (part.concat !== 'partial') throw new SluiceError('invalid_request', `upload ${partId} is not a partial upload`);
      if (part.status !== 'uploading') throw new SluiceError('invalid_request', `partial upload ${partId} is ${part.status}`);
      if (part.lengthDeferred) throw new SluiceError('invalid_request', `partial upload ${partId} has no length yet`);
      size += part.size;
    }
    this.checkNew(input.fileName, size);
    const now = this.now();
    const upload = await this.insert({
      id: randomUUID(),
      owner,
      protocol: 'tus',
      fileName: input.fileName,
      contentType: input.contentType,
      metadata: input.metadata,
      size,
      chunkSize: Math.max(size, 1),
      totalChunks: 0,
      expectedSha256: null,
      createdAt: now,
      expiresAt: now + this.config.uploadTtlMs,
      tusMetadata: input.tusMetadata,
      concat: input.concat,
      parts: partIds,
    });
    return this.publishIfComplete(upload.id);
  }

  /** True when every byte of the upload (or of all its partials) has been received. */
  hasAllBytes(upload: Upload): boolean {
    if (upload.parts) {
      return upload.parts.every((partId) => {
        const part = this.ledger.getUpload(partId);
        return part !== undefined && part.status === 'uploading' && !part.lengthDeferred && part.bytesReceived === part.size;
      });
    }
    return !upload.lengthDeferred && upload.bytesReceived === upload.size;
  }

  /**
   * Appends bytes at `offset`, which must be the upload's current end. What arrives is written and
   * made durable; bytes of a request that is cut short still count (tus semantics) - unless the
   * client sent a checksum, which the partial body cannot match, so then nothing is recorded. A
   * newer request for the same upload takes over from an older one still attached to a dead
   * connection. When the last byte arrives the upload is published before this returns.
   */
  async append(owner: string, id: string, req: AppendRequest): Promise<Upload> {
    let upload = await this.status(owner, id);
    if (upload.protocol !== 'tus') throw new SluiceError('not_found', `upload ${id} was created with the native API`);
    if (upload.parts) throw new SluiceError('concat_final_immutable', 'a final upload is made of its partial uploads and takes no bytes itself');
    if (upload.status !== 'uploading') {
      if (upload.status === 'completed' && req.offset !== upload.size) {
        throw new SluiceError('offset_mismatch', `the upload is complete at offset ${upload.size}`, { offset: upload.size });
      }
      throw notWritable(upload);
    }
    if (req.length !== undefined) upload = await this.fixLength(upload, req.length);

    const started = this.now();
    const writer = await this.inFlight.acquire(
      appendKey(id),
      () => req.stream.destroy(new SluiceError('offset_mismatch', 'taken over by a newer request for the same upload')),
      0,
      () => req.stream.destroyed || req.stream.readableEnded,
    );
    // The body's hasher is told, whatever happens, that nothing more of it will be recorded.
    let settle = (): void => {};
    try {
      // Read again: a request that was just taken over may have recorded its durable bytes.
      upload = this.ledger.getUpload(id) as Upload;
      if (upload.status !== 'uploading') throw notWritable(upload);
      if (req.offset !== upload.bytesReceived) {
        throw new SluiceError('offset_mismatch', `Upload-Offset is ${req.offset}, the upload is at ${upload.bytesReceived}`, { offset: upload.bytesReceived });
      }
      const room = (upload.lengthDeferred ? this.config.maxUploadSize : upload.size) - req.offset;
      // An upload without a length reserves nothing up front: its bytes count against USER_QUOTA as
      // they arrive, so the body may not take more than the quota leaves (the ledger checks again
      // when it records them).
      const quota = this.config.userQuota;
      const reserved = upload.lengthDeferred && quota !== undefined ? this.ledger.reserved(upload.owner) : 0;
      const quotaRoom = upload.lengthDeferred && quota !== undefined ? Math.max(0, quota - reserved) : Infinity;
      const limit = Math.min(room, quotaRoom);
      const tooMuch = (body: string): SluiceError =>
        quotaRoom < room ? this.quotaExceeded(reserved, body) : new SluiceError('upload_too_large', `${body} runs past the end of the upload (${room} bytes left)`);
      if (req.declaredLength !== undefined && req.declaredLength > limit) throw tooMuch(`the body (${req.declaredLength} bytes)`);
      const algorithms = req.checksum ? ('trailer' in req.checksum ? TRAILER_ALGORITHMS : [req.checksum.algorithm]) : [];
      const file = await this.staging.openForWrite(id);
      // Keyed by the upload: appends continue its whole-file digest, hashing each byte once; the
      // extents are recorded with that digest (of [0, end)) instead of their own.
      const appendHasher = this.hasherFor(id, req.offset, req.declaredLength, algorithms, false);
      settle = () => appendHasher.settle();
      let written;
      try {
        written = await writeBody(file.fh, req.stream, {
          offset: req.offset,
          max: limit,
          touch: writer.touch,
          received: this.gcPacer,
          hasher: appendHasher,
          // A checksummed body is all or nothing; any other long body is made durable as it goes.
          ...(!req.checksum && {
            checkpoint: {
              every: APPEND_CHECKPOINT_BYTES,
              record: async (segment) => {
                upload = await this.recordAppended(upload, segment, started, appendHasher);
              },
            },
          }),
        });
      } finally {
        file.release();
      }
      if (req.checksum) {
        // tus checksum: "the uploaded chunk MUST be discarded, and the upload and its offset MUST NOT be updated"
        if (written.error !== undefined) throw written.error;
        const expected = 'trailer' in req.checksum ? req.checksum.trailer() : req.checksum;
        const digest = written.checks.get(expected.algorithm);
        if (!digest) throw new SluiceError('checksum_algorithm_unsupported', `checksum algorithm ${expected.algorithm} is not supported`);
        if (!digest.equals(expected.digest)) {
          throw new SluiceError('checksum_mismatch', `the body's ${expected.algorithm} is ${digest.toString('base64')}`);
        }
      }
      if (written.bytes > written.segmentStart) {
        const extent = { offset: req.offset + written.segmentStart, length: written.bytes - written.segmentStart, sha256: written.sha256, sha256From: written.sha256From };
        upload = await this.recordAppended(upload, extent, started, appendHasher);
      }
      if (written.error !== undefined) throw written.error;
      if (written.overflow) throw tooMuch('the body');
    } finally {
      settle();
      writer.release();
    }
    if (req.complete) {
      if (upload.lengthDeferred) upload = await this.fixLength(upload, upload.bytesReceived);
      else if (upload.bytesReceived !== upload.size) {
        throw new SluiceError('invalid_request', `the upload was declared complete at ${upload.bytesReceived} of ${upload.size} bytes`, { offset: upload.bytesReceived });
      }
    }
    if (this.hasAllBytes(upload)) {
      if (upload.concat === 'partial') {
        for (const finalId of this.ledger.finalsUsing(id)) await this.publishIfComplete(finalId);
        return this.ledger.getUpload(id) as Upload;
      }
      return this.publishIfComplete(id);
    }
    return upload;
  }

  /**
   * Records durable appended bytes as one extent; throws if the upload moved on or closed.
   */
  private async recordAppended(upload: Upload, extent: Extent, started: number, hasher: BodyHasher): Promise<Upload> {
    const result = await this.ledger.recordExtent(upload.id, extent, this.now(), this.config.userQuota);
    if (result.kind === 'over_quota') throw this.quotaExceeded(result.reserved, `${extent.length} more bytes`);
    if (result.kind === 'offset_moved') throw new SluiceError('offset_mismatch', 'the upload moved on meanwhile', { offset: result.upload.bytesReceived });
    if (result.kind === 'not_writable') throw notWritable(result.upload ?? upload);
    hasher.recorded(extent.offset + extent.length);
    this.digests.recorded(upload.id);
    this.emit({ type: 'received', protocol: 'tus', bytes: extent.length, seconds: (this.now() - started) / 1000 });
    return result.upload;
  }

  /** Sets a deferred length once the client knows it; a known length can only be repeated. */
  private async fixLength(upload: Upload, length: number): Promise<Upload> {
    if (!upload.lengthDeferred) {
      if (length !== upload.size) throw new SluiceError('invalid_request', `Upload-Length is ${upload.size} and cannot change`);
      return upload;
    }
    this.checkNew(upload.fileName, length);
    if (length < upload.bytesReceived) throw new SluiceError('invalid_request', `Upload-Length ${length} is less than the ${upload.bytesReceived} bytes already received`);
    const result = this.ledger.setLength(upload.id, length, this.now(), this.config.userQuota);
    if (result.kind === 'over_quota') throw this.quotaExceeded(result.reserved, `Upload-Length ${length}`);
    if (result.kind === 'unchanged') return this.ledger.getUpload(upload.id) as Upload;
    await this.staging.resize(upload.id, length);
    return this.ledger.getUpload(upload.id) as Upload;
  }

  /**
   * Publishes an upload that has all its bytes (joining a job already running); otherwise returns it
   * as it is. The digest comes from the running digest.
   */
  async publishIfComplete(id: string): Promise<Upload> {
    const joined = this.publisher.job(id);
    if (joined) return joined;
    const upload = this.ledger.getUpload(id);
    if (!upload || upload.status !== 'uploading' || !this.hasAllBytes(upload)) return upload as Upload;
    if (!this.ledger.transition(id, 'uploading', 'finishing', this.now())) return this.publisher.job(id) ?? (this.ledger.getUpload(id) as Upload);
    return this.publisher.start(this.ledger.getUpload(id) as Upload, null);
  }

  /**
   * tus termination: an unfinished upload is aborted; a completed one has its stored file removed.
   * Either way the upload is gone for all later requests.
   */
  async terminate(owner: string, id: string): Promise<void> {
    const upload = await this.status(owner, id);
    if (upload.status === 'completed' && upload.location && upload.concat !== 'partial') {
      if (!this.ledger.terminateCompleted(id, this.now())) throw notWritable(this.get(owner, id));
      await this.store.delete(upload.location);
      this.log.info({ uploadId: id, event: 'upload_terminated' }, 'completed upload terminated');
      return;
    }
    if (upload.status === 'failed' && this.ledger.transition(id, 'failed', 'aborted', this.now())) return;
    await this.abort(owner, id);
  }

  /** Publishes tus uploads that have every byte but were not published (a store outage, a crash). */
  async retryPublishing(): Promise<number> {
    let started = 0;
    for (const id of this.ledger.awaitingPublish()) {
      if (this.publisher.job(id) !== undefined) continue;
      const upload = this.ledger.getUpload(id);
      if (!upload || !this.hasAllBytes(upload)) continue;
      started++;
      await this.publishIfComplete(id).catch((err: unknown) => this.log.warn({ uploadId: id, err, event: 'publish_retry_failed' }, 'publishing again failed'));
    }
    return started;
  }


  /** Aborts an upload that is still being uploaded; aborting an aborted upload is a no-op. */
  async abort(owner: string, id: string): Promise<void> {
    const upload = await this.status(owner, id);
    if (upload.status === 'aborted') return;
    if (upload.status === 'expired') throw new SluiceError('upload_expired');
    if (upload.status !== 'uploading' || !this.ledger.transition(id, 'uploading', 'aborted', this.now())) {
      throw notWritable(this.get(owner, id));
    }
    this.ledger.deleteChunks(id);
    this.digests.forget(id);
    await this.staging.remove(id);
    this.log.info({ uploadId: id, event: 'upload_aborted' }, 'upload aborted');
    this.emit({ type: 'aborted' });
  }

  list(owner: string, limit: number, after?: { createdAt: number; id: string }): Upload[] {
    return this.ledger.listUploads(owner, limit, after);
  }

  /** A completed upload of this owner, ready to be read; anything else is `upload_not_completed`. */
  completed(owner: string, id: string): Upload & { location: StoredLocation } {
    const upload = this.get(owner, id);
    if (upload.status !== 'completed' || upload.location === null) {
      throw new SluiceError('upload_not_completed', `upload ${id} is ${upload.status}`, { upload_status: upload.status });
    }
    return upload as Upload & { location: StoredLocation };
  }

  /** Reads a completed upload's bytes (or a range of them) from its store. */
  content(upload: Upload & { location: StoredLocation }, range?: { start: number; end: number }): Promise<Download> {
    return this.store.read(upload.location, range, { fileName: upload.fileName, contentType: upload.contentType });
  }

  /** Expires one upload if it is still uploading; removes its staging bytes. */
  async expire(id: string): Promise<boolean> {
    if (!this.ledger.transition(id, 'uploading', 'expired', this.now())) return false;
    this.ledger.deleteChunks(id);
    this.digests.forget(id);
    await this.staging.remove(id);
    this.log.info({ uploadId: id, event: 'upload_expired' }, 'upload expired');
    this.emit({ type: 'expired' });
    return true;
  }

  /**
   * The hasher for a body about to be written at `offset`: the hashing thread, except for a body
   * known to be small, which is hashed here as it arrives - for 64 KiB the thread's messages cost
   * the event loop more than hashing the bytes does (BENCHMARKS.md item 14). `segment`: whether
   * the body's own SHA-256 is wanted (a chunk's, checked against `X-Chunk-Sha256`) or, when the body
   * continues the whole-file digest, that digest of [0, end) will do (an append's extent).
   */
  private hasherFor(id: string, offset: number, length: number | undefined, algorithms: string[], segment: boolean): BodyHasher {
    if (length !== undefined && length <= INLINE_HASH_MAX) return inlineHasher(algorithms);
    // Keyed by the upload: a body that starts where its whole-file digest ends continues it.
    return this.hasher.job(this.staging.pathOf(id), offset, algorithms, { key: id, segment });
  }

  /**
   * On shutdown: closes the staging files no request holds and stops the hashing thread (requests
   * still running then fail).
   */
  close(): Promise<void> {
    this.staging.close();
    return this.hasher.close();
  }

  /** Expires every upload whose time is up; returns how many. Used by the sweeper and `npm run cleanup`. */
  async expireDue(): Promise<number> {
    let count = 0;
    for (;;) {
      const ids = this.ledger.dueForExpiry(this.now(), 100);
      if (ids.length === 0) return count;
      for (const id of ids) if (await this.expire(id)) count++;
    }
  }

  /** Start-up reconciliation of the ledger with the disk and the store (see reconcile.ts). */
  reconcile(): Promise<ReconcileReport> {
    return reconcile({ ledger: this.ledger, staging: this.staging, store: this.store, log: this.log, now: this.now });
  }

  /** Fraction of the file already verified and handed to the store while `finishing`. */
  finishProgress(upload: Upload): number | undefined {
    return this.publisher.progress(upload);
  }

  private async requireWritable(owner: string, id: string): Promise<Upload> {
    const upload = await this.status(owner, id);
    if (upload.status !== 'uploading') throw notWritable(upload);
    requireNative(upload);
    return upload;
  }

  private resolveSpan(upload: Upload, address: ChunkAddress): Span {
    if ('index' in address) {
      const span = chunkSpan(upload, address.index);
      if (!span) throw new SluiceError('invalid_range', `chunk index must be from 0 to ${upload.totalChunks - 1}`, { total_chunks: upload.totalChunks });
      return span;
    }
    const { first, last, size } = address.range;
    if (size !== upload.size) {
      throw new SluiceError('invalid_range', `the Content-Range total ${size} is not the upload size ${upload.size}`);
    }
    const span = spanForRange(upload, first, last);
    if (!span) {
      throw new SluiceError('invalid_range', `bytes ${first}-${last} is not exactly one chunk of ${upload.chunkSize} bytes`, {
        chunk_size: upload.chunkSize,
      });
    }
    return span;
  }
}

/** A long append is made durable and recorded every this many bytes (tus PATCH, IETF append). */
const APPEND_CHECKPOINT_BYTES = 16 * 1024 * 1024;
/** Bodies up to this size are hashed on the event loop instead of the hashing thread. */
const INLINE_HASH_MAX = 128 * 1024;

// C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings, overrides and isolates,
// zero-width characters and the BOM, and path separators.
const UNSAFE_NAME_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff/\\]/;

function requireNative(upload: Upload): void {
  if (upload.protocol !== 'native') {
    throw new SluiceError('upload_not_writable', `upload ${upload.id} is a ${upload.protocol} upload: it is written and finished through its ${upload.protocol} URL`, {
      upload_status: upload.status,
    });
  }
}

/** tus uploads grow at their end and completed ones have everything: no grid of chunks to miss. */
function canMissChunks(upload: Upload): boolean {
  return upload.status !== 'completed' && upload.protocol === 'native';
}

function notWritable(upload: Upload): SluiceError {
  if (upload.status === 'expired') return new SluiceError('upload_expired', `upload ${upload.id} expired`);
  return new SluiceError('upload_not_writable', `upload ${upload.id} is ${upload.status}`, { upload_status: upload.status });
}

/** The in-flight key of the one request appending to an upload at a time (tus, IETF). */
function appendKey(id: string): string {
  return `${id}:append`;
}
