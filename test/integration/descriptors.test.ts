import { randomBytes } from 'node:crypto';
import t from 'tap';
import { spawnServer } from '../helpers/process.js';
import { createUpload, http, rawRequest, sleep, tmpDir } from '../helpers/server.js';

/**
 * A real server with few descriptors (ulimit -n 160) and more concurrent uploads than it has room
 * for: every request is answered 200 or 503 overloaded with Retry-After, never 500 (EMFILE), and
 * the server keeps serving. The budget is derived from the limit: (160 - 64) / 3 = 32 bodies.
 */
t.test('descriptors run short: 503 overloaded with Retry-After before anything is opened, never a 500', async (t) => {
  const dir = await tmpDir(t);
  const s = await spawnServer({ DATA_DIR: dir, RATE_LIMIT_MAX: '0', MIN_CHUNK_SIZE: '1' }, t, { nofile: 160 });
  const size = 256 * 1024;
  const uploads = [];
  for (let i = 0; i < 70; i++) uploads.push(await createUpload(s.url, { file_name: `f${i}`, size, chunk_size: size }));
  const body = randomBytes(size);
  // Every body is started and held half-sent, so that they are all in flight at once.
  const requests = uploads.map((u) => {
    const req = rawRequest(
      s.url,
      `PUT /v1/uploads/${u.id}/chunks/0 HTTP/1.1\nHost: x\nContent-Type: application/octet-stream\nContent-Length: ${size}\nConnection: close\n`,
    );
    return req;
  });
  for (const r of requests) {
    await r.start();
    await r.send(body.subarray(0, size / 2));
  }
  await sleep(500);
  for (const r of requests) await r.send(body.subarray(size / 2));
  await Promise.all(requests.map((r) => Promise.race([r.closedPromise, sleep(20_000)])));
  const statuses = requests.map((r) => Number(/^HTTP\/1\.1 (\d{3})/.exec(r.received)?.[1] ?? 0));
  const count = (n: number) => statuses.filter((x) => x === n).length;
  t.equal(count(500), 0, 'no 500');
  t.equal(count(200) + count(503), requests.length, `every request answered 200 or 503 (${count(200)} and ${count(503)})`);
  t.ok(count(503) > 0, 'some were refused: the budget held');
  t.ok(count(200) >= 30, 'the budget let about (160 - 64) / 3 bodies in');
  for (const r of requests.filter((_, i) => statuses[i] === 503)) {
    t.match(r.received, /retry-after: 2/i);
    t.match(r.received, /"code":"overloaded"/);
  }
  t.equal((await http('GET', `${s.url}/healthz`)).status, 200, 'still serving');
  t.notMatch(s.output(), /EMFILE/, 'the server never ran out');
});
