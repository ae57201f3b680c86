/**
 * `npm run soak [-- --seconds 120]`: the built server under a bounded mix, on loopback only -
 * valid uploads of every protocol (native chunks in random order, tus PATCHes that resume, IETF
 * appends), hostile requests (malformed JSON, text that is not Unicode, wrong types, bodies cut
 * short or trickled) and SIGKILL with a restart every few seconds. It ends by checking every upload
 * the clients saw completed (its content's SHA-256) and that the ledger holds nothing inconsistent
 * (counters against chunk rows, no rows for dropped uploads, staging files only for unfinished
 * ones). Exits non-zero on any finding.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { request } from 'undici';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '120' }, 'kill-every': { type: 'string', default: '20' } } });
const SECONDS = Number(values.seconds);
const KILL_EVERY_MS = Number(values['kill-every']) * 1000;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let server: ChildProcess | null = null;
let url = '';
const findings: string[] = [];
const completed = new Map<string, string>(); // upload id -> sha256 of the source
const counts = { native: 0, tus: 0, ietf: 0, hostile: 0, kills: 0, retries: 0, server5xx: 0 };

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function start(dataDir: string, port: number): Promise<void> {
  const env = {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    RATE_LIMIT_MAX: '0',
    MIN_CHUNK_SIZE: '1',
    MIN_BODY_RATE: '1KiB/2s',
  };
  server = spawn(process.execPath, [path.join(ROOT, 'dist/server/main.js')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  server.stderr?.on('data', (d) => (err += d));
  url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const r = await request(`${url}/healthz`);
      await r.body.text();
      if (r.statusCode === 200) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`the server did not start: ${err}`);
}

/** One request; network errors (a killed server) are retried by the callers, 5xx are counted. */
async function call(method: string, path_: string, opts: { headers?: Record<string, string>; body?: Buffer | string } = {}) {
  const r = await request(`${url}${path_}`, { method: method as 'GET', headers: opts.headers ?? {}, body: opts.body ?? null });
  const text = await r.body.text();
  if (r.statusCode >= 500 && r.statusCode !== 503 && r.statusCode !== 507) counts.server5xx++;
  return { status: r.statusCode, headers: r.headers, text, json: () => JSON.parse(text) as Record<string, any> };
}

/** Retries `fn` through restarts until it answers, for at most ~20 s. */
async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i > 100) throw err;
      counts.retries++;
      await sleep(200);
    }
  }
}

async function nativeUpload(): Promise<void> {
  const size = 64 * 1024 + Math.floor(Math.random() * 3 * 1024 * 1024);
  const chunk = 256 * 1024;
  const data = randomBytes(size);
  const created = await retrying(() =>
    call('POST', '/v1/uploads', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ file_name: 'n.bin', size, chunk_size: chunk }) }),
  );
  if (created.status !== 201) return;
  const id = created.json().id as string;
  for (let round = 0; round < 20; round++) {
    const status = await retrying(() => call('GET', `/v1/uploads/${id}`));
    const missing = (status.json().missing_chunks ?? []) as number[];
    if (missing.length === 0) break;
    for (const i of missing.sort(() => Math.random() - 0.5)) {
      const body = data.subarray(i * chunk, (i + 1) * chunk);
      await call('PUT', `/v1/uploads/${id}/chunks/${i}`, { headers: { 'content-type': 'application/octet-stream', 'x-chunk-sha256': sha(body) }, body }).catch(
        () => undefined,
      );
    }
  }
  const done = await retrying(() =>
    call('POST', `/v1/uploads/${id}/finish`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sha256: sha(data) }) }),
  );
  if (done.status === 200) {
    completed.set(id, sha(data));
    counts.native++;
  }
}

async function tusUpload(): Promise<void> {
  const size = 100_000 + Math.floor(Math.random() * 2 * 1024 * 1024);
  const data = randomBytes(size);
  const V = { 'tus-resumable': '1.0.0' };
  const created = await retrying(() => call('POST', '/files', { headers: { ...V, 'upload-length': String(size) } }));
  if (created.status !== 201) return;
  const loc = new URL(String(created.headers.location)).pathname;
  for (let round = 0; round < 30; round++) {
    const head = await retrying(() => call('HEAD', loc, { headers: V }));
    const offset = Number(head.headers['upload-offset']);
    if (offset === size) break;
    const end = Math.min(size, offset + 512 * 1024);
    await call('PATCH', loc, {
      headers: { ...V, 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset) },
      body: data.subarray(offset, end),
    }).catch(() => undefined);
  }
  const id = loc.split('/').pop() as string;
  const st = await retrying(() => call('GET', `/v1/uploads/${id}`));
  if (st.json().status === 'completed') {
    completed.set(id, sha(data));
    counts.tus++;
  }
}

async function ietfUpload(): Promise<void> {
  const data = randomBytes(10_000 + Math.floor(Math.random() * 500_000));
  const res = await call('POST', '/files', {
    headers: { 'upload-draft-interop-version': '6', 'upload-complete': '?1', 'content-type': 'application/octet-stream' },
    body: data,
  }).catch(() => undefined);
  if (res?.status !== 200) return;
  const id = new URL(String(res.headers.location)).pathname.split('/').pop() as string;
  completed.set(id, sha(data));
  counts.ietf++;
}

