import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { type S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { SignatureV4 } from '@smithy/signature-v4';

/** SHA-256 and HMAC-SHA-256 for the signer, from node:crypto. */
class NodeSha256 {
  private h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    const key =
      secret === undefined || typeof secret === 'string'
        ? secret
        : ArrayBuffer.isView(secret)
          ? Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength)
          : Buffer.from(secret);
    this.h = key === undefined ? createHash('sha256') : createHmac('sha256', key);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(
      typeof data === 'string' ? data : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data),
    );
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {}
}

export interface PresignInput {
  bucket: string;
  key: string;
  uploadId: string;
  partNumber: number;
  /** base64 SHA-256 to sign as the `x-amz-checksum-sha256` header. */
  checksum: string | undefined;
  expiresInSeconds: number;
  signingDate?: Date;
}

/**
 * Presigned UploadPart URLs, many per upload. The SDK's `getSignedUrl` runs the whole command
 * middleware stack per URL (about 1 ms each: 64 ms for the parts of a 1 GiB file, more than the
 * rest of a direct upload costs the server); this signs each URL with the same SigV4 signer the SDK
 * uses (`@smithy/signature-v4`), on the host and path the SDK resolved for the first one - so the
 * endpoint, path style and credentials stay the SDK's. A unit test checks that both produce the
 * same URL (with the SDK's flexible checksums off, which would add an empty body's CRC32).
 */
export class PartPresigner {
  private readonly signer: SignatureV4;
  /** The SDK's URL for a part of each (bucket, key): where every part URL of it goes. */
  private readonly bases = new Map<string, URL>();

  constructor(
    private readonly client: S3Client,
    region: string,
  ) {
    this.signer = new SignatureV4({ credentials: client.config.credentials, region, service: 's3', sha256: NodeSha256, uriEscapePath: false });
  }

  /** The SDK's own presigned URL (the reference, and the source of the endpoint). */
  sdkUrl(input: PresignInput): Promise<string> {
    const command = new UploadPartCommand({
      Bucket: input.bucket,
      Key: input.key,
      UploadId: input.uploadId,
      PartNumber: input.partNumber,
      ...(input.checksum && { ChecksumSHA256: input.checksum }),
    });
    return getSignedUrl(this.client, command, {
      expiresIn: input.expiresInSeconds,
      ...(input.signingDate && { signingDate: input.signingDate }),
      ...(input.checksum && { unhoistableHeaders: new Set(['x-amz-checksum-sha256']) }),
    });
  }

  async url(input: PresignInput): Promise<string> {
    const id = `${input.bucket}/${input.key}`;
    let base = this.bases.get(id);
    if (!base) {
      // Only its host and path are used: with flexible checksums on, the SDK also signs the CRC32
      // of an empty body into a presigned part URL, which S3 would then hold against the real part.
      base = new URL(await this.sdkUrl(input));
      this.bases.set(id, base);
      if (this.bases.size > 10_000) this.bases.delete(this.bases.keys().next().value as string);
    }
    const headers: Record<string, string> = {
      host: base.host,
      // S3 presigned uploads do not sign their payload.
      'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD',
      ...(input.checksum && { 'x-amz-checksum-sha256': input.checksum }),
    };
    const signed = await this.signer.presign(
      {
        method: 'PUT',
        protocol: base.protocol,
        hostname: base.hostname,
        ...(base.port && { port: Number(base.port) }),
        path: base.pathname,
        query: { partNumber: String(input.partNumber), uploadId: input.uploadId, 'x-id': 'UploadPart' },
        headers,
      },
      {
        expiresIn: input.expiresInSeconds,
        ...(input.signingDate && { signingDate: input.signingDate }),
        unhoistableHeaders: new Set(input.checksum ? ['x-amz-checksum-sha256'] : []),
        unsignableHeaders: new Set(),
      },
    );
    const query = Object.entries(signed.query ?? {})
      .map(([k, v]) => `${encode(k)}=${encode(String(v))}`)
      .join('&');
    return `${base.protocol}//${base.host}${base.pathname}?${query}`;
  }
}

/** RFC 3986 encoding, as SigV4 canonical queries use. */
function encode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
