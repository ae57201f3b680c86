import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
// s3rver ships no types; it is a real S3-compatible HTTP server that keeps objects on disk.
// @ts-expect-error no declaration file
import S3rver from 's3rver';

type Tap = { teardown(fn: () => unknown): void };

export const S3_KEY = 'S3RVER';
export const S3_SECRET = 'S3RVER';

export interface FakeS3 {
  endpoint: string;
  bucket: string;
  client: S3Client;
  /** Environment for sluice with STORAGE_BACKEND=s3 against this server. */
  env: Record<string, string>;
  stop(): Promise<void>;
  /** Starts again on the same port and directory (objects survive). */
  start(): Promise<void>;
  keys(): Promise<string[]>;
  get(key: string): Promise<{ body: Buffer; contentType?: string; contentDisposition?: string; metadata?: Record<string, string> }>;
  exists(key: string): Promise<boolean>;
}

/**
 * Starts s3rver on 127.0.0.1 with one bucket; stopped at teardown. With `corsOrigins`, the bucket
 * has the CORS rule the README asks for (PUT from those origins, ETag exposed), for a browser.
 */
export async function startS3(t: Tap, bucket = 'sluice-test', opts: { corsOrigins?: string[] } = {}): Promise<FakeS3> {
  const cors = opts.corsOrigins
    ? [
        `<CORSConfiguration><CORSRule>${opts.corsOrigins.map((o) => `<AllowedOrigin>${o}</AllowedOrigin>`).join('')}` +
          '<AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod><AllowedHeader>*</AllowedHeader>' +
          '<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3600</MaxAgeSeconds></CORSRule></CORSConfiguration>',
      ]
    : [];
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'sluice-s3-'));
  let port = 0;
  let server: any;
  const start = async () => {
    server = new S3rver({ port, address: '127.0.0.1', directory, silent: true, configureBuckets: [{ name: bucket, configs: cors }] });
    const address = await server.run();
    port = address.port;
  };
  const stop = async () => {
    if (server) await server.close();
    server = undefined;
  };
  await start();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3_KEY, secretAccessKey: S3_SECRET },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  t.teardown(async () => {
    await stop();
    client.destroy();
    await fs.rm(directory, { recursive: true, force: true });
  });
  return {
    endpoint,
    bucket,
    client,
    env: {
      STORAGE_BACKEND: 's3',
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      S3_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: S3_KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    stop,
    start,
    async keys() {
      const res = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      return (res.Contents ?? []).map((c) => c.Key as string).sort();
    },
    async get(key) {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const body = Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
      return { body, contentType: res.ContentType, contentDisposition: res.ContentDisposition, metadata: res.Metadata };
    },
    async exists(key) {
      try {
        await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** The SDK reads credentials from the environment (its default chain); in-process tests set them. */
export function useS3Credentials(): void {
  process.env.AWS_ACCESS_KEY_ID = S3_KEY;
  process.env.AWS_SECRET_ACCESS_KEY = S3_SECRET;
  // The SDK warns about Node 20 on every client; tests need not hear it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}
