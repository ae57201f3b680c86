import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import t from 'tap';
import { createUpload, http, rawRequest, sleep, startServer } from '../helpers/server.js';

/** Log lines of a server, as pino writes them. */
function logSink() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: { level: 'info', stream } };
}

t.test('a client that goes away mid-chunk is logged at info as client_aborted, without a stack, and counted', async (t) => {
  const sink = logSink();
  const s = await startServer(t, { overrides: { logger: sink.logger } });
  const up = await createUpload(s.url, { file_name: 'f', size: 200_000, chunk_size: 200_000 });
  const req = rawRequest(s.url, `PUT /v1/uploads/${up.id}/chunks/0 HTTP/1.1\nHost: x\nContent-Type: application/octet-stream\nContent-Length: 200000\n`);
  await req.start();
  await req.send(randomBytes(50_000));
  await sleep(100);
  req.socket.destroy();
  for (let i = 0; i < 500 && !sink.lines.some((l) => l.code === 'client_aborted'); i++) await sleep(20);
  const aborted = sink.lines.filter((l) => l.code === 'client_aborted');
  t.equal(aborted.length, 1, 'one line for it');
  t.equal(aborted[0]?.level, 30, 'at info');
  t.equal(aborted[0]?.err, undefined, 'no error object, no stack');
  t.same(
    sink.lines.filter((l) => (l.level as number) >= 50),
    [],
    'nothing at error level',
  );
  const metrics = await http('GET', `${s.url}/metrics`);
  t.match(metrics.text, /^sluice_client_aborted_total 1$/m);
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`)).body.chunks_received, 0);
});

t.test('tus requests get the tus plain-text error body, IETF requests an RFC 9457 document, from errors raised before their routes', async (t) => {
  const s = await startServer(t, { env: { AUTH_TOKENS: 'secret-token-for-alice:alice' } });
  const tus = await http('POST', `${s.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': '5' } });
  t.equal(tus.status, 401);
  t.match(tus.headers['content-type'], /^text\/plain/);
  t.match(tus.text, /^unauthorized: /);
  t.equal(tus.headers['tus-resumable'], '1.0.0');
  const ietf = await http('POST', `${s.url}/files`, { headers: { 'upload-draft-interop-version': '6', 'upload-complete': '?1' } });
  t.equal(ietf.status, 401);
  t.match(ietf.headers['content-type'], /^application\/problem\+json/);
  t.match(ietf.body, { code: 'unauthorized', status: 401, type: 'urn:sluice:problem:unauthorized' });
  t.equal(ietf.headers['upload-draft-interop-version'], '6');
  t.equal(ietf.headers['tus-resumable'], undefined, 'an IETF request gets no Tus-Resumable');
  const missing = await http('GET', `${s.url}/files/a/b/c`, { headers: { 'tus-resumable': '1.0.0', authorization: 'Bearer secret-token-for-alice' } });
  t.equal(missing.status, 404);
  t.match(missing.text, /^route_not_found: /, 'an unknown route under the tus path too');
  const native = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'f', size: 5 } });
  t.match(native.headers['content-type'], /^application\/problem\+json/, 'the native API keeps its problem documents');
});

t.test('a tus PATCH cut short by the client gets the tus body, and keeps what arrived', async (t) => {
  const s = await startServer(t);
  const created = await http('POST', `${s.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': '100000' } });
  const id = String(created.headers.location).split('/').pop();
  const req = rawRequest(
    s.url,
    `PATCH /files/${id} HTTP/1.1\nHost: x\nTus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: 0\nContent-Length: 100000\n`,
  );
  await req.start();
  await req.send(randomBytes(40_000));
  await sleep(100);
  req.socket.end(); // half-closed: the body can never be complete, the answer can still be read
  await Promise.race([req.closedPromise, sleep(3000)]);
  t.match(req.received, /^HTTP\/1\.1 400 /, 'answered');
  t.match(req.received, /content-type: text\/plain/i, 'with the tus plain-text body');
  t.match(req.received, /tus-resumable: 1\.0\.0/i);
  t.match(req.received, /invalid_request: the request body ended before its declared length/);
  const head = await http('HEAD', `${s.url}/files/${id}`, { headers: { 'tus-resumable': '1.0.0' } });
  t.equal(head.headers['upload-offset'], '40000', 'what arrived counts');
});

t.test('a request pipelined after a chunk on the same connection sees that chunk (RFC 9112 section 9.3.2)', async (t) => {
  const s = await startServer(t);
  const up = await createUpload(s.url, { file_name: 'f', size: 300_000, chunk_size: 150_000 });
  const body = randomBytes(150_000);
  const req = rawRequest(s.url, '');
  const head = (lines: string) => `${lines.replace(/\n/g, '\r\n')}\r\n\r\n`;
  await req.send(
    Buffer.concat([
      Buffer.from(head(`PUT /v1/uploads/${up.id}/chunks/0 HTTP/1.1\nHost: x\nContent-Type: application/octet-stream\nContent-Length: ${body.length}`)),
      body,
      Buffer.from(head(`GET /v1/uploads/${up.id} HTTP/1.1\nHost: x\nConnection: close`)),
    ]),
  );
  await Promise.race([req.closedPromise, sleep(10_000)]);
  const answers = req.received.split(/(?=HTTP\/1\.1 )/);
  t.equal(answers.length, 2, 'two answers, in order');
  t.match(answers[0], /^HTTP\/1\.1 200 [\s\S]*"chunks_received":1/);
  t.match(answers[1], /^HTTP\/1\.1 200 [\s\S]*"chunks_received":1/, 'the status read after it sees its chunk');
});

t.test('MIN_BODY_RATE: a trickled body ends with 408 while its socket is kept for the answer; a tus PATCH keeps what arrived', async (t) => {
  const s = await startServer(t, { env: { MIN_BODY_RATE: '1KiB/1s' } });
  const created = await http('POST', `${s.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': '100000' } });
  const id = String(created.headers.location).split('/').pop();
  const patch = rawRequest(
    s.url,
    `PATCH /files/${id} HTTP/1.1\nHost: x\nTus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: 0\nContent-Length: 100000\n`,
  );
  await patch.start();
  await patch.send(randomBytes(5000)); // a fast start, then a trickle
  for (let i = 0; i < 20 && !patch.received; i++) {
    await patch.send(randomBytes(10));
    await sleep(200);
  }
  const head = await patch.responseHead(5000);
  t.equal(head.status, 408);
  t.match(head.text, /request_timeout: /, 'the tus body');
  const offset = Number((await http('HEAD', `${s.url}/files/${id}`, { headers: { 'tus-resumable': '1.0.0' } })).headers['upload-offset']);
  t.ok(offset >= 5000, `the bytes that arrived count (${offset})`);

  const up = await createUpload(s.url, { file_name: 'f', size: 100_000, chunk_size: 100_000 });
  const chunk = rawRequest(s.url, `PUT /v1/uploads/${up.id}/chunks/0 HTTP/1.1\nHost: x\nContent-Type: application/octet-stream\nContent-Length: 100000\n`);
  await chunk.start();
  for (let i = 0; i < 20 && !chunk.received; i++) {
    await chunk.send(randomBytes(10));
    await sleep(200);
  }
  const res = await chunk.responseHead(5000);
  t.equal(res.status, 408);
  t.match(res.text, /"code":"request_timeout"/);
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`)).body.chunks_received, 0, 'a chunk is all or nothing');
  patch.socket.destroy();
  chunk.socket.destroy();
});
