import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import type { S3Config } from '../config.js';
import type { StoredLocation } from '../ledger/ledger.js';
import { attachment } from '../lib/disposition.js';
import type { DirectStore, PartTarget, PromoteInput } from './direct-store.js';
import { partSizeFor } from './part-size.js';
import { PartPresigner } from './part-presigner.js';
import type { S3Store } from './s3-store.js';

interface Ref {
  key: string;
  uploadId: string;
}

/** Tails are named `<staging key>.tail-<uuid>`. */
const TAIL = '.tail-';

/** CopyObject copies at most 5 GiB; a larger object is copied part by part (UploadPartCopy). */
const COPY_OBJECT_MAX = 5 * 1024 ** 3;

const status = (err: unknown) => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

/**
 * Direct uploads into S3 (see DirectStore): presigned UploadPart URLs, a multipart upload completed
 * at the hidden staging key `${S3_PREFIX}.staging/<id>`, and a server-side copy to the final key
 * (`S3Store.keyFor`) with the object's type, disposition and verified SHA-256.
 *
 * A part URL for a declared SHA-256 signs `x-amz-checksum-sha256` as a header: S3 refuses a part
 * whose bytes do not match. Some S3-compatible servers (s3rver) ignore it, and do not implement
 * AbortMultipartUpload; the finish read-back still catches damaged bytes, and a bucket lifecycle
 * rule (AbortIncompleteMultipartUpload) removes abandoned multipart uploads there.
 */
export class S3Direct implements DirectStore {
  private readonly presigner: PartPresigner;

  constructor(
    private readonly client: S3Client,
    private readonly config: S3Config,
    private readonly finals: S3Store,
  ) {
    this.presigner = new PartPresigner(client, config.region);
  }

  private stagingKey(id: string): string {
    return `${this.config.prefix}.staging/${id}`;
  }

