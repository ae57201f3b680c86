import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { spawnServer } from '../helpers/process.js';
import { startS3, useS3Credentials } from '../helpers/s3.js';
import { http, putChunk, rawRequest, sha256, sleep, startServer, tmpDir } from '../helpers/server.js';

useS3Credentials();

const MiB = 1024 * 1024;

/**
 * STAGING_BACKEND=s3: native chunks are streamed straight into the parts of a multipart upload in
 * the bucket, nothing is staged on local disk, and finish verifies the assembled object.
 */
t.test('an out-of-order native upload staged in S3: no staging file, the bytes in the bucket are the source', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: { ...s3.env, STAGING_BACKEND: 's3', S3_PREFIX: 'up/' } });
  const data = randomBytes(16 * MiB + 99);
  const chunk = 5 * MiB;
  const created = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'staged.bin', size: data.length, chunk_size: chunk } });
  const up = created.body;
  t.equal(up.total_chunks, 4);
  for (const i of [3, 1, 0, 2]) {
    const part = data.subarray(i * chunk, (i + 1) * chunk);
    const res = await putChunk(s.url, up.id, i, part, { 'x-chunk-sha256': sha256(part) });
    t.same([res.status, res.body.sha256], [200, sha256(part)], `chunk ${i}`);
  }
  t.same(await fs.readdir(path.join(s.dataDir, 'staging')), [], 'nothing was staged on local disk');
  const retry = await putChunk(s.url, up.id, 1, data.subarray(chunk, 2 * chunk));
  t.equal(retry.status, 200, 'the same chunk again is an idempotent retry');
  const other = await putChunk(s.url, up.id, 1, randomBytes(chunk));
  t.same([other.status, other.body.code], [409, 'chunk_conflict'], 'other bytes for a recorded chunk');
  const status = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.same([status.body.chunks_received, status.body.missing_chunks], [4, []]);
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { sha256: sha256(data) } });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
  t.equal(sha256((await s3.get(fin.body.location.key)).body), sha256(data), 'the bucket holds the source');
  t.same(await s3.keys(), [fin.body.location.key], 'and nothing else: the staging object is gone');
  const small = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 's', size: 20 * MiB, chunk_size: MiB } });
  t.same([small.status, small.body.code], [400, 'chunk_size_out_of_range'], 'chunks under 5 MiB cannot be parts');
});

t.test('a chunk with a wrong SHA-256 or cut short is not recorded; a tus upload still works beside it', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: { ...s3.env, STAGING_BACKEND: 's3' } });
  const data = randomBytes(6 * MiB);
  const up = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'b', size: data.length, chunk_size: 5 * MiB } })).body;
  const wrong = await putChunk(s.url, up.id, 0, data.subarray(0, 5 * MiB), { 'x-chunk-sha256': sha256('nope') });
  t.same([wrong.status, wrong.body.code], [422, 'checksum_mismatch']);
  const cut = rawRequest(s.url, `PUT /v1/uploads/${up.id}/chunks/0 HTTP/1.1\nHost: x\nContent-Type: application/octet-stream\nContent-Length: ${5 * MiB}\n`);
  await cut.start();
  await cut.send(data.subarray(0, MiB));
  await sleep(200);
  cut.socket.destroy();
  await sleep(300);
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`)).body.chunks_received, 0, 'neither was recorded');

  const tus = await http('POST', `${s.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': '11' } });
  const patch = await http('PATCH', String(tus.headers.location), {
    headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
    body: 'hello world',
  });
  t.equal(patch.status, 204, 'a small tus upload beside it: one short part');
  const tusId = String(tus.headers.location).split('/').pop();
  const done = await http('GET', `${s.url}/v1/uploads/${tusId}`);
  t.same([done.body.status, done.body.sha256], ['completed', sha256('hello world')]);
});

t.test('SIGKILL mid-upload with chunks staged in S3: restart, resume, a verified finish', async (t) => {
  const s3 = await startS3(t);
  const dataDir = await tmpDir(t);
  const env = { ...s3.env, STAGING_BACKEND: 's3', DATA_DIR: dataDir };
  let server = await spawnServer(env, t);
  const data = randomBytes(15 * MiB);
  const chunk = 5 * MiB;
  const up = (await http('POST', `${server.url}/v1/uploads`, { json: { file_name: 'k', size: data.length, chunk_size: chunk, sha256: sha256(data) } })).body;
  for (const i of [0, 2]) t.equal((await putChunk(server.url, up.id, i, data.subarray(i * chunk, (i + 1) * chunk))).status, 200);
  // Chunk 1 is in flight when the process dies.
  const inflight = rawRequest(
    server.url,
    `PUT /v1/uploads/${up.id}/chunks/1 HTTP/1.1\nHost: x\nContent-Type: application/octet-stream\nContent-Length: ${chunk}\n`,
  );
  await inflight.start();
  await inflight.send(data.subarray(chunk, chunk + MiB));
  await sleep(200);
  server.child.kill('SIGKILL');
  await server.exited;
  inflight.socket.destroy();
  server = await spawnServer(env, t);
  const status = await http('GET', `${server.url}/v1/uploads/${up.id}`);
  t.same([status.body.status, status.body.missing_chunks], ['uploading', [1]], 'the recorded chunks survived, the half-sent one does not count');
  t.equal((await putChunk(server.url, up.id, 1, data.subarray(chunk, 2 * chunk))).status, 200);
  const fin = await http('POST', `${server.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
  t.equal(sha256((await s3.get(fin.body.location.key)).body), sha256(data));
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('STAGING_BACKEND=s3 needs STORAGE_BACKEND=s3', async (t) => {
  const { loadConfig, ConfigError } = await import('../../src/config.js');
  t.throws(() => loadConfig({ STAGING_BACKEND: 's3' }, '/srv'), ConfigError);
});
