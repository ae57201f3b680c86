import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger as Logger } from 'fastify';
import type { Config } from '../config.js';
import { SluiceError, isSluiceError } from '../errors.js';
import type { Chunk, Ledger, Upload } from '../ledger/ledger.js';
import type { Download, FileStore } from '../storage/file-store.js';
import type { StagingArea } from '../storage/staging-area.js';
import { chunkSpan, spanForRange, totalChunks, type Span } from './chunk-grid.js';
import { InFlight } from './in-flight.js';
import { verifying } from './verifying-stream.js';

export interface CreateUploadInput {
  fileName: string;
  size: number;
  sha256?: string | undefined;
  chunkSize?: number | undefined;
  contentType?: string | undefined;
  metadata?: Record<string, string> | undefined;
}

/** How a chunk is addressed: by grid index, or by an exact byte range (`Content-Range`). */
export type ChunkAddress = { index: number } | { range: { first: number; last: number; size: number } };

export interface ChunkBody {
  /** The bytes; the service reads it once and destroys it if another writer takes over. */
  stream: Readable;
  /** The length the client declared (Content-Length), when it declared one. */
  declaredLength?: number | undefined;
  /** Client-supplied SHA-256 of the chunk, lowercase hex. */
  sha256?: string | undefined;
}

export interface ChunkReceipt {
  chunk: Chunk;
  upload: Upload;
  /** False when this exact chunk had already been recorded (an idempotent retry). */
  created: boolean;
}

export interface ServiceDeps {
  config: Config;
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
  log: Logger;
  now?: () => number;
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
  /** Finish jobs running in this process, so a second finish joins the first. */
  private readonly finishing = new Map<string, Promise<Upload>>();
  /** Bytes verified and handed to the store so far, per finishing upload (for status). */
  private readonly finishBytes = new Map<string, number>();

  constructor(deps: ServiceDeps) {
    this.config = deps.config;
    this.ledger = deps.ledger;
    this.staging = deps.staging;
    this.store = deps.store;
    this.log = deps.log;
    this.now = deps.now ?? Date.now;
    this.inFlight = new InFlight(deps.config.takeoverAfterMs, this.now);
  }

