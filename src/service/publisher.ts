import { Readable } from 'node:stream';
import type { FastifyBaseLogger as Logger } from 'fastify';
import { SluiceError, isSluiceError } from '../errors.js';
import type { Discard, Ledger, Upload } from '../ledger/ledger.js';
import type { FileStore } from '../storage/file-store.js';
import type { StagingArea } from '../storage/staging-area.js';
import { damagedChunks } from './damaged-chunks.js';
import { hashStream } from './intake/body-writer.js';
import { readHead, type TypePolicy } from './type-policy.js';
import { verifying } from './verifying-stream.js';
import type { RunningDigests } from './hashing/running-digest.js';
import type { EventSink } from './upload-types.js';
import type { Hooks } from './hooks.js';

export interface PublisherDeps {
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
  log: Logger;
  now: () => number;
  typePolicy: TypePolicy | undefined;
  emit: EventSink;
  digests: RunningDigests;
  /** Drops an upload's bytes (use-cases/discard.ts). */
  discard: (id: string, how: Discard) => Promise<boolean>;
  hooks: Hooks;
  /** Stored files wait for a post-processor (`processing`) before they are `completed`. */
  postProcess: boolean;
}

/**
 * The digest a file must have to be published: the one declared at creation; else the claim its
 * digest matches; else the first claim (so that the file fails against it); null when any will do.
 */
function requiredDigest(declared: string | null, claims: Set<string>, digest: string | undefined): string | null {
  if (declared !== null) return declared;
  if (digest !== undefined && claims.has(digest)) return digest;
  return claims.values().next().value ?? null;
}

/**
 * The finish pipeline both protocols share: a `finishing` upload's bytes are read once - checked
 * against the type policy, hashed and verified on their way into the store - and only a verified
 * file is published. Publish jobs belong to the process, not to a request; a second finish joins
 * the running job. The whole-file digest comes from the running digests: a file whose bytes were
 * all hashed as they arrived is not read again.
 */
export class Publisher {
  private readonly ledger: Ledger;
  private readonly staging: StagingArea;
  private readonly store: FileStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly typePolicy: TypePolicy | undefined;
  private readonly emit: EventSink;
  /** Publish jobs running in this process, so a second finish joins the first. */
  private readonly finishing = new Map<string, Promise<Upload>>();
  /**
   * For an upload created without a SHA-256: the digests that the finishes waiting for its job
   * claim. The file is published when its digest is one of them; each caller is answered by its
   * own claim, so a wrong claim alone does not decide the upload's fate while a right one waits.
   */
  private readonly claims = new Map<string, Set<string>>();
  /** Bytes verified and handed to the store so far, per finishing upload (for status). */
  private readonly finishBytes = new Map<string, number>();
  private readonly digests: RunningDigests;
  private readonly discard: PublisherDeps['discard'];
  private readonly hooks: Hooks;
  private readonly postProcess: boolean;

  constructor(deps: PublisherDeps) {
    this.hooks = deps.hooks;
    this.postProcess = deps.postProcess;
    this.ledger = deps.ledger;
    this.staging = deps.staging;
    this.store = deps.store;
    this.log = deps.log;
    this.now = deps.now;
    this.typePolicy = deps.typePolicy;
    this.emit = deps.emit;
    this.digests = deps.digests;
    this.discard = deps.discard;
  }

  /**
   * The job publishing this upload, if one is running in this process, as a caller that claims
   * `sha256` sees it: the upload, or `file_checksum_mismatch` when the file's digest is another.
   */
  job(id: string, sha256?: string): Promise<Upload> | undefined {
    const done = this.finishing.get(id);
    if (!done || sha256 === undefined) return done;
    this.claims.get(id)?.add(sha256);
    return done.then((upload) => {
      if (upload.sha256 !== sha256) {
        throw new SluiceError('file_checksum_mismatch', `the upload completed with SHA-256 ${upload.sha256}`, { sha256: upload.sha256 });
      }
      return upload;
    });
  }

  /** Fraction of the file already verified and handed to the store while `finishing`. */
  progress(upload: Upload): number | undefined {
    if (upload.status !== 'finishing') return undefined;
    const bytes = Math.max(this.finishBytes.get(upload.id) ?? 0, this.digests.coveredBytes(upload.id));
    return upload.size === 0 ? 0 : bytes / upload.size;
  }

  /**
   * Where an upload's bytes are read from when it is published: its own staging file, or - for a
   * final (concatenated) upload - its partial uploads' staging files in order, with no copy made.
   */
  private sourceOf(upload: Upload): { stagingPath: string | null; open(): Readable } {
    const parts = upload.parts;
    if (parts) {
      const staging = this.staging;
      return {
        stagingPath: null,
        open: () =>
          Readable.from(
            (async function* () {
              for (const part of parts) yield* staging.openForRead(part);
            })(),
            { objectMode: false },
          ),
      };
    }
    return { stagingPath: this.staging.pathOf(upload.id), open: () => this.staging.openForRead(upload.id) };
  }

