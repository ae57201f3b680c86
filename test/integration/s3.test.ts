import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { startS3, useS3Credentials, type FakeS3 } from '../helpers/s3.js';
import { createUpload, http, putChunk, rawRequest, sha256, sleep, startServer, type Running, type TestContext } from '../helpers/server.js';

useS3Credentials();

async function setup(t: TestContext, env: Record<string, string> = {}) {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: { ...s3.env, S3_PART_SIZE: '5MiB', S3_QUEUE_SIZE: '2', ...env } });
  return { s3, s };
}

/** Creates an upload of `data` in 1 MiB chunks and sends every chunk. */
async function uploadAll(s: Running, data: Buffer, fileName = 'clip.mp4', contentType = 'video/mp4') {
  const chunk = 1024 * 1024;
  const up = await createUpload(s.url, { file_name: fileName, size: data.length, chunk_size: chunk, content_type: contentType, sha256: sha256(data) });
  for (let i = 0; i < up.total_chunks; i++) {
    const r = await putChunk(s.url, up.id, i, data.subarray(i * chunk, (i + 1) * chunk));
    if (r.status !== 200) throw new Error(`chunk ${i}: ${r.status}`);
  }
  return up;
}

async function waitForStatus(url: string, id: string, want: string, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await http('GET', `${url}/v1/uploads/${id}`);
    if (st.body.status === want || Date.now() > deadline) return st.body;
    await sleep(50);
  }
}

t.test('finish lands the verified file in the bucket with its type, name and SHA-256', async (t) => {
  const { s3, s } = await setup(t, { S3_PREFIX: 'in/' });
  const data = randomBytes(11 * 1024 * 1024 + 5);
  const up = await uploadAll(s, data, 'Ünïcode clip.mp4');
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.equal(fin.status, 200);
  const key = `in/${up.id}/Unicode_clip.mp4`;
  t.same(fin.body.location, { backend: 's3', bucket: s3.bucket, key });
  t.same(await s3.keys(), [key], 'exactly one object');
  const obj = await s3.get(key);
  t.equal(sha256(obj.body), sha256(data), 'bytes in the bucket equal the source (GetObject)');
  t.equal(obj.contentType, 'video/mp4');
  t.same(obj.metadata, { sha256: sha256(data) }, 'x-amz-meta-sha256');
  t.equal(obj.contentDisposition, `attachment; filename="Unicode clip.mp4"; filename*=UTF-8''%C3%9Cn%C3%AFcode%20clip.mp4`, 'RFC 6266 name');
  await t.rejects(fs.access(path.join(s.dataDir, 'staging', up.id)), 'staging removed after S3 confirmed');
  const st = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.same([st.body.status, st.body.location], ['completed', { backend: 's3', bucket: s3.bucket, key }]);
});

