import { randomBytes } from 'node:crypto';
import t from 'tap';
import pg from 'pg';
import * as tus from 'tus-js-client';
import { spawnServer } from '../helpers/process.js';
import { startPostgres } from '../helpers/postgres.js';
import { WEBHOOK_SECRET, startReceiver } from '../helpers/receiver.js';
import { createUpload, http, putChunk, sha256, tmpDir } from '../helpers/server.js';

const KiB = 1024;

/**
 * The built server on a PostgreSQL ledger (DATABASE_URL), a real cluster on 127.0.0.1: the same
 * uploads as on SQLite, its schema created at start-up, and a SIGKILL in the middle of an upload
 * survived with every acknowledged chunk.
 */
const cluster = await startPostgres(t);

t.test(
  'native and tus uploads on a PostgreSQL ledger; SIGKILL and restart keep every acknowledged chunk',
  { skip: cluster ? false : 'no PostgreSQL here' },
  async (t) => {
    const url = await (cluster as NonNullable<typeof cluster>).database();
    const dataDir = await tmpDir(t);
    const env = { DATA_DIR: dataDir, DATABASE_URL: url, MIN_CHUNK_SIZE: '1' };
    let server = await spawnServer(env, t);

    const data = randomBytes(5 * 64 * KiB + 123);
    const up = await createUpload(server.url, { file_name: 'pg.bin', size: data.length, chunk_size: 64 * KiB, sha256: sha256(data) });
    const part = (i: number) => data.subarray(i * 64 * KiB, (i + 1) * 64 * KiB);
    for (const i of [4, 1, 5]) t.equal((await putChunk(server.url, up.id, i, part(i))).status, 200, `chunk ${i}`);
    server.child.kill('SIGKILL');
    await server.exited;
    server = await spawnServer(env, t);
    const status = (await http('GET', `${server.url}/v1/uploads/${up.id}`)).body;
    t.same([status.chunks_received, status.missing_chunks], [3, [0, 2, 3]], 'the acknowledged chunks survived the kill');
    for (const i of [0, 3, 2]) await putChunk(server.url, up.id, i, part(i));
    const fin = await http('POST', `${server.url}/v1/uploads/${up.id}/finish`, { json: {} });
    t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
    const content = Buffer.from(await (await fetch(`${server.url}/v1/uploads/${up.id}/content`)).arrayBuffer());
    t.equal(sha256(content), sha256(data), 'the stored bytes are the source');

    const tusData = randomBytes(200 * KiB);
    const tusUrl = await new Promise<string>((resolve, reject) => {
      const u = new tus.Upload(tusData, {
        endpoint: `${server.url}/files`,
        chunkSize: 64 * KiB,
        metadata: { filename: 't.bin' },
        onError: reject,
        onSuccess: () => resolve(u.url as string),
      });
      u.start();
    });
    const tusId = tusUrl.slice(tusUrl.lastIndexOf('/') + 1);
    const tusStatus = (await http('GET', `${server.url}/v1/uploads/${tusId}`)).body;
    t.same([tusStatus.status, tusStatus.sha256, tusStatus.file_name], ['completed', sha256(tusData), 't.bin']);

    const events = (await http('GET', `${server.url}/v1/events`)).body.events.map(
      (e: { type: string; upload_id: string }) => `${e.upload_id === up.id ? 'native' : 'tus'}:${e.type}`,
    );
    t.same(events, ['native:upload.created', 'native:upload.completed', 'tus:upload.created', 'tus:upload.completed']);

    // The rows are in PostgreSQL, not in a SQLite file beside the data.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const rows = await client.query<{ id: string; status: string }>('SELECT id, status FROM uploads ORDER BY created_at');
    await client.end();
    t.same(
      rows.rows.map((r) => [r.id, r.status]),
      [
        [up.id, 'completed'],
        [tusId, 'completed'],
      ],
    );
    const health = await http('GET', `${server.url}/healthz`);
    t.equal(health.status, 200);
    server.child.kill('SIGTERM');
    await server.exited;
  },
);

t.test('webhooks from a PostgreSQL ledger: woken by NOTIFY, claimed, delivered and verified', { skip: cluster ? false : 'no PostgreSQL here' }, async (t) => {
  const receiver = await startReceiver(t, { failPlan: ['500'] });
  const url = await (cluster as NonNullable<typeof cluster>).database();
  const env = { DATA_DIR: await tmpDir(t), DATABASE_URL: url, WEBHOOK_URLS: `${receiver.url}/events`, WEBHOOK_SECRET, WEBHOOK_RETRY_MIN: '50ms' };
  const server = await spawnServer(env, t);
  const ids: string[] = [];
  for (const name of ['w1.bin', 'w2.bin']) ids.push((await createUpload(server.url, { file_name: name, size: 10 })).id);
  await http('DELETE', `${server.url}/v1/uploads/${ids[0]}`);
  const records = await receiver.until((r) => r.filter((x) => x.step === 'ok').length >= 3);
  const delivered = records.filter((x) => x.step === 'ok').map((x) => `${x.data.id === ids[0] ? 'w1' : 'w2'}:${x.type}`);
  t.same(
    delivered.filter((d) => d.startsWith('w1')),
    ['w1:upload.created', 'w1:upload.aborted'],
    'in order per upload, after a 500',
  );
  t.ok(delivered.includes('w2:upload.created'));
  t.ok(records.every((x) => x.verified));
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('a DATABASE_URL that cannot be reached stops start-up with a clear message', async (t) => {
  const dataDir = await tmpDir(t);
  const failed = await spawnServer({ DATA_DIR: dataDir, DATABASE_URL: 'postgres://nobody@127.0.0.1:9/none' }, t).catch((err: Error) => err);
  t.ok(failed instanceof Error);
  t.match(String((failed as Error).message), /the PostgreSQL ledger at 127\.0\.0\.1:9\/none cannot be opened \(.*ECONNREFUSED/);
});
