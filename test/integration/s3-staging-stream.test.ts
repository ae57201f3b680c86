import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { optimisticCreate, resume } from '../helpers/ietf-client.js';
import { spawnServer } from '../helpers/process.js';
import { startS3, useS3Credentials } from '../helpers/s3.js';
import { http, rawRequest, sha256, sleep, startServer, tmpDir } from '../helpers/server.js';

useS3Credentials();

const MiB = 1024 * 1024;
const TUS = { 'tus-resumable': '1.0.0' };
const PATCH_HEADERS = { ...TUS, 'content-type': 'application/offset+octet-stream' };
/** Parts of 5 MiB (S3's minimum), so that a few MiB cross several part boundaries. */
const env = (s3: { env: Record<string, string> }) => ({ ...s3.env, STAGING_BACKEND: 's3', S3_PART_SIZE: '5MiB' });

const tails = (keys: string[]) => keys.filter((k) => k.includes('.tail-'));

/**
 * STAGING_BACKEND=s3 for tus and the IETF draft: appended bytes go to the bucket part by part, the
 * bytes past the last whole part wait in a tail object, and nothing stays on the local disk.
 */
t.test('tus-js-client with PATCHes that end between part boundaries: the bucket holds the source, no tail or staging left', async (t) => {
  const tus = await import('tus-js-client');
  const s3 = await startS3(t);
  const s = await startServer(t, { env: env(s3) });
  const data = randomBytes(23 * MiB + 123);
  let sawTail = false;
  const url = await new Promise<string>((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint: `${s.url}/files`,
      // 3 MiB per PATCH: most end inside a part, whose bytes so far become the tail.
      chunkSize: 3 * MiB,
      metadata: { filename: 'stream.bin' },
      onChunkComplete: () => {
        void s3.keys().then((keys) => {
          if (tails(keys).length > 0) sawTail = true;
        });
      },
      onError: reject,
      onSuccess: () => resolve(u.url as string),
    });
    u.start();
  });
  const id = url.split('/').pop() as string;
  const st = (await http('GET', `${s.url}/v1/uploads/${id}`)).body;
  t.same([st.status, st.sha256, st.size], ['completed', sha256(data), data.length]);
  t.ok(sawTail, 'bytes past the last whole part waited in a tail object');
  const keys = await s3.keys();
  t.same(keys, [`${id}/stream.bin`], 'one object: the staging object and every tail are gone');
  t.equal(sha256((await s3.get(keys[0] as string)).body), sha256(data), 'the bucket holds the source');
  t.same(await fs.readdir(path.join(s.dataDir, 'staging')), [], 'nothing on the local disk');
});

t.test('a PATCH cut short keeps what arrived; a checksum mismatch records nothing; the rest completes', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: env(s3) });
  const data = randomBytes(14 * MiB);
  const created = await http('POST', `${s.url}/files`, { headers: { ...TUS, 'upload-length': String(data.length) } });
  const loc = String(created.headers.location);
  const cut = rawRequest(
    s.url,
    `PATCH ${new URL(loc).pathname} HTTP/1.1\nHost: x\nTus-Resumable: 1.0.0\nUpload-Offset: 0\nContent-Type: application/offset+octet-stream\nContent-Length: ${data.length}\n`,
  );
  await cut.start();
  await cut.send(data.subarray(0, 7 * MiB));
  await sleep(400);
  cut.socket.destroy();
  let offset = 0;
  for (let i = 0; i < 50 && offset === 0; i++) {
    await sleep(100);
    offset = Number((await http('HEAD', loc, { headers: TUS })).headers['upload-offset']);
  }
  t.ok(offset >= 5 * MiB && offset <= 7 * MiB, `the bytes that arrived count (${offset}): a whole part and a tail`);
  t.same(await fs.readdir(path.join(s.dataDir, 'staging')), [], 'the spool file is gone');

  const piece = data.subarray(offset, offset + MiB);
  const wrong = await http('PATCH', loc, {
    headers: { ...PATCH_HEADERS, 'upload-offset': String(offset), 'upload-checksum': `sha1 ${createHash('sha1').update('other').digest('base64')}` },
    body: piece,
  });
  t.equal(wrong.status, 460, 'checksum mismatch');
  t.equal(Number((await http('HEAD', loc, { headers: TUS })).headers['upload-offset']), offset, 'nothing of it was recorded');
  const right = await http('PATCH', loc, {
    headers: { ...PATCH_HEADERS, 'upload-offset': String(offset), 'upload-checksum': `sha1 ${createHash('sha1').update(piece).digest('base64')}` },
    body: piece,
  });
  t.same([right.status, Number(right.headers['upload-offset'])], [204, offset + MiB], 'a checksummed body records whole');
  const rest = await http('PATCH', loc, { headers: { ...PATCH_HEADERS, 'upload-offset': String(offset + MiB) }, body: data.subarray(offset + MiB) });
  t.equal(rest.status, 204);
  const id = loc.split('/').pop() as string;
  const st = (await http('GET', `${s.url}/v1/uploads/${id}`)).body;
  t.same([st.status, st.sha256], ['completed', sha256(data)]);
  t.equal(tails(await s3.keys()).length, 0, 'no tail left behind');
});

