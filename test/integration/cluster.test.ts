import { execFile, spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import pg from 'pg';
import * as tus from 'tus-js-client';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { startPostgres } from '../helpers/postgres.js';
import { startS3 } from '../helpers/s3.js';
import { freePort, http, putChunk, randomFile, sha256, sleep, tmpDir } from '../helpers/server.js';

/**
 * deploy/compose.yaml's services, run natively: a PostgreSQL ledger, an S3-compatible bucket
 * (s3rver for MinIO), three sluice processes with STAGING_BACKEND=s3, and HAProxy round-robin in
 * front of them with deploy/haproxy.cfg. Files are uploaded through HAProxy by the CLI and by
 * tus-js-client while one node is SIGKILLed and restarted twice and another gets SIGTERM.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/server/sluice.js');
const HAPROXY = '/usr/sbin/haproxy';
const MiB = 1024 * 1024;

const cluster = await startPostgres(t);
const skip = !cluster ? 'no PostgreSQL here' : !existsSync(HAPROXY) ? `no HAProxy at ${HAPROXY} (scripts/install-haproxy.sh)` : false;

async function listening(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
    await sleep(50);
  }
}

function cliUpload(server: string, files: string[], stateDir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, '--json', 'upload', ...files, '--chunk-size', '5MiB', '--parallel', '4'],
      { env: { PATH: process.env.PATH, SLUICE_SERVER: server, SLUICE_STATE_DIR: stateDir }, timeout: 240_000, maxBuffer: 64 * MiB },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function tusUpload(endpoint: string, file: string, size: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(createReadStream(file), {
      endpoint,
      uploadSize: size,
      chunkSize: 5 * MiB,
      metadata: { filename: path.basename(file) },
      // A node that dies mid-PATCH: the client asks (any node) for the offset and goes on from it.
      retryDelays: [200, 500, 1000, 1000, 2000, 2000, 3000, 3000, 5000, 5000],
      onError: reject,
      onSuccess: () => resolve(u.url as string),
    });
    u.start();
  });
}

t.test('three nodes behind HAProxy on one ledger and one bucket: kills and a SIGTERM mid-upload lose nothing', { skip, timeout: 300_000 }, async (t) => {
  const dbUrl = await (cluster as NonNullable<typeof cluster>).database();
  const s3 = await startS3(t);
  const work = await tmpDir(t);
  const ports = [await freePort(), await freePort(), await freePort()];
  const shared = {
    ...s3.env,
    DATABASE_URL: dbUrl,
    STAGING_BACKEND: 's3',
    S3_PART_SIZE: '5MiB',
    SIGNING_SECRET: 'the-same-signing-secret-on-every-node-0123',
    MIN_CHUNK_SIZE: '1',
  };
  const envOf = async (i: number) => ({ ...shared, PORT: String(ports[i]), NODE_ID: `node${i + 1}`, DATA_DIR: await tmpDir(t) });
  const envs = [await envOf(0), await envOf(1), await envOf(2)];
  const nodes: ServerProcess[] = [];
  for (const env of envs) nodes.push(await spawnServer(env, t));

  const lbPort = await freePort();
  const lb = spawn(HAPROXY, ['-db', '-f', path.join(ROOT, 'deploy/haproxy.cfg')], {
    env: { HAPROXY_BIND: `127.0.0.1:${lbPort}`, SLUICE1: `127.0.0.1:${ports[0]}`, SLUICE2: `127.0.0.1:${ports[1]}`, SLUICE3: `127.0.0.1:${ports[2]}` },
    stdio: 'ignore',
  });
  t.teardown(() => lb.kill('SIGKILL'));
  await listening(lbPort);
  const lbUrl = `http://127.0.0.1:${lbPort}`;
  await sleep(1500); // HAProxy's first health checks

  // Chunks received by two nodes, finished on a third.
  const spread = await randomFile(work, 3 * 5 * MiB + 17, 'spread.bin');
  const created = await http('POST', `${nodes[0]?.url}/v1/uploads`, {
    json: { file_name: 'spread.bin', size: 3 * 5 * MiB + 17, chunk_size: 5 * MiB, sha256: spread.sha256 },
  });
  const bytes = await import('node:fs/promises').then((fs) => fs.readFile(spread.file));
  const chunk = (i: number) => bytes.subarray(i * 5 * MiB, (i + 1) * 5 * MiB);
  t.equal((await putChunk(nodes[0]?.url as string, created.body.id, 0, chunk(0))).status, 200);
  t.equal((await putChunk(nodes[1]?.url as string, created.body.id, 1, chunk(1))).status, 200);
  t.equal((await putChunk(nodes[0]?.url as string, created.body.id, 3, chunk(3))).status, 200);
  t.equal((await putChunk(nodes[1]?.url as string, created.body.id, 2, chunk(2))).status, 200);
  const fin = await http('POST', `${nodes[2]?.url}/v1/uploads/${created.body.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, spread.sha256], 'chunks from nodes 1 and 2, finished on node 3');

  // The load: the CLI with 4 chunks in flight, and tus-js-client, all through HAProxy.
  const files = [];
  for (let i = 0; i < 4; i++) files.push(await randomFile(work, 24 * MiB + i * 1000, `cli-${i}.bin`));
  const tusFiles = [await randomFile(work, 20 * MiB + 5, 'tus-0.bin'), await randomFile(work, 18 * MiB + 7, 'tus-1.bin')];
  const cli = cliUpload(
    lbUrl,
    files.map((f) => f.file),
    path.join(work, 'state'),
  );
  const tusDone = Promise.all(tusFiles.map((f, i) => tusUpload(`${lbUrl}/files`, f.file, 20 * MiB + 5 - i * (2 * MiB - 2))));

  // Chaos: node 2 is killed and restarted twice, node 3 is stopped with SIGTERM.
  await sleep(800);
  for (let round = 0; round < 2; round++) {
    nodes[1]?.child.kill('SIGKILL');
    await nodes[1]?.exited;
    await sleep(700);
    nodes[1] = await spawnServer(envs[1] as Record<string, string>, t);
    await sleep(700);
  }
  nodes[2]?.child.kill('SIGTERM');
  await nodes[2]?.exited;

  const result = await cli;
  t.equal(result.code, 0, result.stderr.slice(-2000));
  const done = result.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; file: string; sha256: string; id: string })
    .filter((e) => e.event === 'done');
  t.same(
    done.map((d) => d.sha256),
    files.map((f) => f.sha256),
    'every CLI file completed with its SHA-256',
  );
  const tusUrls = await tusDone;
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  t.teardown(() => client.end());
  for (const [i, url] of tusUrls.entries()) {
    const id = url.slice(url.lastIndexOf('/') + 1);
    const row = (await client.query<{ status: string; sha256: string; location: string }>('SELECT status, sha256, location FROM uploads WHERE id = $1', [id]))
      .rows[0];
    t.same([row?.status, row?.sha256], ['completed', tusFiles[i]?.sha256], `tus file ${i} completed with its SHA-256`);
  }
  // The bytes in the bucket are the sources, and every upload's counters match its parts.
  for (const d of done) {
    const row = (await client.query<{ location: string }>('SELECT location FROM uploads WHERE id = $1', [d.id])).rows[0];
    const key = (JSON.parse(row?.location as string) as { key: string }).key;
    t.equal(sha256((await s3.get(key)).body), d.sha256, `${d.file}: the object is the file`);
  }
  const counts = await client.query<{ id: string; chunks_received: number; total_chunks: number; parts: number }>(
    `SELECT u.id, u.chunks_received, u.total_chunks, (SELECT COUNT(*)::int FROM direct_parts p WHERE p.upload_id = u.id AND p.etag IS NOT NULL) AS parts
     FROM uploads u WHERE u.layout = 'grid' AND u.status = 'completed'`,
  );
  t.ok(
    counts.rows.every((r) => r.chunks_received === r.total_chunks && r.parts === r.total_chunks),
    'no chunk counted twice or lost',
  );
  const nodesSeen = (await client.query<{ id: string }>('SELECT id FROM nodes ORDER BY id')).rows.map((r) => r.id);
  t.same(nodesSeen, ['node1', 'node2', 'node3']);
});