  /**
   * Publishes a `finishing` upload: its bytes must hash to the SHA-256 declared at creation, or to
   * one its finishers claim (`claims`), or to anything when neither exists (stream uploads). The
   * digest comes from the running digest, which reads only what it does not cover yet; a mismatch
   * fails before the store sees a byte. A composed upload has no running digest: its one
   * publishing read computes and verifies it.
   */
  private async publish(upload: Upload, claims: Set<string>): Promise<Upload> {
    const { id } = upload;
    const started = this.now();
    const source = this.sourceOf(upload);
    try {
      if (this.typePolicy) {
        const reason = await this.typePolicy.violation(upload.contentType, await readHead(source.open()));
        if (reason) throw new SluiceError('type_not_allowed', reason);
      }
      let digest = upload.parts ? undefined : await this.digests.digest(id, upload.size);
      // Claims are decided by the digest, and a pre-publish hook is only asked about verified
      // bytes: it is computed first even when the running one is lost.
      if (digest === undefined && ((upload.expectedSha256 === null && claims.size > 0) || this.hooks.asksBeforePublish)) {
        digest = await hashStream(source.open());
      }
      const expected = requiredDigest(upload.expectedSha256, claims, digest);
      if (digest !== undefined && expected !== null && digest !== expected) {
        throw new SluiceError('file_checksum_mismatch', `the file's SHA-256 is ${digest}, expected ${expected}`, { sha256: digest });
      }
      const sha256 = expected ?? digest ?? (await hashStream(source.open()));
      await this.hooks.prePublish(upload, { sha256, size: upload.size, open: async () => source.open() });
      const location = await this.store.publish({
        id,
        stagingPath: source.stagingPath,
        size: upload.size,
        fileName: upload.fileName,
        contentType: upload.contentType,
        sha256,
        verified: digest !== undefined,
        open: () => verifying(source.open(), sha256, upload.size, (n) => this.finishBytes.set(id, n)),
      });
      // The parts' bytes now live in the composed upload: they are consumed in the same transaction.
      await this.ledger.complete(id, sha256, location, this.now(), this.postProcess && !upload.isPart);
      await this.staging.remove(id);
      for (const part of upload.parts ?? []) {
        this.digests.forget(part);
        await this.staging.remove(part);
      }
      this.digests.forget(id);
      this.log.info({ uploadId: id, size: upload.size, ms: this.now() - started, event: 'upload_completed' }, 'upload completed');
      this.emit({ type: 'completed', protocol: upload.protocol, bytes: upload.size, seconds: (this.now() - started) / 1000 });
      return (await this.ledger.get(id)) as Upload;
    } catch (err) {
      if (isSluiceError(err) && err.code === 'file_checksum_mismatch' && upload.layout === 'grid') {
        // Before giving the bytes up: chunks that changed on disk since they arrived are dropped
        // and sent again; only a file whose every chunk is still what was received fails.
        const damaged = await damagedChunks(this.ledger, this.staging, upload).catch(() => []);
        if (damaged.length > 0) {
          const note = `${damaged.length} chunk(s) changed on disk after they were received; send them again`;
          await this.ledger.reopenWithout(id, damaged, this.now(), note);
          this.digests.forget(id);
          this.log.warn({ uploadId: id, damaged: damaged.slice(0, 100), event: 'chunks_damaged' }, note);
          throw new SluiceError('file_checksum_mismatch', `the file does not match its SHA-256: ${note}`, {
            ...err.extra,
            corrupt_chunks: damaged.slice(0, 1000),
            upload_status: 'uploading',
          });
        }
      }
      if (isSluiceError(err) && (err.code === 'file_checksum_mismatch' || err.code === 'type_not_allowed' || err.code === 'rejected_by_hook')) {
        // The bytes are wrong (or not welcome) and can never become right: fail the upload, drop its bytes.
        await this.discard(id, { from: 'finishing', to: 'failed', now: this.now(), failure: err.message });
        this.log.warn({ uploadId: id, event: 'upload_failed' }, err.message);
        this.emit({ type: 'failed', protocol: upload.protocol });
        throw err;
      }
      // Anything else (the store is down, a disk error, the hook cannot be asked) is retryable:
      // keep the bytes, reopen the upload.
      if (isSluiceError(err) && err.code === 'hook_unavailable') {
        await this.ledger.transition(id, 'finishing', 'uploading', this.now(), 'the pre-publish hook could not be asked; its bytes are kept, finish again');
        throw err;
      }
      await this.ledger.transition(id, 'finishing', 'uploading', this.now(), 'storing the file failed; its bytes are kept, finish again');
      this.log.error({ uploadId: id, err, event: 'publish_failed' }, 'publishing the upload failed');
      this.emit({ type: 'storage_error' });
      throw new SluiceError('storage_unavailable', 'the file could not be stored; its bytes are kept, finish again later', {}, { cause: err });
    }
  }

  /**
   * Starts publishing an upload and returns the job as its caller sees it; `sha256` is what the
   * caller says its bytes hash to (the one declared at creation, a claim when none was declared,
   * or null when any digest will do). The job belongs to the service: nobody waiting for it does
   * not cancel it, and its failure is handled.
   */
  start(upload: Upload, sha256: string | null): Promise<Upload> {
    const { id } = upload;
    const claims = new Set<string>();
    if (sha256 !== null && upload.expectedSha256 === null) claims.add(sha256);
    this.claims.set(id, claims);
    const done = this.publish(upload, claims).finally(() => {
      this.finishing.delete(id);
      this.finishBytes.delete(id);
      this.claims.delete(id);
    });
    done.catch(() => {}); // callers that wait see the error; nobody waiting must not crash the process
    this.finishing.set(id, done);
    return sha256 === null ? done : (this.job(id, sha256) as Promise<Upload>);
  }
}
