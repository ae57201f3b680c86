import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import * as tus from 'tus-js-client';
import { spawnServer } from '../helpers/process.js';
import { PROCESSOR_TOKEN, WEBHOOK_SECRET, startReceiver } from '../helpers/receiver.js';
import { createUpload, freePort, http, putChunk, sha256, sleep, startServer, tmpDir } from '../helpers/server.js';

const KiB = 1024;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const webhookEnv = (url: string) => ({
  WEBHOOK_URLS: `${url}/events`,
  WEBHOOK_SECRET,
  WEBHOOK_TIMEOUT: '300ms',
  WEBHOOK_RETRY_MIN: '50ms',
});

/** A native upload sent in one chunk and finished. */
async function uploadFile(url: string, name: string, data: Buffer, headers: Record<string, string> = {}) {
  const up = await createUpload(url, { file_name: name, size: data.length, sha256: sha256(data), chunk_size: Math.max(data.length, 1) });
  const put = await putChunk(url, up.id, 0, data);
  if (put.status !== 200 && put.status !== 201) throw new Error(`chunk: ${put.status} ${put.text}`);
  return { id: up.id as string, finish: await http('POST', `${url}/v1/uploads/${up.id}/finish`, { json: {}, headers }) };
}

function tusUpload(endpoint: string, data: Buffer, metadata: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint,
      metadata,
      chunkSize: 16 * KiB,
      retryDelays: [],
      onError: reject,
      onSuccess: () => resolve(u.url as string),
    });
    u.start();
  });
}

t.test('webhooks: a receiver that refuses, times out and fails first still gets every event, in order per upload, each signature verified', async (t) => {
  const receiver = await startReceiver(t, { failPlan: ['refuse', 'timeout', '500'] });
  const s = await startServer(t, { env: webhookEnv(receiver.url) });
  const data = randomBytes(40 * KiB);
  const a = await uploadFile(s.url, 'a.bin', data);
  t.equal(a.finish.status, 200);
  const b = await createUpload(s.url, { file_name: 'b.bin', size: 10 });
  t.equal((await http('DELETE', `${s.url}/v1/uploads/${b.id}`)).status, 204);
  const tusUrl = await tusUpload(`${s.url}/files`, randomBytes(50 * KiB), { filename: 'c.bin' });
  t.equal((await http('PATCH', `${s.url}/v1/files/${a.id}`, { json: { metadata: { album: 'x' } } })).status, 200);
  t.equal((await http('DELETE', `${s.url}/v1/files/${a.id}`)).status, 204);

  const listed = (await http('GET', `${s.url}/v1/events?limit=1000`)).body.events as { id: number; type: string; upload_id: string }[];
  const c = tusUrl.slice(tusUrl.lastIndexOf('/') + 1);
  const of = (id: string) => listed.filter((e) => e.upload_id === id).map((e) => e.type);
  t.same(of(a.id), ['upload.created', 'upload.completed', 'file.updated', 'file.deleted']);
  t.same(of(b.id), ['upload.created', 'upload.aborted']);
  t.same(of(c), ['upload.created', 'upload.completed']);

  const records = await receiver.until((r) => listed.every((e) => r.some((x) => x.step === 'ok' && x.id === `evt_${e.id}`)));
  t.same(
    records.slice(0, 3).map((r) => r.step),
    ['refuse', 'timeout', '500'],
    'the first three attempts failed',
  );
  t.ok(
    records.every((r) => r.verified),
    'every request verified with the standardwebhooks library',
  );
  const delivered = records.filter((r) => r.step === 'ok');
  t.equal(new Set(delivered.map((r) => r.id)).size, listed.length, 'each event delivered (at least once)');
  for (const id of [a.id, b.id, c]) {
    const sent = [...new Map(delivered.filter((r) => r.data.id === id).map((r) => [r.id, r.type])).values()];
    t.same(sent, of(id), `upload ${id.slice(0, 8)}: delivered in the order it happened`);
  }
  const completed = delivered.find((r) => r.type === 'upload.completed' && r.data.id === a.id);
  t.same([completed.data.sha256, completed.data.size, completed.data.file_name], [sha256(data), data.length, 'a.bin']);
  t.match(completed.data.download_url, /\/v1\/uploads\/.+\/content\?expires=/, 'a signed download link');
  const updated = delivered.find((r) => r.type === 'file.updated');
  t.same(updated.data.metadata, { album: 'x' });

  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  t.match(metrics, new RegExp(`sluice_webhook_attempts_total{outcome="delivered"} ${delivered.length}`));
  t.match(metrics, /sluice_webhook_attempts_total{outcome="failed"} ([3-9]|\d\d)/);
  t.match(metrics, /sluice_webhook_pending 0/);
  t.match(metrics, /sluice_webhook_oldest_pending_seconds 0/);

  const page = await http('GET', `${s.url}/v1/events?after=${listed[1]?.id}&limit=2`);
  t.same(
    page.body.events.map((e: { id: number }) => e.id),
    listed.slice(2, 4).map((e) => e.id),
  );
  t.equal(page.body.next_after, listed[3]?.id);
  t.equal((await http('GET', `${s.url}/v1/events?limit=0`)).status, 400);
});

