import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createUpload, http, putChunk, sha256, sleep, startServer, tmpDir } from '../helpers/server.js';

const run = promisify(execFile);

t.test('GET /v1/uploads lists newest first, paginated with an opaque cursor', async (t) => {
  const s = await startServer(t);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push((await createUpload(s.url, { file_name: `f${i}`, size: 10 })).id);
    await sleep(3);
  }
  const first = await http('GET', `${s.url}/v1/uploads?limit=2`);
  t.equal(first.status, 200);
  t.same(
    first.body.uploads.map((u: any) => u.id),
    [ids[4], ids[3]],
  );
  const second = await http('GET', `${s.url}/v1/uploads?limit=2&cursor=${first.body.next_cursor as string}`);
  t.same(
    second.body.uploads.map((u: any) => u.id),
    [ids[2], ids[1]],
  );
  const third = await http('GET', `${s.url}/v1/uploads?limit=2&cursor=${second.body.next_cursor as string}`);
  t.same(
    third.body.uploads.map((u: any) => u.id),
    [ids[0]],
  );
  t.equal(third.body.next_cursor, null, 'no more pages');
  const all = await http('GET', `${s.url}/v1/uploads`);
  t.equal(all.body.uploads.length, 5, 'default limit covers them');
  for (const [q, name] of [
    ['limit=0', 'zero'],
    ['limit=501', 'over 500'],
    ['limit=x', 'not a number'],
    ['cursor=garbage', 'foreign cursor'],
    ['other=1', 'unknown parameter'],
  ]) {
    const res = await http('GET', `${s.url}/v1/uploads?${q}`);
    t.same([res.status, res.body.code], [400, 'invalid_request'], name as string);
  }
});

t.test('status pages through the missing chunks of a 10,000-chunk upload', async (t) => {
  const s = await startServer(t); // test config: chunks may be as small as 1 byte
  const up = await createUpload(s.url, { file_name: 'many.bin', size: 10_000 * 16, chunk_size: 16 });
  for (const i of [0, 2, 9998]) t.equal((await putChunk(s.url, up.id, i, randomBytes(16))).status, 200);
  const expected = Array.from({ length: 10_000 }, (_, i) => i).filter((i) => ![0, 2, 9998].includes(i));

  const first = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.equal(first.body.missing_chunks.length, 1000, 'one page of 1000 by default');
  t.same(first.body.missing_chunks.slice(0, 3), [1, 3, 4]);
  t.equal(first.body.missing_chunks_count, 9997);
  t.equal(first.body.missing_chunks_next, 1001, 'the last index of the page');
  const seen: number[] = [];
  let pages = 0;
  for (let next: number | undefined = -1; next !== undefined; pages++) {
    const res = await http('GET', `${s.url}/v1/uploads/${up.id}?missing_limit=3000${next >= 0 ? `&missing_after=${next}` : ''}`);
    t.equal(res.status, 200);
    seen.push(...(res.body.missing_chunks as number[]));
    next = res.body.missing_chunks_next;
  }
  t.equal(pages, 4, '9997 indexes in pages of 3000');
  t.same(seen, expected, 'the pages add up to exactly the missing chunks, in order');
  const whole = await http('GET', `${s.url}/v1/uploads/${up.id}?missing_limit=10000`);
  t.same([whole.body.missing_chunks.length, whole.body.missing_chunks_next], [9997, undefined], 'one page when it fits');
  const last = await http('GET', `${s.url}/v1/uploads/${up.id}?missing_after=9997`);
  t.same(last.body.missing_chunks, [9999]);
  for (const q of ['missing_limit=0', 'missing_limit=10001', 'missing_after=-1', 'missing_after=x']) {
    const res = await http('GET', `${s.url}/v1/uploads/${up.id}?${q}`);
    t.same([res.status, res.body.code], [400, 'invalid_request'], q);
  }
});