t.test('a digest mismatch leaves the bucket unchanged: 422 and the upload failed', async (t) => {
  const { s3, s } = await setup(t);
  const data = randomBytes(6 * 1024 * 1024);
  const up = await createUpload(s.url, { file_name: 'a.bin', size: data.length, chunk_size: 1024 * 1024 });
  for (let i = 0; i < 6; i++) await putChunk(s.url, up.id, i, data.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024));
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { sha256: sha256(Buffer.from('wrong')) } });
  t.same([fin.status, fin.body.code], [422, 'file_checksum_mismatch']);
  t.same(await s3.keys(), [], 'nothing in the bucket');
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`)).body.status, 'failed');
});

t.test('S3 down at finish: 503, bytes kept, retryable; after S3 is back, finish completes', async (t) => {
  const { s3, s } = await setup(t);
  const data = randomBytes(3 * 1024 * 1024);
  const up = await uploadAll(s, data);
  const staging = path.join(s.dataDir, 'staging', up.id);
  await s3.stop();
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.code], [503, 'storage_unavailable']);
  t.notMatch(fin.text, /ECONNREFUSED|127\.0\.0\.1/, 'no internals in the answer');
  const st = (await http('GET', `${s.url}/v1/uploads/${up.id}`)).body;
  t.equal(st.status, 'uploading', 'not failed: retryable');
  t.match(st.failure, /finish again/);
  t.same(await fs.readFile(staging), data, 'staging file kept intact');
  const health = await http('GET', `${s.url}/healthz`);
  t.same([health.status, health.body.checks.storage.ok], [503, false], '/healthz reports storage down');

  await s3.start();
  const again = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([again.status, again.body.status], [200, 'completed']);
  t.equal(sha256((await s3.get(again.body.location.key)).body), sha256(data));
  await t.rejects(fs.access(staging), 'staging removed only now');
  t.equal((await http('GET', `${s.url}/healthz`)).status, 200);
});

t.test('content of an S3 upload: 302 to a short-lived presigned URL that serves the bytes', async (t) => {
  const { s } = await setup(t);
  const data = randomBytes(2 * 1024 * 1024 + 3);
  const up = await uploadAll(s, data, 'report.pdf', 'application/pdf');
  await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  const res = await fetch(`${s.url}/v1/uploads/${up.id}/content`, { redirect: 'manual' });
  t.equal(res.status, 302);
  const location = res.headers.get('location') ?? '';
  t.match(location, /X-Amz-Expires=300/, 'expires in S3_PRESIGN_TTL (5 minutes)');
  t.match(location, /X-Amz-Signature=/);
  const got = await fetch(location);
  t.equal(got.status, 200);
  t.equal(sha256(Buffer.from(await got.arrayBuffer())), sha256(data), 'presigned GET returns the bytes');
  t.equal(got.headers.get('content-type'), 'application/pdf');
  t.equal(got.headers.get('content-disposition'), 'attachment; filename="report.pdf"');
});

t.test('Prefer: respond-async answers 202 at once; the status URL shows the outcome', async (t) => {
  const { s3, s } = await setup(t);
  const data = randomBytes(8 * 1024 * 1024);
  const up = await uploadAll(s, data);
  const res = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {}, headers: { prefer: 'respond-async, wait=0' } });
  t.equal(res.status, 202);
  t.equal(res.headers['preference-applied'], 'respond-async');
  t.equal(res.headers.location, `${s.url}/v1/uploads/${up.id}`);
  t.ok(['finishing', 'completed'].includes(res.body.status), `status ${res.body.status}`);
  const done = await waitForStatus(s.url, up.id, 'completed');
  t.equal(done.status, 'completed');
  t.equal(sha256((await s3.get(done.location.key)).body), sha256(data));
});

t.test('a client that disconnects during finish does not cancel it', async (t) => {
  const { s3, s } = await setup(t);
  const data = randomBytes(24 * 1024 * 1024);
  const up = await uploadAll(s, data);
  const host = new URL(s.url).host;
  const req = rawRequest(s.url, `POST /v1/uploads/${up.id}/finish HTTP/1.1\nHost: ${host}\nContent-Type: application/json\nContent-Length: 2\n`);
  await req.start();
  await req.send('{}');
  await sleep(30);
  req.socket.destroy();
  const during = (await http('GET', `${s.url}/v1/uploads/${up.id}`)).body;
  t.ok(['finishing', 'completed'].includes(during.status), `status right after the disconnect: ${during.status}`);
  if (during.status === 'finishing') t.ok(during.finish_progress >= 0 && during.finish_progress <= 1, `finish_progress ${during.finish_progress}`);
  const done = await waitForStatus(s.url, up.id, 'completed');
  t.equal(done.status, 'completed', 'finished without anyone waiting');
  t.equal(sha256((await s3.get(done.location.key)).body), sha256(data));
});

t.test('S3 configuration is validated', async (t) => {
  const { loadConfig } = await import('../../src/config.js');
  t.throws(() => loadConfig({ STORAGE_BACKEND: 's3' }), /S3_BUCKET is required/);
  t.throws(() => loadConfig({ STORAGE_BACKEND: 's3', S3_BUCKET: 'b', S3_PART_SIZE: '4MiB' }), /S3_PART_SIZE="4MiB" is not a byte size from 5MiB/);
  const c = loadConfig({ STORAGE_BACKEND: 's3', S3_BUCKET: 'b' }).storage;
  t.match(c, {
    backend: 's3',
    bucket: 'b',
    region: 'us-east-1',
    forcePathStyle: false,
    prefix: '',
    partSize: 16 * 1024 * 1024,
    queueSize: 4,
    checksums: 'when_supported',
  });
  const compat = loadConfig({ STORAGE_BACKEND: 's3', S3_BUCKET: 'b', S3_ENDPOINT: 'http://minio:9000' }).storage;
  t.match(compat, { checksums: 'when_required' }, 'third-party endpoints default to WHEN_REQUIRED');
});

export type { FakeS3 };

t.test('tus uploads land in S3 through the same pipeline, parallel partials streamed straight into one object', async (t) => {
  const tus = await import('tus-js-client');
  const { s3, s } = await setup(t);
  const data = randomBytes(7 * 1024 * 1024 + 11);
  const url = await new Promise<string>((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint: `${s.url}/files`,
      parallelUploads: 3,
      metadata: { filename: 'movie.mov', filetype: 'video/quicktime' },
      onError: reject,
      onSuccess: () => resolve(u.url as string),
    });
    u.start();
  });
  const id = url.split('/').pop() as string;
  const st = (await http('GET', `${s.url}/v1/uploads/${id}`)).body;
  t.same([st.status, st.sha256], ['completed', sha256(data)]);
  t.same(await s3.keys(), [`${id}/movie.mov`], 'one object: partials are never published');
  const obj = await s3.get(`${id}/movie.mov`);
  t.same([sha256(obj.body), obj.contentType, obj.metadata], [sha256(data), 'video/quicktime', { sha256: sha256(data) }]);
  t.same(await fs.readdir(path.join(s.dataDir, 'staging')), [], 'no staging bytes left');
});