  async begin(id: string): Promise<string> {
    const Key = this.stagingKey(id);
    const out = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.config.bucket, Key }));
    if (!out.UploadId) throw new Error('S3 returned no UploadId');
    return JSON.stringify({ key: Key, uploadId: out.UploadId } satisfies Ref);
  }

  async partUrl(ref: string, partNumber: number, opts: { sha256?: string | undefined; expiresInSeconds: number }): Promise<PartTarget> {
    const { key, uploadId } = parse(ref);
    const checksum = opts.sha256 === undefined ? undefined : Buffer.from(opts.sha256, 'hex').toString('base64');
    // The checksum stays a signed header (not hoisted into the query), which S3 checks against the body.
    const url = await this.presigner.url({ bucket: this.config.bucket, key, uploadId, partNumber, checksum, expiresInSeconds: opts.expiresInSeconds });
    return {
      url,
      method: 'PUT',
      headers: checksum ? { 'x-amz-checksum-sha256': checksum } : {},
      expiresAt: Date.now() + opts.expiresInSeconds * 1000,
    };
  }

  async uploadPart(ref: string, partNumber: number, body: Readable, length: number, sha256: string | undefined, signal: AbortSignal): Promise<string> {
    const { key, uploadId } = parse(ref);
    const out = await this.client.send(
      new UploadPartCommand({
        Bucket: this.config.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: body,
        ContentLength: length,
        ...(sha256 && { ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64') }),
      }),
      // A body that fails (the client went away, too many bytes) ends the request to the store.
      { abortSignal: signal },
    );
    return unquoted(out.ETag ?? '');
  }

  async complete(ref: string, parts: { partNumber: number; etag: string }[]): Promise<void> {
    const { key, uploadId } = parse(ref);
    if (await this.exists(key)) return; // completed before a crash: the object is there
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.config.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: quoted(p.etag) })) },
      }),
    );
  }

  async read(ref: string, range?: { start: number; end: number }): Promise<Readable> {
    const { key } = parse(ref);
    const out = await this.client.send(
      new GetObjectCommand({ Bucket: this.config.bucket, Key: key, ...(range && { Range: `bytes=${range.start}-${range.end}` }) }),
    );
    return out.Body as Readable;
  }

  async promote(ref: string, input: PromoteInput): Promise<StoredLocation> {
    const { key: staging } = parse(ref);
    const Key = this.finals.keyFor(input.id, input.fileName);
    const target = {
      Bucket: this.config.bucket,
      Key,
      ContentType: input.contentType,
      ContentDisposition: attachment(input.fileName),
      Metadata: { sha256: input.sha256 },
    };
    const source = `${this.config.bucket}/${staging.split('/').map(encodeURIComponent).join('/')}`;
    if (input.size <= COPY_OBJECT_MAX) {
      await this.client.send(new CopyObjectCommand({ ...target, CopySource: source, MetadataDirective: 'REPLACE' }));
    } else {
      await this.copyInParts(source, target, input.size);
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: staging }));
    await this.dropTails(staging);
    return { backend: 's3', bucket: this.config.bucket, key: Key };
  }

  async restart(ref: string, id: string, keep: { partNumber: number; start: number; end: number }[]) {
    const { key: staging } = parse(ref);
    const fresh = await this.begin(id);
    const { key, uploadId } = parse(fresh);
    const etags = new Map<number, string>();
    // Streamed from the staging object through this server, part by part (bounded by one part in
    // flight): S3-compatible servers without UploadPartCopy take it too, and it only happens when
    // a finish found damaged parts.
    for (const part of keep) {
      const body = await this.read(ref, part);
      const out = await this.client.send(
        new UploadPartCommand({
          Bucket: this.config.bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: part.partNumber,
          Body: body,
          ContentLength: part.end - part.start + 1,
        }),
      );
      etags.set(part.partNumber, unquoted(out.ETag ?? ''));
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: staging }));
    return { ref: fresh, etags };
  }

  async discard(ref: string): Promise<void> {
    const { key, uploadId } = parse(ref);
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      // Already completed or aborted (404), or a server without AbortMultipartUpload (405/501).
      if (![404, 405, 501].includes(status(err) ?? 0)) throw err;
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: key }));
    await this.dropTails(key);
  }

  async putTail(ref: string, body: Readable, length: number, signal: AbortSignal): Promise<string> {
    const Key = `${parse(ref).key}${TAIL}${randomUUID()}`;
    await this.client.send(new PutObjectCommand({ Bucket: this.config.bucket, Key, Body: body, ContentLength: length }), { abortSignal: signal });
    return Key;
  }

  async readTail(tail: string, length: number): Promise<Readable> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: tail, Range: `bytes=0-${length - 1}` }));
    return out.Body as Readable;
  }

  async dropTail(tail: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: tail }));
  }

  /** Every tail under a staging key, referenced or left behind by a writer that lost its lease. */
  private async dropTails(staging: string): Promise<void> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: `${staging}${TAIL}`, ...(token && { ContinuationToken: token }) }),
      );
      const keys = (page.Contents ?? []).map((o) => o.Key as string);
      for (const Key of keys) await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key }));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: key }));
      return true;
    } catch (err) {
      if (status(err) === 404) return false;
      throw err;
    }
  }

  /** A server-side copy of an object too large for CopyObject: UploadPartCopy, part by part. */
  private async copyInParts(
    source: string,
    target: { Bucket: string; Key: string; ContentType: string; ContentDisposition: string; Metadata: Record<string, string> },
    size: number,
  ) {
    const created = await this.client.send(new CreateMultipartUploadCommand(target));
    const UploadId = created.UploadId as string;
    try {
      const partSize = partSizeFor(size, this.config.partSize);
      const parts: { PartNumber: number; ETag: string }[] = [];
      for (let n = 1, start = 0; start < size; n++, start += partSize) {
        const end = Math.min(start + partSize, size) - 1;
        const out = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: target.Bucket,
            Key: target.Key,
            UploadId,
            PartNumber: n,
            CopySource: source,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
        );
        parts.push({ PartNumber: n, ETag: out.CopyPartResult?.ETag as string });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: target.Bucket, Key: target.Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: target.Bucket, Key: target.Key, UploadId })).catch(() => {});
      throw err;
    }
  }
}

function parse(ref: string): Ref {
  return JSON.parse(ref) as Ref;
}

const quoted = (etag: string) => (etag.startsWith('"') ? etag : `"${etag}"`);
const unquoted = (etag: string) => etag.replace(/"/g, '');