t.test('GET content streams the completed file with Range support and a safe Content-Disposition', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(3000);
  const name = '報告 "final".pdf';
  const up = await createUpload(s.url, { file_name: name, size: 3000, chunk_size: 1000, content_type: 'application/pdf', sha256: sha256(data) });
  const early = await http('GET', `${s.url}/v1/uploads/${up.id}/content`);
  t.same([early.status, early.body.code], [409, 'upload_not_completed'], 'not before it is completed');
  for (let i = 0; i < 3; i++) await putChunk(s.url, up.id, i, data.subarray(i * 1000, (i + 1) * 1000));
  await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });

  const full = await fetch(`${s.url}/v1/uploads/${up.id}/content`);
  t.equal(full.status, 200);
  t.same(Buffer.from(await full.arrayBuffer()), data, 'bytes equal');
  t.equal(full.headers.get('content-type'), 'application/pdf');
  t.equal(full.headers.get('content-length'), '3000');
  t.equal(full.headers.get('accept-ranges'), 'bytes');
  const cd = full.headers.get('content-disposition') ?? '';
  t.equal(
    cd,
    `attachment; filename="?? \\"final\\".pdf"; filename*=UTF-8''%E5%A0%B1%E5%91%8A%20%22final%22.pdf`,
    'RFC 6266: quoted ASCII fallback and the UTF-8 name',
  );

  const part = await fetch(`${s.url}/v1/uploads/${up.id}/content`, { headers: { range: 'bytes=1000-1099' } });
  t.equal(part.status, 206);
  t.equal(part.headers.get('content-range'), 'bytes 1000-1099/3000');
  t.same(Buffer.from(await part.arrayBuffer()), data.subarray(1000, 1100));
  const suffix = await fetch(`${s.url}/v1/uploads/${up.id}/content`, { headers: { range: 'bytes=-10' } });
  t.same([suffix.status, Buffer.from(await suffix.arrayBuffer())], [206, data.subarray(2990)], 'suffix range');
  const bad = await fetch(`${s.url}/v1/uploads/${up.id}/content`, { headers: { range: 'bytes=5000-6000' } });
  t.equal(bad.status, 416);
  t.equal(bad.headers.get('content-range'), 'bytes */3000');
  t.equal(((await bad.json()) as any).code, 'range_not_satisfiable');
  const junk = await fetch(`${s.url}/v1/uploads/${up.id}/content`, { headers: { range: 'pages=1' } });
  t.same([junk.status, (await junk.arrayBuffer()).byteLength], [200, 3000], 'an unknown range unit is ignored');
});