t.test('webhooks: an endpoint that answers 410 Gone is sent nothing more; the others go on', async (t) => {
  const receiver = await startReceiver(t);
  const s = await startServer(t, { env: { ...webhookEnv(receiver.url), WEBHOOK_URLS: `${receiver.url}/gone,${receiver.url}/events` } });
  const first = await createUpload(s.url, { file_name: 'g1.bin', size: 10 });
  await receiver.until((r) => r.some((x) => x.path === '/gone' && x.data.id === first.id));
  let metrics = '';
  for (let i = 0; i < 100 && !/outcome="dead"} 1/.test(metrics); i++) {
    await sleep(20);
    metrics = await (await fetch(`${s.url}/metrics`)).text();
  }
  const before = (await receiver.records()).filter((r) => r.path === '/gone').length;
  const later: string[] = [];
  for (const name of ['g2.bin', 'g3.bin']) later.push((await createUpload(s.url, { file_name: name, size: 10 })).id);
  await receiver.until((r) => [first.id, ...later].every((id) => r.some((x) => x.path === '/events' && x.step === 'ok' && x.data.id === id)));
  await sleep(200);
  t.equal((await receiver.records()).filter((r) => r.path === '/gone').length, before, 'nothing was sent to it after the 410');
  metrics = await (await fetch(`${s.url}/metrics`)).text();
  t.match(metrics, /sluice_webhook_attempts_total{outcome="dead"} 1/);
  t.match(metrics, /sluice_webhook_attempts_total{outcome="delivered"} 3/, 'the other endpoint got all three');
  t.match(metrics, /sluice_webhook_pending 0/, 'the stopped endpoint holds nothing pending');
});