t.test('a deferred length and the IETF draft: the last part is sent when the client says the upload is complete', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: env(s3) });
  const data = randomBytes(6 * MiB + 5);
  const created = await http('POST', `${s.url}/files`, { headers: { ...TUS, 'upload-defer-length': '1' } });
  const loc = String(created.headers.location);
  const first = await http('PATCH', loc, { headers: { ...PATCH_HEADERS, 'upload-offset': '0' }, body: data.subarray(0, 2 * MiB) });
  t.equal(first.status, 204);
  const last = await http('PATCH', loc, {
    headers: { ...PATCH_HEADERS, 'upload-offset': String(2 * MiB), 'upload-length': String(data.length) },
    body: data.subarray(2 * MiB),
  });
  t.equal(last.status, 204);
  const id = loc.split('/').pop() as string;
  t.same((await http('GET', `${s.url}/v1/uploads/${id}`)).body.sha256, sha256(data), 'tus with a deferred length');

  const draft = randomBytes(12 * MiB + 1);
  const broken = await optimisticCreate(`${s.url}/files`, 8, draft, 8 * MiB);
  t.ok(broken.location, 'the 104 named the upload before the connection broke');
  const resumed = await resume(new URL(String(broken.location), s.url).href, 8, draft);
  t.ok(resumed.offset > 0, `resumed at ${resumed.offset}`);
  t.same([resumed.status, resumed.complete], [200, '?1']);
  const draftId = String(broken.location).split('/').pop() as string;
  t.same((await http('GET', `${s.url}/v1/uploads/${draftId}`)).body.sha256, sha256(draft), 'the draft upload, cut and resumed');
  t.equal(tails(await s3.keys()).length, 0);
});

t.test('SIGKILL mid-PATCH with parts and a tail in S3: restart, HEAD, resume, the right SHA-256', async (t) => {
  const s3 = await startS3(t);
  const dataDir = await tmpDir(t);
  const e = { ...env(s3), DATA_DIR: dataDir };
  let server = await spawnServer(e, t);
  const data = randomBytes(16 * MiB + 7);
  const created = await http('POST', `${server.url}/files`, { headers: { ...TUS, 'upload-length': String(data.length) } });
  const pathname = new URL(String(created.headers.location)).pathname;
  const first = await http('PATCH', `${server.url}${pathname}`, { headers: { ...PATCH_HEADERS, 'upload-offset': '0' }, body: data.subarray(0, 7 * MiB) });
  t.same([first.status, first.headers['upload-offset']], [204, String(7 * MiB)], 'a part and a tail of 2 MiB');
  const inflight = rawRequest(
    server.url,
    `PATCH ${pathname} HTTP/1.1\nHost: x\nTus-Resumable: 1.0.0\nUpload-Offset: ${7 * MiB}\nContent-Type: application/offset+octet-stream\nContent-Length: ${data.length - 7 * MiB}\n`,
  );
  await inflight.start();
  await inflight.send(data.subarray(7 * MiB, 11 * MiB));
  await sleep(600);
  server.child.kill('SIGKILL');
  await server.exited;
  inflight.socket.destroy();
  server = await spawnServer(e, t);
  const head = await http('HEAD', `${server.url}${pathname}`, { headers: TUS });
  const offset = Number(head.headers['upload-offset']);
  t.ok(offset === 7 * MiB || offset === 10 * MiB, `the recorded end survived (${offset})`);
  const rest = await http('PATCH', `${server.url}${pathname}`, { headers: { ...PATCH_HEADERS, 'upload-offset': String(offset) }, body: data.subarray(offset) });
  t.equal(rest.status, 204);
  const id = pathname.split('/').pop() as string;
  const st = (await http('GET', `${server.url}/v1/uploads/${id}`)).body;
  t.same([st.status, st.sha256], ['completed', sha256(data)], 'finished after the restart (read back: the running digest was lost)');
  t.equal(sha256((await s3.get(st.location.key)).body), sha256(data));
  t.same(tails(await s3.keys()), [], 'tails of the killed request are gone too');
  t.same(await fs.readdir(path.join(dataDir, 'staging')), [], 'the killed request spool was removed at start-up');
  server.child.kill('SIGTERM');
  await server.exited;
});
