import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { MAIN } from '../helpers/process.js';
import { createUpload, http, putChunk, sha256, sleep, startServer, tmpDir } from '../helpers/server.js';

/** Runs statements against a stopped server's ledger (what a crash could have left). */
async function tamper(dataDir: string, fn: (db: import('better-sqlite3').Database) => void) {
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(path.join(dataDir, 'sluice.db'));
  fn(db);
  db.close();
}

t.test('start-up reconciliation settles every half-done state, and never completes without the bytes', async (t) => {
  const dataDir = await tmpDir(t);
  const first = await startServer(t, { dataDir });
  const data = randomBytes(3000);
  const make = async () => {
    const up = await createUpload(first.url, { file_name: 'f.bin', size: 3000, chunk_size: 1000, sha256: sha256(data) });
    for (let i = 0; i < 3; i++) await putChunk(first.url, up.id, i, data.subarray(i * 1000, (i + 1) * 1000));
    return up.id as string;
  };
  const stillStaged = await make(); // finishing, bytes still staged  -> uploading again
  const published = await make(); // finishing, already renamed into files/ -> completed
  const lost = await make(); // finishing, bytes nowhere -> failed
  const noStaging = await make(); // uploading without a staging file -> failed
  const tus = await http('POST', `${first.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': '5' } });
  const tusId = String(tus.headers.location).split('/').pop() as string;
  await http('PATCH', tus.headers.location as string, {
    headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' },
    body: 'hell',
  });
  await first.close();

  const staging = (id: string) => path.join(dataDir, 'staging', id);
  await tamper(dataDir, (db) => {
    for (const id of [stillStaged, published, lost, tusId]) db.prepare("UPDATE uploads SET status = 'finishing' WHERE id = ?").run(id);
    // The tus upload's last byte, recorded just before the crash.
    db.prepare('UPDATE uploads SET bytes_received = 5 WHERE id = ?').run(tusId);
  });
  await fs.appendFile(staging(tusId), '').then(async () => {
    const fh = await fs.open(staging(tusId), 'r+');
    await fh.write(Buffer.from('o'), 0, 1, 4);
    await fh.close();
  });
  await fs.rename(staging(published), path.join(dataDir, 'files', published));
  await fs.rename(staging(tusId), path.join(dataDir, 'files', tusId));
  await fs.rm(staging(lost));
  await fs.rm(staging(noStaging));
  const orphan = randomUUID();
  await fs.writeFile(staging(orphan), 'left behind');
  await fs.writeFile(path.join(dataDir, 'files', `.incoming-${randomUUID()}`), 'half a copy');

  const second = await startServer(t, { dataDir });
  const status = async (id: string) => (await http('GET', `${second.url}/v1/uploads/${id}`)).body;
  t.equal((await status(stillStaged)).status, 'uploading', 'finishing with staged bytes: finishable again');
  const fin = await http('POST', `${second.url}/v1/uploads/${stillStaged}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
  const pub = await status(published);
  t.same(
    [pub.status, pub.sha256, pub.location],
    ['completed', sha256(data), { backend: 'local', path: `files/${published}` }],
    'published before the crash: completed',
  );
  const tusDone = await status(tusId);
  t.same([tusDone.status, tusDone.sha256], ['completed', sha256('hello')], 'a tus upload without a client digest: digest computed from the published file');
  const gone = await status(lost);
  t.same([gone.status, gone.failure], ['failed', 'its bytes were lost while finishing']);
  const missing = await status(noStaging);
  t.same([missing.status, missing.failure], ['failed', 'its staging file was missing at start-up'], 'never silently completed');
  await t.rejects(fs.access(staging(orphan)), 'orphan staging file removed');
  t.same(
    (await fs.readdir(path.join(dataDir, 'files'))).filter((n) => n.startsWith('.')),
    [],
    'temporary copies removed',
  );
});

t.test('the sweeper never touches completed files; expired and aborted uploads leave no bytes', async (t) => {
  const s = await startServer(t, { env: { SWEEP_INTERVAL: '100ms' } });
  const done = await createUpload(s.url, { file_name: 'keep', size: 3, sha256: sha256('abc') });
  await putChunk(s.url, done.id, 0, Buffer.from('abc'));
  await http('POST', `${s.url}/v1/uploads/${done.id}/finish`, { json: {} });
  const stale = await createUpload(s.url, { file_name: 'old', size: 3 });
  await putChunk(s.url, stale.id, 0, Buffer.from('abc'));
  const aborted = await createUpload(s.url, { file_name: 'gone', size: 3 });
  await http('DELETE', `${s.url}/v1/uploads/${aborted.id}`);
  s.db.prepare('UPDATE uploads SET expires_at = 0').run();
  await sleep(400);
  t.equal((await fs.readFile(path.join(s.dataDir, 'files', done.id))).toString(), 'abc', 'completed file intact');
  t.same(await fs.readdir(path.join(s.dataDir, 'staging')), [], 'no staging bytes left');
  t.equal((await http('GET', `${s.url}/v1/uploads/${stale.id}`)).body.status, 'expired');
  t.equal((await http('GET', `${s.url}/v1/uploads/${done.id}`)).body.status, 'completed');
});

t.test('the WAL is checkpointed by the sweeper, so it cannot grow without bound', async (t) => {
  const s = await startServer(t, { env: { SWEEP_INTERVAL: '200ms' } });
  for (let i = 0; i < 200; i++) await createUpload(s.url, { file_name: `f${i}`, size: 1 });
  await sleep(500);
  const wal = await fs.stat(path.join(s.dataDir, 'sluice.db-wal')).catch(() => ({ size: 0 }));
  t.equal(wal.size, 0, 'WAL truncated after a checkpoint');
});

t.test('a damaged ledger stops start-up with a clear message', async (t) => {
  const dataDir = await tmpDir(t);
  const s = await startServer(t, { dataDir });
  await createUpload(s.url, { file_name: 'a', size: 1 });
  await s.close();
  const file = path.join(dataDir, 'sluice.db');
  const fh = await fs.open(file, 'r+');
  await fh.write(Buffer.alloc(4096, 0xab), 0, 4096, 0);
  await fh.close();
  const res = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
    execFile(process.execPath, [MAIN], { env: { PATH: process.env.PATH, DATA_DIR: dataDir, PORT: '0' }, timeout: 20_000 }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
    ),
  );
  t.equal(res.code, 1);
  t.match(res.stderr, /sluice: the ledger .*sluice\.db (cannot be read|is damaged).*restore it from a backup/);
});

t.test('overload: 503 overloaded with Retry-After instead of falling over', async (t) => {
  const s = await startServer(t, { env: { OVERLOAD_MAX_RSS: '1MiB' } });
  const res = await http('GET', `${s.url}/v1/uploads`);
  t.same([res.status, res.body.code, res.headers['retry-after']], [503, 'overloaded', '10']);
  // The health check is never shed: it answers 503 with its JSON body (it once answered 500, its
  // shedding error failing the body's schema).
  const health = await http('GET', `${s.url}/healthz`);
  t.same([health.status, health.body.status, health.body.checks.memory.ok], [503, 'unavailable', false]);
  t.equal((await http('GET', `${s.url}/metrics`)).status, 200, 'metrics are not shed either');
});