t.test('webhooks: SIGKILL between the commit and its delivery; the event is delivered after the restart', async (t) => {
  const receiver = await startReceiver(t);
  await receiver.control('down');
  const dataDir = await tmpDir(t);
  const env = { DATA_DIR: dataDir, ...webhookEnv(receiver.url), WEBHOOK_RETRY_MIN: '5s' };
  let server = await spawnServer(env, t);
  const up = await createUpload(server.url, { file_name: 'k.bin', size: 100 });
  await receiver.until((r) => r.some((x) => x.type === 'upload.created' && x.data.id === up.id));
  const second = await createUpload(server.url, { file_name: 'k2.bin', size: 100 });
  server.child.kill('SIGKILL');
  await server.exited;
  await receiver.control('up');
  server = await spawnServer(env, t);
  const records = await receiver.until((r) => [up.id, second.id].every((id) => r.some((x) => x.step === 'ok' && x.data.id === id)));
  const first = records.filter((x) => x.data.id === up.id);
  t.equal(first[0].step, 'down', 'tried before the kill');
  t.equal(first.at(-1).step, 'ok', 'delivered after the restart');
  t.equal(first[0].id, first.at(-1).id, 'with the same webhook-id (receivers drop duplicates by it)');
  t.ok(records.every((r) => r.verified));
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('pre-create hook: tus-js-client sees the hook refusal; native creates are renamed; an unreachable hook is a 503 unless fail-open', async (t) => {
  const receiver = await startReceiver(t);
  const s = await startServer(t, { env: { HOOK_PRE_CREATE_URL: `${receiver.url}/pre-create`, WEBHOOK_SECRET } });
  const err = await tusUpload(`${s.url}/files`, randomBytes(KiB), { filename: 'secret.bin', reject: 'yes' }).catch((e: Error) => e);
  t.ok(err instanceof Error);
  t.match(String((err as Error).message), /uploads of secret\.bin are not allowed by policy/, "the hook's message reaches tus-js-client");
  t.match(String((err as Error).message), /403/);
  t.same((await http('GET', `${s.url}/v1/uploads`)).body.uploads, [], 'nothing was created');

  const ietf = await http('POST', `${s.url}/files`, {
    body: Buffer.from('hello'),
    headers: { 'upload-draft-interop-version': '8', 'upload-complete': '?1', 'content-disposition': 'attachment; filename="forbidden.txt"' },
  });
  t.same(
    [ietf.status, ietf.body?.detail ?? ietf.text],
    [403, 'uploads of forbidden.txt are not allowed by policy'],
    'an IETF client gets it in its problem document',
  );
  const refused = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'x.bin', size: 5, metadata: { reject: '1' } } });
  t.same([refused.status, refused.body.code, refused.body.detail], [403, 'rejected_by_hook', 'uploads of x.bin are not allowed by policy']);
  const renamed = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'rename-me.bin', size: 5, metadata: { a: 'b' } } });
  t.same([renamed.status, renamed.body.file_name, renamed.body.metadata], [201, 'renamed-me.bin', { a: 'b', checked: 'yes' }]);
  const asked = (await receiver.records()).find((r) => r.path === '/pre-create' && r.data.file_name === 'rename-me.bin');
  t.same([asked.data.owner, asked.data.size, asked.data.protocol, asked.verified], ['anonymous', 5, 'native', true]);

  const closed = 'http://127.0.0.1:9/pre-create';
  const shut = await startServer(t, { env: { HOOK_PRE_CREATE_URL: closed, WEBHOOK_SECRET } });
  const unavailable = await http('POST', `${shut.url}/v1/uploads`, { json: { file_name: 'y.bin', size: 5 } });
  t.same([unavailable.status, unavailable.body.code, unavailable.headers['retry-after']], [503, 'hook_unavailable', '5']);
  const open = await startServer(t, { env: { HOOK_PRE_CREATE_URL: closed, WEBHOOK_SECRET, HOOK_FAIL_OPEN: 'true' } });
  t.equal((await http('POST', `${open.url}/v1/uploads`, { json: { file_name: 'y.bin', size: 5 } })).status, 201, 'fail-open lets it through');
});