t.test('expiry: the sweeper expires uploads past expires_at and removes their bytes', async (t) => {
  const s = await startServer(t, { env: { UPLOAD_TTL: '300ms', SWEEP_INTERVAL: '100ms' } });
  const up = await createUpload(s.url, { file_name: 'a', size: 2000, chunk_size: 1000 });
  t.equal((await putChunk(s.url, up.id, 0, randomBytes(1000))).status, 200);
  const staging = path.join(s.dataDir, 'staging', up.id);
  await fs.access(staging);
  await sleep(700);
  const row = s.db.prepare('SELECT status FROM uploads WHERE id = ?').get(up.id) as { status: string };
  t.equal(row.status, 'expired', 'the sweeper (not a request) expired it');
  await t.rejects(fs.access(staging), 'staging removed');
  t.equal((s.db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE upload_id = ?').get(up.id) as { n: number }).n, 0);
  const put = await putChunk(s.url, up.id, 1, randomBytes(1000));
  t.same([put.status, put.body.code], [410, 'upload_expired']);
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { sha256: '0'.repeat(64) } });
  t.same([fin.status, fin.body.code], [410, 'upload_expired']);
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`)).body.status, 'expired', 'status still answers');
});

t.test('expiry is enforced on access even before the sweeper runs', async (t) => {
  const s = await startServer(t, { env: { UPLOAD_TTL: '200ms', SWEEP_INTERVAL: '1h' } });
  const up = await createUpload(s.url, { file_name: 'a', size: 1000, chunk_size: 1000 });
  await sleep(300);
  const put = await putChunk(s.url, up.id, 0, randomBytes(1000));
  t.same([put.status, put.body.code], [410, 'upload_expired']);
  await t.rejects(fs.access(path.join(s.dataDir, 'staging', up.id)), 'staging removed');
});

t.test('npm run cleanup expires due uploads once (and --dry-run only lists them)', async (t) => {
  const dataDir = await tmpDir(t);
  const s = await startServer(t, { dataDir, env: { UPLOAD_TTL: '200ms', SWEEP_INTERVAL: '1h' } });
  const due = await createUpload(s.url, { file_name: 'old.bin', size: 1000 });
  await s.close();
  await sleep(300);
  const env = { ...process.env, DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
  const dry = await run(process.execPath, ['dist/server/cleanup.js', '--dry-run'], { env });
  t.match(dry.stdout, new RegExp(`would expire ${due.id}`));
  t.match(dry.stdout, /1 upload\(s\) would be expired/);
  await fs.access(path.join(dataDir, 'staging', due.id));
  const real = await run(process.execPath, ['dist/server/cleanup.js'], { env });
  t.match(real.stdout, /1 upload\(s\) expired/);
  await t.rejects(fs.access(path.join(dataDir, 'staging', due.id)), 'staging removed');
});

t.test('a restart on the same DATA_DIR keeps every recorded chunk', async (t) => {
  const dataDir = await tmpDir(t);
  const data = randomBytes(5000);
  const first = await startServer(t, { dataDir });
  const up = await createUpload(first.url, { file_name: 'a', size: 5000, chunk_size: 1000, sha256: sha256(data) });
  for (const i of [4, 0, 2]) await putChunk(first.url, up.id, i, data.subarray(i * 1000, (i + 1) * 1000));
  await first.close();

  const second = await startServer(t, { dataDir });
  const st = await http('GET', `${second.url}/v1/uploads/${up.id}`);
  t.same([st.body.chunks_received, st.body.bytes_received, st.body.missing_chunks], [3, 3000, [1, 3]]);
  const dup = await putChunk(second.url, up.id, 2, data.subarray(2000, 3000));
  t.same([dup.status, dup.body.chunks_received], [200, 3], 'a recorded chunk is still recognised');
  for (const i of [1, 3]) await putChunk(second.url, up.id, i, data.subarray(i * 1000, (i + 1) * 1000));
  const fin = await http('POST', `${second.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
  t.same(await fs.readFile(path.join(dataDir, 'files', up.id)), data);
});

t.test('healthz: 200 when usable, 503 when the data directory is gone', async (t) => {
  const s = await startServer(t);
  const ok = await http('GET', `${s.url}/healthz`);
  t.same([ok.status, ok.body.status], [200, 'ok']);
  await fs.rm(path.join(s.dataDir, 'files'), { recursive: true });
  const bad = await http('GET', `${s.url}/healthz`);
  t.same([bad.status, bad.body.status, bad.body.checks.storage.ok], [503, 'unavailable', false]);
  t.notMatch(bad.text, /ENOENT|\/tmp/, 'no paths leak');
});

t.test('X-Request-ID is accepted or generated, and echoed', async (t) => {
  const s = await startServer(t);
  const given = await http('GET', `${s.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
  t.equal(given.headers['x-request-id'], 'abc-123');
  const generated = await http('GET', `${s.url}/healthz`);
  t.match(generated.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  const hostile = await http('GET', `${s.url}/healthz`, { headers: { 'x-request-id': 'x'.repeat(500) } });
  t.not(hostile.headers['x-request-id'], 'x'.repeat(500), 'an overlong id is replaced');
});

t.test('DELETE /v1/files/:id removes a completed file, aborts an unfinished upload, and is idempotent', async (t) => {
  const s = await startServer(t, { env: { AUTH_TOKENS: 'alice-token-0123456789abcdef:alice,bob-token-0123456789abcdef0000:bob' } });
  const alice = { authorization: 'Bearer alice-token-0123456789abcdef' };
  const data = randomBytes(5000);
  const up = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'gone.bin', size: data.length }, headers: alice })).body;
  await http('PUT', `${s.url}/v1/uploads/${up.id}/chunks/0`, { body: data, headers: { ...alice, 'content-type': 'application/octet-stream' } });
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { sha256: sha256(data) }, headers: alice });
  const stored = path.join(s.dataDir, fin.body.location.path as string);
  t.equal(sha256(await fs.readFile(stored)), sha256(data));
  const bob = await http('DELETE', `${s.url}/v1/files/${up.id}`, { headers: { authorization: 'Bearer bob-token-0123456789abcdef0000' } });
  t.same([bob.status, bob.body.code], [404, 'not_found'], "another user's file is not there for them");
  t.equal((await http('DELETE', `${s.url}/v1/files/${up.id}`, { headers: alice })).status, 204);
  await t.rejects(fs.access(stored), 'the stored bytes are gone');
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`, { headers: alice })).body.status, 'aborted');
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}/content`, { headers: alice })).status, 409, 'nothing to download');
  t.equal((await http('DELETE', `${s.url}/v1/files/${up.id}`, { headers: alice })).status, 204, 'again: a no-op');
  const open = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'open.bin', size: 10 }, headers: alice })).body;
  t.equal((await http('DELETE', `${s.url}/v1/files/${open.id}`, { headers: alice })).status, 204);
  t.equal((await http('GET', `${s.url}/v1/uploads/${open.id}`, { headers: alice })).body.status, 'aborted', 'an unfinished one is aborted');
});

t.test('GET /v1/server: the limits and how uploads travel, without a token', async (t) => {
  const s = await startServer(t, {
    env: { AUTH_TOKENS: 'alice-token-0123456789abcdef:alice', MAX_UPLOAD_SIZE: '2GiB', ALLOWED_TYPES: 'image/png,application/pdf' },
  });
  const info = await http('GET', `${s.url}/v1/server`);
  t.equal(info.status, 200);
  t.match(info.body, {
    name: 'sluice',
    auth_required: true,
    max_upload_size: 2 * 1024 ** 3,
    allowed_types: ['image/png', 'application/pdf'],
    tus_endpoint: '/files',
    direct_uploads: 'server',
  });
  const open = await startServer(t);
  t.same([(await http('GET', `${open.url}/v1/server`)).body.auth_required, (await http('GET', `${open.url}/v1/server`)).body.allowed_types], [false, null]);
});