const HOSTILE: Array<() => Promise<unknown>> = [
  () => call('POST', '/v1/uploads', { headers: { 'content-type': 'application/json' }, body: '{"file_name": "a", "size": ' }),
  () => call('POST', '/v1/uploads', { headers: { 'content-type': 'application/json' }, body: '{"file_name":"a\\ud800","size":1}' }),
  () => call('POST', '/v1/uploads', { headers: { 'content-type': 'application/json; charset=utf-16' }, body: '{"file_name":"a","size":1}' }),
  () => call('POST', '/v1/uploads', { headers: { 'content-type': 'text/plain' }, body: 'x' }),
  () => call('PUT', '/v1/uploads/not-an-id/chunks/0', { headers: { 'content-type': 'application/octet-stream' }, body: 'x' }),
  () => call('PATCH', '/files/00000000-0000-0000-0000-000000000000', { headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0' }, body: 'x' }),
  () => call('HEAD', '/files/x', { headers: {} }),
  // A body cut short: the connection closed mid-body.
  () =>
    new Promise<void>((resolve) => {
      const { port } = new URL(url);
      const s = net.connect(Number(port), '127.0.0.1', () => {
        s.write(
          'POST /files HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 1000\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 1000\r\n\r\nabc',
        );
        setTimeout(() => s.destroy(), 50);
      });
      s.on('error', () => {});
      s.on('close', () => resolve());
    }),
];

async function loop(until: number, fn: () => Promise<unknown>, counter?: keyof typeof counts): Promise<void> {
  while (Date.now() < until) {
    try {
      await fn();
      if (counter) counts[counter]++;
    } catch {
      await sleep(100);
    }
  }
}

async function check(dataDir: string): Promise<void> {
  for (const [id, expected] of completed) {
    const r = await request(`${url}/v1/uploads/${id}/content`);
    const hash = createHash('sha256');
    for await (const b of r.body) hash.update(b as Buffer);
    if (r.statusCode !== 200 || hash.digest('hex') !== expected) findings.push(`upload ${id}: content ${r.statusCode} does not match the source`);
  }
  const db = new Database(path.join(dataDir, 'sluice.db'), { readonly: true });
  try {
    const bad = db
      .prepare(
        `SELECT u.id, u.status, u.chunks_received, u.bytes_received, COUNT(c.idx) AS rows, COALESCE(SUM(c.length), 0) AS bytes
         FROM uploads u LEFT JOIN chunks c ON c.upload_id = u.id GROUP BY u.id
         HAVING (u.status IN ('uploading', 'finishing') AND (rows != u.chunks_received OR bytes != u.bytes_received))
             OR (u.status IN ('aborted', 'expired', 'failed') AND rows > 0)`,
      )
      .all() as Array<{ id: string; status: string }>;
    for (const b of bad) findings.push(`ledger: upload ${b.id} (${b.status}) disagrees with its chunk rows`);
    const unfinished = new Set((db.prepare("SELECT id FROM uploads WHERE status IN ('uploading', 'finishing')").all() as { id: string }[]).map((r) => r.id));
    for (const name of await fs.readdir(path.join(dataDir, 'staging'))) {
      if (!unfinished.has(name)) findings.push(`staging file ${name} belongs to no unfinished upload`);
    }
    const done = db.prepare("SELECT id, size FROM uploads WHERE status = 'completed' AND is_part = 0").all() as { id: string; size: number }[];
    for (const d of done) {
      const st = await fs.stat(path.join(dataDir, 'files', d.id)).catch(() => undefined);
      if (st?.size !== d.size) findings.push(`completed upload ${d.id}: stored file missing or of the wrong size`);
    }
  } finally {
    db.close();
  }
}

async function main(): Promise<void> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sluice-soak-'));
  const port = await freePort();
  await start(dataDir, port);
  const until = Date.now() + SECONDS * 1000;
  const killer = (async () => {
    while (Date.now() + KILL_EVERY_MS < until) {
      await sleep(KILL_EVERY_MS);
      server?.kill('SIGKILL');
      await new Promise((r) => server?.once('exit', r));
      counts.kills++;
      await start(dataDir, port);
    }
  })();
  await Promise.all([
    loop(until, nativeUpload),
    loop(until, nativeUpload),
    loop(until, tusUpload),
    loop(until, ietfUpload),
    loop(until, () => (HOSTILE[Math.floor(Math.random() * HOSTILE.length)] as () => Promise<unknown>)(), 'hostile'),
    killer,
  ]);
  // A clean restart, then the checks on what the clients saw and on the ledger.
  server?.kill('SIGTERM');
  await new Promise((r) => server?.once('exit', r));
  await start(dataDir, port);
  await check(dataDir);
  server?.kill('SIGTERM');
  await new Promise((r) => server?.once('exit', r));
  await fs.rm(dataDir, { recursive: true, force: true });
  if (counts.server5xx > 0) findings.push(`${counts.server5xx} answers were 5xx other than 503/507`);
  console.log(
    `soak ${SECONDS}s: ${counts.native} native, ${counts.tus} tus, ${counts.ietf} IETF uploads completed and verified; ${counts.hostile} hostile requests; ${counts.kills} SIGKILLs; ${counts.retries} retries`,
  );
  for (const f of findings) console.log(`FINDING: ${f}`);
  console.log(findings.length === 0 ? 'soak: no finding' : `soak: ${findings.length} finding(s)`);
  process.exitCode = findings.length === 0 ? 0 : 1;
}

await main();
