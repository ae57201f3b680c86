import { randomBytes } from 'node:crypto';
import t from 'tap';
import { spawnServer } from '../helpers/process.js';
import { http, rawRequest, sha256, sleep, startServer, tmpDir } from '../helpers/server.js';

/**
 * Cases that tusd's and tus-js-client's own end-to-end suites check, ported: reading the uploaded
 * file back by GET, a status request releasing a live PATCH (tusd LockRelease), shutdown with
 * PATCHes in flight (tusd Shutdown), and a PATCH gone silent (tusd NetworkReadTimeout).
 */

const V = { 'tus-resumable': '1.0.0' };
const OCTET = { ...V, 'content-type': 'application/offset+octet-stream' };

async function tusCreate(url: string, length: number, metadata?: string) {
  const res = await http('POST', `${url}/files`, { headers: { ...V, 'upload-length': String(length), ...(metadata && { 'upload-metadata': metadata }) } });
  if (res.status !== 201) throw new Error(`create: ${res.status} ${res.text}`);
  const location = res.headers.location as string;
  return { url: location, id: location.split('/').pop() as string };
}

/** A PATCH that announces `total` bytes from `offset` and has sent only `sent` of them. */
async function slowPatch(base: string, id: string, total: number, sent: Buffer, offset = 0, extra = '') {
  const req = rawRequest(
    base,
    `PATCH /files/${id} HTTP/1.1\nHost: ${new URL(base).host}\nTus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: ${offset}\nContent-Length: ${total - offset}\n${extra}`,
  );
  await req.start();
  await req.send(sent);
  return req;
}

t.test('GET on a tus upload URL returns the completed file, with Range; before that 409', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(70_000);
  const { url } = await tusCreate(s.url, data.length, `filename ${Buffer.from('résumé.pdf').toString('base64')}`);
  const early = await http('GET', url);
  t.same([early.status, early.headers['content-type']], [409, 'text/plain; charset=utf-8']);
  t.match(early.text, /^upload_not_completed: /);
  t.equal((await http('PATCH', url, { headers: { ...OCTET, 'upload-offset': '0' }, body: data })).status, 204);
  // tus-js-client's end-to-end specs read the file back with a plain GET, no Tus-Resumable.
  const got = await fetch(url);
  t.equal(got.status, 200);
  t.equal(sha256(Buffer.from(await got.arrayBuffer())), sha256(data), 'the bytes are the file');
  t.match(got.headers.get('content-disposition'), /^inline; filename="resume\.pdf"; filename\*=UTF-8''r%C3%A9sum%C3%A9\.pdf$/);
  const part = await fetch(url, { headers: { range: 'bytes=100-199' } });
  t.equal(part.status, 206);
  t.equal(part.headers.get('content-range'), `bytes 100-199/${data.length}`);
  t.same(Buffer.from(await part.arrayBuffer()), data.subarray(100, 200));
});

t.test('tusd LockRelease: a HEAD ends a live PATCH, which records what arrived; the HEAD answers that offset at once', async (t) => {
  const s = await startServer(t, { env: { MIN_BODY_RATE: '0', IDLE_TIMEOUT: '1h' } });
  const data = randomBytes(100 * 1024);
  const { url, id } = await tusCreate(s.url, data.length);
  const patch = await slowPatch(s.url, id, data.length, data.subarray(0, 10 * 1024));
  await sleep(2000); // the PATCH is still attached, sending nothing more
  const started = Date.now();
  const head = await http('HEAD', url, { headers: V });
  const took = Date.now() - started;
  t.equal(head.headers['upload-offset'], String(10 * 1024), 'the 10 KiB that arrived');
  t.ok(took < 1000, `answered in ${took} ms, not after a timeout`);
  await Promise.race([patch.closedPromise, sleep(2000)]);
  t.ok(patch.closed, 'the old PATCH was ended');
  const next = await http('PATCH', url, { headers: { ...OCTET, 'upload-offset': String(10 * 1024) }, body: data.subarray(10 * 1024) });
  t.equal(next.status, 204, 'a PATCH from that offset is accepted');
  const back = await fetch(url);
  t.equal(sha256(Buffer.from(await back.arrayBuffer())), sha256(data));

  // IETF: the same for offset retrieval ("terminating the previous request before processing the new request").
  const I = { 'upload-draft-interop-version': '8' };
  const created = await http('POST', `${s.url}/files`, { headers: { ...I, 'upload-complete': '?0', 'upload-length': String(data.length) } });
  const ietfId = String(created.headers.location).split('/').pop() as string;
  const ietfPatch = rawRequest(
    s.url,
    `PATCH /files/${ietfId} HTTP/1.1\nHost: ${new URL(s.url).host}\nUpload-Draft-Interop-Version: 8\nUpload-Complete: ?1\nUpload-Offset: 0\nContent-Type: application/partial-upload\nContent-Length: ${data.length}\n`,
  );
  await ietfPatch.start();
  await ietfPatch.send(data.subarray(0, 7000));
  await sleep(300);
  const state = await http('HEAD', String(created.headers.location), { headers: I });
  t.same([state.headers['upload-offset'], state.headers['upload-complete']], ['7000', '?0']);
  ietfPatch.socket.destroy();
});