t.test('post-processing: processing until the processor answers; Prefer: wait=N; a failed answer removes the file', async (t) => {
  const receiver = await startReceiver(t);
  const s = await startServer(t, { env: { POST_PROCESS_URL: `${receiver.url}/process`, PROCESSOR_TOKEN, WEBHOOK_SECRET, WEBHOOK_RETRY_MIN: '50ms' } });
  const data = randomBytes(20 * KiB);
  const ok = await uploadFile(s.url, 'clip.mp4', data, { prefer: 'wait=10' });
  t.equal(ok.finish.status, 200);
  t.same([ok.finish.body.status, ok.finish.body.processing?.outputs?.thumbnail_url], ['completed', `https://cdn.example/${ok.id}.jpg`]);
  t.equal(ok.finish.body.processing.outputs.bytes_seen, data.length, 'the processor read the file through its signed link');

  const bad = await uploadFile(s.url, 'fail-me.mp4', data);
  t.equal(bad.finish.body.status, 'processing', 'stored, waiting for its processor');
  let status = (await http('GET', `${s.url}/v1/uploads/${bad.id}`)).body;
  for (let i = 0; i < 200 && status.status === 'processing'; i++) {
    await sleep(50);
    status = (await http('GET', `${s.url}/v1/uploads/${bad.id}`)).body;
  }
  t.same([status.status, status.failure, status.processing], ['failed', 'cannot transcode', { status: 'failed', message: 'cannot transcode' }]);
  t.equal((await http('GET', `${s.url}/v1/uploads/${bad.id}/content`)).status, 409);
  const files = await fs.readdir(path.join(s.dataDir, path.dirname(ok.finish.body.location.path)));
  t.same(files, [path.basename(ok.finish.body.location.path)], "the failed file's bytes are gone");

  // While processing: finishing again answers the same; tus and IETF clients see a complete upload.
  const slow = await uploadFile(s.url, 'slow.mp4', data);
  t.equal(slow.finish.body.status, 'processing');
  const repeat = await http('POST', `${s.url}/v1/uploads/${slow.id}/finish`, { json: {} });
  t.same([repeat.status, repeat.body.status, repeat.body.sha256], [200, 'processing', sha256(data)], 'finishing again answers the same');
  const tusBody = randomBytes(3000);
  const created = await http('POST', `${s.url}/files`, {
    body: tusBody,
    headers: {
      'tus-resumable': '1.0.0',
      'upload-length': String(tusBody.length),
      'upload-metadata': `filename ${Buffer.from('slow-tus.bin').toString('base64')}`,
      'content-type': 'application/offset+octet-stream',
    },
  });
  t.equal(created.headers['upload-offset'], String(tusBody.length));
  const head = await http('HEAD', String(created.headers.location), { headers: { 'tus-resumable': '1.0.0' } });
  t.same([head.status, head.headers['upload-offset']], [200, String(tusBody.length)], 'a tus HEAD while processing: every byte is in');
  const ietf = await http('POST', `${s.url}/files`, {
    body: Buffer.from('ietf bytes'),
    headers: { 'upload-draft-interop-version': '8', 'upload-complete': '?1', 'content-disposition': 'attachment; filename="slow-ietf.txt"' },
  });
  t.same([ietf.status, ietf.headers['upload-complete']], [200, '?1'], 'an IETF upload that completes says so while it is processed');

  const forged = await http('POST', `${s.url}/v1/uploads/${ok.id}/processing`, {
    json: { status: 'failed' },
    headers: { authorization: 'Bearer wrong-token-000000000' },
  });
  t.same([forged.status, forged.body.code], [401, 'unauthorized']);
  const again = await http('POST', `${s.url}/v1/uploads/${ok.id}/processing`, {
    json: { status: 'completed' },
    headers: { authorization: `Bearer ${PROCESSOR_TOKEN}` },
  });
  t.equal(again.status, 200, 'the same answer again is a no-op');
  const changed = await http('POST', `${s.url}/v1/uploads/${ok.id}/processing`, {
    json: { status: 'failed' },
    headers: { authorization: `Bearer ${PROCESSOR_TOKEN}` },
  });
  t.same([changed.status, changed.body.code], [409, 'not_processing']);
  const types = (await http('GET', `${s.url}/v1/events`)).body.events
    .filter((e: { upload_id: string }) => e.upload_id === bad.id)
    .map((e: { type: string }) => e.type);
  t.same(types, ['upload.created', 'upload.processing', 'upload.failed']);
});

t.test("the README's receiver verifies and handles the events sluice sends", async (t) => {
  const readme = await fs.readFile(path.join(ROOT, 'README.md'), 'utf8');
  const code = /```js\n(\/\/ receiver\.mjs[\s\S]*?)```/.exec(readme)?.[1];
  t.ok(code, 'the README has the receiver');
  const dir = await tmpDir(t);
  await fs.writeFile(path.join(dir, 'receiver.mjs'), code as string);
  await fs.symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const port = await freePort();
  const child = spawn(process.execPath, ['receiver.mjs'], { cwd: dir, env: { PATH: process.env.PATH ?? '', WEBHOOK_SECRET, PORT: String(port) } });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  while (!out.includes('listening')) await sleep(20);
  const s = await startServer(t, { env: { WEBHOOK_URLS: `http://127.0.0.1:${port}/`, WEBHOOK_SECRET } });
  const data = randomBytes(5 * KiB);
  const up = await uploadFile(s.url, 'readme.bin', data);
  t.equal(up.finish.status, 200);
  for (let i = 0; i < 200 && !out.includes('stored'); i++) await sleep(25);
  t.match(out, `stored ${up.id} ${sha256(data)} readme.bin`);
  let pending = '';
  for (let i = 0; i < 200 && !/sluice_webhook_pending 0/.test(pending); i++) {
    await sleep(25);
    pending = await (await fetch(`${s.url}/metrics`)).text();
  }
  t.match(pending, /sluice_webhook_attempts_total{outcome="delivered"} 2/, 'created and completed, each acknowledged');
});