  async create(owner: string, input: CreateUploadInput): Promise<Upload> {
    const { config } = this;
    // file_name is metadata only (paths come from the id), but it must be safe to echo back in
    // headers and listings: at most 255 bytes of UTF-8, no control characters.
    if (Buffer.byteLength(input.fileName, 'utf8') > 255 || CONTROL_CHARS.test(input.fileName) || input.fileName.length === 0) {
      throw new SluiceError('invalid_request', 'file_name must be 1 to 255 bytes of UTF-8 without control characters');
    }
    if (input.size > config.maxUploadSize) {
      throw new SluiceError('upload_too_large', `size ${input.size} exceeds the maximum of ${config.maxUploadSize} bytes`, {
        max_upload_size: config.maxUploadSize,
      });
    }
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
      return this.ledger.createUpload({
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

  /** The upload as its owner sees it; another owner's upload is indistinguishable from none. */
  get(owner: string, id: string): Upload {
    const upload = this.ledger.getUpload(id);
    if (!upload || upload.owner !== owner) throw new SluiceError('not_found', `no upload ${id}`);
    return upload;
  }

  /** Like `get`, and expires the upload on the spot if its time is up (the sweeper may not have run). */
  async status(owner: string, id: string): Promise<Upload> {
    const upload = this.get(owner, id);
    if (upload.status === 'uploading' && upload.expiresAt <= this.now()) {
      await this.expire(id);
      return this.get(owner, id);
    }
    return upload;
  }

  missingChunks(upload: Upload, limit?: number): number[] {
    if (upload.status === 'completed') return [];
    return this.ledger.missingChunks(upload.id, upload.totalChunks, limit);
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

    const writer = await this.inFlight.acquire(`${id}:${span.index}`, () =>
      body.stream.destroy(new SluiceError('chunk_in_progress', 'taken over by a newer request for the same chunk')),
    );
    try {
      const existing = this.ledger.getChunk(id, span.index);
      if (existing && body.sha256 !== undefined && body.sha256 !== existing.sha256) {
        throw new SluiceError('chunk_conflict', `chunk ${span.index} was already received with SHA-256 ${existing.sha256}`, {
          index: span.index,
        });
      }
      const sha256 = existing
        ? await this.hashOnly(body.stream, span, writer.touch)
        : await this.writeDurably(id, body.stream, span, writer.touch);
      if (body.sha256 !== undefined && body.sha256 !== sha256) {
        throw new SluiceError('checksum_mismatch', `chunk ${span.index} hashes to ${sha256}, the client sent ${body.sha256}`, {
          index: span.index,
          sha256,
        });
      }
      const chunk: Chunk = { index: span.index, offset: span.offset, length: span.length, sha256, receivedAt: this.now() };
      const result = this.ledger.recordChunk(id, chunk);
      switch (result.kind) {
        case 'recorded':
          return { chunk, upload: result.upload, created: true };
        case 'duplicate':
          return { chunk: this.ledger.getChunk(id, span.index) as Chunk, upload: result.upload, created: false };
        case 'conflict':
          throw new SluiceError('chunk_conflict', `chunk ${span.index} was already received with different bytes`, { index: span.index });
        case 'not_writable':
          throw notWritable(result.upload ?? upload);
      }
    } finally {
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
    const running = this.finishing.get(id);
    if (running) return { upload, done: running };
    if (upload.status !== 'uploading') throw notWritable(upload);

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
    const done = this.publish(upload, expected).finally(() => {
      this.finishing.delete(id);
      this.finishBytes.delete(id);
    });
    done.catch(() => {}); // callers that wait see the error; nobody waiting must not crash the process
    this.finishing.set(id, done);
    return { upload: this.ledger.getUpload(id) as Upload, done };
  }

  /** Fraction of the file already verified and handed to the store while `finishing`. */
  finishProgress(upload: Upload): number | undefined {
    if (upload.status !== 'finishing') return undefined;
    const bytes = this.finishBytes.get(upload.id) ?? 0;
    return upload.size === 0 ? 0 : bytes / upload.size;
  }

  private async publish(upload: Upload, sha256: string): Promise<Upload> {
    const { id } = upload;
    const started = this.now();
    try {
      const location = await this.store.publish({
        id,
        stagingPath: this.staging.pathOf(id),
        size: upload.size,
        fileName: upload.fileName,
        contentType: upload.contentType,
        sha256,
        open: () => verifying(this.staging.openForRead(id), sha256, upload.size, (n) => this.finishBytes.set(id, n)),
      });
      this.ledger.markCompleted(id, sha256, location, this.now());
      await this.staging.remove(id);
      this.log.info({ uploadId: id, size: upload.size, ms: this.now() - started, event: 'upload_completed' }, 'upload completed');
      return this.ledger.getUpload(id) as Upload;
    } catch (err) {
      if (isSluiceError(err) && err.code === 'file_checksum_mismatch') {
        // The bytes are wrong and can never become right: fail the upload and drop the staging file.
        this.ledger.markFailed(id, err.message, this.now());
        this.ledger.deleteChunks(id);
        await this.staging.remove(id);
        this.log.warn({ uploadId: id, event: 'upload_failed' }, err.message);
        throw err;
      }
      // Anything else (the store is down, a disk error) is retryable: keep the bytes, reopen the upload.
      this.ledger.transition(id, 'finishing', 'uploading', this.now(), 'storing the file failed; its bytes are kept, finish again');
      this.log.error({ uploadId: id, err, event: 'publish_failed' }, 'publishing the upload failed');
      throw new SluiceError('storage_unavailable', 'the file could not be stored; its bytes are kept, finish again later', {}, { cause: err });
    }
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
    await this.staging.remove(id);
    this.log.info({ uploadId: id, event: 'upload_aborted' }, 'upload aborted');
  }

  list(owner: string, limit: number, after?: { createdAt: number; id: string }): Upload[] {
    return this.ledger.listUploads(owner, limit, after);
  }

  /** Reads a completed upload's bytes (or a range of them) from its store. */
  async content(owner: string, id: string, range?: { start: number; end: number }): Promise<Download> {
    const upload = this.get(owner, id);
    if (upload.status !== 'completed' || upload.location === null) {
      throw new SluiceError('upload_not_completed', `upload ${id} is ${upload.status}`, { upload_status: upload.status });
    }
    return this.store.read(upload.location, range, { fileName: upload.fileName, contentType: upload.contentType });
  }

  /** Expires one upload if it is still uploading; removes its staging bytes. */
  async expire(id: string): Promise<boolean> {
    if (!this.ledger.transition(id, 'uploading', 'expired', this.now())) return false;
    this.ledger.deleteChunks(id);
    await this.staging.remove(id);
    this.log.info({ uploadId: id, event: 'upload_expired' }, 'upload expired');
    return true;
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

  /**
   * Start-up recovery: a `finishing` upload found at start-up was interrupted by a crash; nothing
   * was published (the store publishes atomically), so it goes back to `uploading` and can be
   * finished again.
   */
  recover(): number {
    let count = 0;
    for (const id of this.ledger.idsWithStatus('finishing')) {
      if (this.ledger.transition(id, 'finishing', 'uploading', this.now())) count++;
    }
    return count;
  }

  get chunksInFlight(): number {
    return this.inFlight.size;
  }

  private async requireWritable(owner: string, id: string): Promise<Upload> {
    const upload = await this.status(owner, id);
    if (upload.status !== 'uploading') throw notWritable(upload);
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

  /** Reads a body of exactly `span.length` bytes; a body that runs over is cut off at once. */
  private async *exactly(stream: Readable, span: Span, touch: () => void): AsyncGenerator<Buffer> {
    let received = 0;
    // destroyOnReturn: false keeps the socket alive when we stop early, so the 400 can still be sent.
    for await (const buf of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      touch();
      received += buf.length;
      if (received > span.length) {
        throw new SluiceError('chunk_length_mismatch', `chunk ${span.index} is ${span.length} bytes and the body is longer`, {
          expected_length: span.length,
        });
      }
      yield buf;
    }
    if (received !== span.length) {
      throw new SluiceError('chunk_length_mismatch', `chunk ${span.index} is ${span.length} bytes, the body had ${received}`, {
        expected_length: span.length,
      });
    }
  }

  private async hashOnly(stream: Readable, span: Span, touch: () => void): Promise<string> {
    const hash = createHash('sha256');
    for await (const buf of this.exactly(stream, span, touch)) hash.update(buf);
    return hash.digest('hex');
  }

  private async writeDurably(id: string, stream: Readable, span: Span, touch: () => void): Promise<string> {
    const hash = createHash('sha256');
    const fh = await this.staging.openForWrite(id);
    try {
      let position = span.offset;
      for await (const buf of this.exactly(stream, span, touch)) {
        hash.update(buf);
        let written = 0;
        while (written < buf.length) {
          const { bytesWritten } = await fh.write(buf, written, buf.length - written, position + written);
          written += bytesWritten;
        }
        position += buf.length;
      }
      // Durable before it is recorded: the ledger must never count bytes a crash could lose.
      await fh.datasync();
    } finally {
      await fh.close();
    }
    return hash.digest('hex');
  }
}

// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function notWritable(upload: Upload): SluiceError {
  if (upload.status === 'expired') return new SluiceError('upload_expired', `upload ${upload.id} expired`);
  return new SluiceError('upload_not_writable', `upload ${upload.id} is ${upload.status}`, { upload_status: upload.status });
}