t.test('tusd NetworkReadTimeout: a PATCH silent past IDLE_TIMEOUT records what arrived and is answered 408 before the close', async (t) => {
  const s = await startServer(t, { env: { MIN_BODY_RATE: '0', IDLE_TIMEOUT: '1s' } });
  const data = randomBytes(50 * 1024);
  const { url, id } = await tusCreate(s.url, data.length);
  const patch = await slowPatch(s.url, id, data.length, data.subarray(0, 20 * 1024));
  const { status, text } = await patch.responseHead(5000);
  t.equal(status, 408);
  t.match(text, /tus-resumable: 1\.0\.0/i);
  await Promise.race([patch.closedPromise, sleep(3000)]);
  t.match(patch.received, /request_timeout: /, 'the tus plain-text body');
  t.ok(patch.closed, 'then the connection is closed');
  t.equal((await http('HEAD', url, { headers: V })).headers['upload-offset'], String(20 * 1024), 'what arrived counts');
});

t.test(
  'tusd Shutdown: on SIGTERM tus and IETF PATCHes in flight record what arrived and get 503 within 2 s; a native chunk keeps SHUTDOWN_TIMEOUT',
  async (t) => {
    const dataDir = await tmpDir(t);
    const env = { DATA_DIR: dataDir, SHUTDOWN_TIMEOUT: '20s', MIN_BODY_RATE: '0', IDLE_TIMEOUT: '1h' };
    const server = await spawnServer(env, t);
    const data = randomBytes(64 * 1024);
    const tus = await tusCreate(server.url, data.length);
    const tusPatch = await slowPatch(server.url, tus.id, data.length, data.subarray(0, 12_345));
    const I = { 'upload-draft-interop-version': '8' };
    const created = await http('POST', `${server.url}/files`, { headers: { ...I, 'upload-complete': '?0', 'upload-length': String(data.length) } });
    const ietfUrl = String(created.headers.location);
    const ietfPatch = rawRequest(
      server.url,
      `PATCH /files/${ietfUrl.split('/').pop()} HTTP/1.1\nHost: ${new URL(server.url).host}\nUpload-Draft-Interop-Version: 8\nUpload-Complete: ?1\nUpload-Offset: 0\nContent-Type: application/partial-upload\nContent-Length: ${data.length}\n`,
    );
    await ietfPatch.start();
    await ietfPatch.send(data.subarray(0, 5000));
    const native = await http('POST', `${server.url}/v1/uploads`, { json: { file_name: 'n', size: data.length, chunk_size: data.length } });
    const chunk = rawRequest(
      server.url,
      `PUT /v1/uploads/${native.body.id}/chunks/0 HTTP/1.1\nHost: ${new URL(server.url).host}\nContent-Type: application/octet-stream\nContent-Length: ${data.length}\n`,
    );
    await chunk.start();
    await chunk.send(data.subarray(0, 1000));
    await sleep(300);

    const started = Date.now();
    server.child.kill('SIGTERM');
    const [tusAnswer, ietfAnswer] = await Promise.all([tusPatch.responseHead(5000), ietfPatch.responseHead(5000)]);
    const took = Date.now() - started;
    t.equal(tusAnswer.status, 503, 'the tus PATCH gets 503');
    t.match(tusAnswer.text, /retry-after: 5/i);
    t.equal(ietfAnswer.status, 503, 'the IETF PATCH too');
    t.ok(took < 2000, `both answered in ${took} ms`);
    // The native chunk goes on and completes within SHUTDOWN_TIMEOUT.
    await chunk.send(data.subarray(1000));
    const chunkAnswer = await chunk.responseHead(10_000);
    t.equal(chunkAnswer.status, 200, 'the native chunk completed during shutdown');
    for (const r of [tusPatch, ietfPatch, chunk]) r.socket.destroy();
    t.same(await server.exited, { code: 0, signal: null });

    const again = await spawnServer(env, t);
    const tusHead = await http('HEAD', `${again.url}/files/${tus.id}`, { headers: V });
    t.equal(tusHead.headers['upload-offset'], '12345', 'the tus PATCH resumes from what arrived');
    const ietfHead = await http('HEAD', ietfUrl.replace(server.url, again.url), { headers: I });
    t.equal(ietfHead.headers['upload-offset'], '5000', 'the IETF one too');
    const rest = await http('PATCH', `${again.url}/files/${tus.id}`, { headers: { ...OCTET, 'upload-offset': '12345' }, body: data.subarray(12_345) });
    t.equal(rest.status, 204);
    const back = await fetch(`${again.url}/files/${tus.id}`);
    t.equal(sha256(Buffer.from(await back.arrayBuffer())), sha256(data));
    again.child.kill('SIGTERM');
    await again.exited;
  },
);
