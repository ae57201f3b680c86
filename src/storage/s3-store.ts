/**
 * S3 destination for finished uploads.
 *
 * Object layout: `${S3_PREFIX}${upload id}/${safe file name}`. The id makes every key unique and
 * is the only part that identifies the object; the file name, reduced to `[A-Za-z0-9._-]`, keeps
 * a bucket listing readable. The original name travels in `Content-Disposition` (RFC 6266, with a
 * UTF-8 `filename*` for non-ASCII names), the upload's type in `Content-Type` and the verified
 * SHA-256 (hex) in user metadata (`x-amz-meta-sha256`).
 *
 * Publishing reads the staging file once: the verifying stream hashes the bytes on their way into
 * lib-storage's multipart upload and errors before its end if the digest is wrong, so
 * CompleteMultipartUpload (or, for a file smaller than one part, the single PutObject) is never
 * sent and nothing becomes visible. Memory is bounded by part size x queue size.
 *
 * On any failure lib-storage aborts the multipart upload, best effort: some S3-compatible servers
 * do not implement AbortMultipartUpload, and an abort can fail when S3 is unreachable. A bucket
 * lifecycle rule (AbortIncompleteMultipartUpload) removes what remains. The staging file is never
 * touched here; the service deletes it only after this store has confirmed completion.
 *
 * Downloads are short-lived presigned GET URLs, so bytes flow from S3 to the client directly.
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { S3Config } from '../config.js';
import { isSluiceError } from '../errors.js';
import { attachment, stripAccents } from '../lib/disposition.js';
import type { StoredLocation } from '../ledger/ledger.js';
import type { Download, FileStore, PublishInput } from './file-store.js';
import { partSizeFor } from './part-size.js';

export function createS3Client(config: S3Config): S3Client {
  const checksum = config.checksums === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  return new S3Client({
    region: config.region,
    ...(config.endpoint && { endpoint: config.endpoint }),
    forcePathStyle: config.forcePathStyle,
    requestChecksumCalculation: checksum,
    responseChecksumValidation: checksum,
    // Credentials: the SDK's default chain (environment, profiles, instance roles).
  });
}

/** A file name reduced to characters that are safe in any S3 key and any shell. */
export function safeKeyName(fileName: string): string {
  const ascii = stripAccents(fileName)
    .replace(/[^\w.-]+/g, '_')
    .replace(/_+/g, '_');
  const trimmed = ascii.replace(/^[._]+/, '').slice(-100);
  return trimmed.length > 0 ? trimmed : 'file';
}

export class S3Store implements FileStore {
  readonly backend = 's3' as const;

  constructor(
    readonly client: S3Client,
    private readonly config: S3Config,
  ) {}

  keyFor(id: string, fileName: string): string {
    return `${this.config.prefix}${id}/${safeKeyName(fileName)}`;
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.config.bucket }));
  }

  /** Start-up check that the bucket accepts writes: a zero-byte object written and removed. */
  async checkWritable(): Promise<void> {
    const Key = `${this.config.prefix}.sluice-write-check`;
    await this.client.send(new PutObjectCommand({ Bucket: this.config.bucket, Key, Body: new Uint8Array(0), ContentLength: 0 }));
    await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key }));
  }

  async publish(input: PublishInput): Promise<StoredLocation> {
    const key = this.keyFor(input.id, input.fileName);
    const body = input.open();
    // lib-storage may replace the stream's error with a failed abort's; keep the real cause.
    let sourceError: unknown;
    body.once('error', (err) => (sourceError = err));
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.config.bucket,
        Key: key,
        Body: body,
        ContentType: input.contentType,
        ContentDisposition: attachment(input.fileName),
        Metadata: { sha256: input.sha256 },
      },
      partSize: partSizeFor(input.size, this.config.partSize),
      queueSize: this.config.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      body.destroy();
      if (isSluiceError(sourceError)) throw sourceError;
      throw err;
    }
    return { backend: 's3', bucket: this.config.bucket, key };
  }

  async read(location: StoredLocation, _range?: { start: number; end: number }, hints?: { fileName: string; contentType: string }): Promise<Download> {
    const { bucket, key } = this.s3Location(location);
    // The client follows the redirect and sends its Range header to S3 itself.
    const url = await getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        ...(hints && { ResponseContentDisposition: attachment(hints.fileName), ResponseContentType: hints.contentType }),
      }),
      { expiresIn: this.config.presignTtlSeconds },
    );
    return { kind: 'redirect', url };
  }

  async delete(location: StoredLocation): Promise<void> {
    const { bucket, key } = this.s3Location(location);
    await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  async locate(id: string, fileName: string): Promise<{ location: StoredLocation; sha256: string | undefined } | undefined> {
    const key = this.keyFor(id, fileName);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: key }));
      return { location: { backend: 's3', bucket: this.config.bucket, key }, sha256: head.Metadata?.sha256 };
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
  }

  /**
   * Aborts multipart uploads under the prefix that a crash left open (S3 keeps charging for them).
   * Direct uploads' multipart uploads (under `.staging/`) are clients' work in progress: they are
   * aborted with their upload (abort, expiry), never here.
   */
  async cleanupIncomplete(): Promise<number> {
    let aborted = 0;
    const list = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.config.bucket, Prefix: this.config.prefix }));
    for (const upload of list.Uploads ?? []) {
      if (!upload.Key || !upload.UploadId || upload.Key.startsWith(`${this.config.prefix}.staging/`)) continue;
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: upload.Key, UploadId: upload.UploadId }));
      aborted++;
    }
    return aborted;
  }

  private s3Location(location: StoredLocation): { bucket: string; key: string } {
    if (location.backend !== 's3') throw new Error(`S3 store cannot read a ${location.backend} location`);
    return location;
  }
}
