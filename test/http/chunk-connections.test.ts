import { randomBytes } from 'node:crypto';
import t from 'tap';
import { createUpload, http, putChunk, rawRequest, sha256, sleep, startServer, type TestContext } from '../helpers/server.js';

const CHUNK = 64 * 1024;

async function setup(t: TestContext, env: Record<string, string> = {}) {
  const s = await startServer(t, { env });
  const data = randomBytes(CHUNK * 2);
  const up = await createUpload(s.url, { file_name: 'data.bin', size: data.length, chunk_size: CHUNK });
  const part = (i: number) => data.subarray(i * CHUNK, (i + 1) * CHUNK);
  const rows = (): any[] => s.db.prepare('SELECT idx, sha256 FROM chunks WHERE upload_id = ? ORDER BY idx').all(up.id);
  const host = new URL(s.url).host;
  const head = (index: number, length: number) =>
    `PUT /v1/uploads/${up.id}/chunks/${index} HTTP/1.1\nHost: ${host}\nContent-Type: application/octet-stream\nContent-Length: ${length}\n`;
  return { s, up, part, rows, head };
}

t.test('a body that never ends is cut off: 400 chunk_length_mismatch, then the connection is closed', async (t) => {
  const { s, up, rows } = await setup(t);
  const host = new URL(s.url).host;
  const req = rawRequest(
    s.url,
    `PUT /v1/uploads/${up.id}/chunks/0 HTTP/1.1\nHost: ${host}\nContent-Type: application/octet-stream\nTransfer-Encoding: chunked\n`,
  );
  await req.start();
  const piece = randomBytes(16 * 1024);
  // Keep sending until the server answers; a server that kept reading would never answer.
  for (let i = 0; i < 400 && !req.received.includes('\r\n\r\n') && !req.closed; i++) {
    await req.send(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
    await sleep(2);
  }
  const { status, text } = await req.responseHead();
  t.equal(status, 400);
  t.match(text, /chunk_length_mismatch/);
  // The server lingers (reading and dropping the rest) so that the answer is not lost to a reset.
  await Promise.race([req.closedPromise, sleep(5000)]);
  t.ok(req.closed, 'the server closed the socket after a bounded linger');
  t.same(rows(), [], 'nothing recorded');
});

t.test('a client that disconnects mid-chunk: nothing is recorded and the chunk can be sent again', async (t) => {
  const { s, up, part, rows, head } = await setup(t);
  const req = rawRequest(s.url, head(0, CHUNK));
  await req.start();
  await req.send(part(0).subarray(0, CHUNK / 2));
  await sleep(100);
  req.socket.destroy();
  await sleep(200);
  t.same(rows(), [], 'the half chunk is not recorded');
  const status = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.same([status.body.chunks_received, status.body.missing_chunks], [0, [0, 1]]);
  const again = await putChunk(s.url, up.id, 0, part(0));
  t.equal(again.status, 200, 'the re-sent chunk is accepted at once (the dead request released it)');
  t.same(rows(), [{ idx: 0, sha256: sha256(part(0)) }]);
});

t.test('concurrent PUTs of the same chunk: 409 chunk_in_progress while one is in flight', async (t) => {
  const { s, up, part, rows, head } = await setup(t);
  const first = rawRequest(s.url, head(1, CHUNK));
  await first.start();
  await first.send(part(1).subarray(0, 1000));
  await sleep(100);
  const second = await putChunk(s.url, up.id, 1, part(1));
  t.same([second.status, second.body.code], [409, 'chunk_in_progress']);
  const other = await putChunk(s.url, up.id, 0, part(0));
  t.equal(other.status, 200, 'other chunks of the same upload are not blocked');
  await first.send(part(1).subarray(1000));
  const { status } = await first.responseHead();
  t.equal(status, 200, 'the first request completes');
  first.socket.destroy();
  t.same(
    rows().map((r) => r.idx),
    [0, 1],
  );
  t.equal((await putChunk(s.url, up.id, 1, part(1))).status, 200, 'after it, a retry is an idempotent 200');
});

t.test('many simultaneous PUTs of one chunk: each is 200 or 409, and exactly one row is recorded', async (t) => {
  const { s, up, part, rows } = await setup(t);
  const results = await Promise.all(Array.from({ length: 8 }, () => putChunk(s.url, up.id, 0, part(0))));
  for (const r of results) t.ok(r.status === 200 || (r.status === 409 && r.body.code === 'chunk_in_progress'), `status ${r.status}`);
  t.ok(
    results.some((r) => r.status === 200),
    'at least one succeeded',
  );
  t.same(rows(), [{ idx: 0, sha256: sha256(part(0)) }]);
});

t.test('a stalled writer is taken over after CHUNK_TAKEOVER_AFTER; its socket is ended', async (t) => {
  const { s, up, part, rows, head } = await setup(t, { CHUNK_TAKEOVER_AFTER: '300ms' });
  const stalled = rawRequest(s.url, head(0, CHUNK));
  await stalled.start();
  await stalled.send(part(0).subarray(0, 5000));
  await sleep(100);
  const early = await putChunk(s.url, up.id, 0, part(0));
  t.same([early.status, early.body.code], [409, 'chunk_in_progress'], 'not yet stale');
  await sleep(400);
  const takeover = await putChunk(s.url, up.id, 0, part(0));
  t.equal(takeover.status, 200, 'the new request takes over');
  await Promise.race([stalled.closedPromise, sleep(3000)]);
  t.ok(stalled.closed, 'the stale request was ended');
  t.same(rows(), [{ idx: 0, sha256: sha256(part(0)) }]);
});

t.test('a silent socket is closed after IDLE_TIMEOUT and releases its chunk', async (t) => {
  const { s, up, part, rows, head } = await setup(t, { IDLE_TIMEOUT: '500ms', CHUNK_TAKEOVER_AFTER: '1h' });
  const silent = rawRequest(s.url, head(0, CHUNK));
  await silent.start();
  await silent.send(part(0).subarray(0, 100));
  const started = Date.now();
  await Promise.race([silent.closedPromise, sleep(5000)]);
  t.ok(silent.closed, 'closed by the server');
  t.ok(Date.now() - started < 3000, 'within a few idle periods');
  await sleep(50);
  t.equal((await putChunk(s.url, up.id, 0, part(0))).status, 200, 'the chunk is free again');
  t.same(rows().length, 1);
});
