import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
// @ts-expect-error s3rver ships no types
import S3rver from 's3rver';
import { openDatabase } from '../src/ledger/database.js';
import type { Ledger } from '../src/ledger/ledger.js';
import { PgLedger } from '../src/ledger/pg-ledger.js';
import { SqliteLedger } from '../src/ledger/sqlite-ledger.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { type DirectData, freePort, putChunks } from './direct.js';

const MiB = 1024 * 1024;

export interface NodesResult {
  nodes: number;
  round: number;
  seconds: number;
  finishSeconds: number;
  bytes: number;
}

export interface LedgerLatency {
  ledger: 'sqlite' | 'postgres';
  medianMs: number;
  p99Ms: number;
}

async function waitFor(url: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `npm run bench -- --nodes N` (#28): the same upload - native chunks of 16 MiB, 4 in flight, with
 * curl - through HAProxy (deploy/haproxy.cfg) to one sluice node and to N, all on one PostgreSQL
 * ledger (durable: PostgreSQL's defaults) with S3 staging into s3rver. This machine has two cores
 * for everything (nodes, PostgreSQL, s3rver, HAProxy, curl), so more nodes cannot go faster here;
 * what it shows is the cost of spreading an upload over nodes.
 */
export async function nodesCase(
  root: string,
  work: string,
  data: DirectData,
  size: number,
  rounds: number,
  nodes: number,
): Promise<{ runs: NodesResult[]; latency: LedgerLatency[] }> {
  const cleanups: (() => unknown)[] = [];
  const t = { teardown: (fn: () => unknown) => cleanups.push(fn) };
  try {
    const pg = await startPostgres(t, { durable: true });
    if (!pg) throw new Error('--nodes needs PostgreSQL (scripts/install-postgres.sh)');
    const s3dir = await fs.mkdtemp(path.join(work, 's3-'));
    const s3 = new S3rver({ port: 0, address: '127.0.0.1', directory: s3dir, silent: true, configureBuckets: [{ name: 'bench', configs: [] }] });
    const { port: s3port } = await s3.run();
    cleanups.push(() => s3.close());
    const runs: NodesResult[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const n of round % 2 ? [1, nodes] : [nodes, 1]) runs.push({ ...(await oneRun(root, work, data, size, n, await pg.database(), s3port)), round });
    }
    const latency = [await ledgerLatency('sqlite', work), await ledgerLatency('postgres', work, await pg.database())];
    return { runs, latency };
  } finally {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  }
}

async function oneRun(
  root: string,
  work: string,
  data: DirectData,
  size: number,
  n: number,
  databaseUrl: string,
  s3port: number,
): Promise<Omit<NodesResult, 'round'>> {
  const children: ChildProcess[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const port = await freePort();
      ports.push(port);
      const child = spawn(process.execPath, [path.join(root, 'dist/server/main.js')], {
        env: {
          PATH: process.env.PATH ?? '',
          HOST: '127.0.0.1',
          PORT: String(port),
          LOG_LEVEL: 'warn',
          DATA_DIR: await fs.mkdtemp(path.join(work, `node${i}-`)),
          DATABASE_URL: databaseUrl,
          NODE_ID: `bench${i}`,
          STORAGE_BACKEND: 's3',
          STAGING_BACKEND: 's3',
          S3_BUCKET: 'bench',
          S3_ENDPOINT: `http://127.0.0.1:${s3port}`,
          S3_FORCE_PATH_STYLE: 'true',
          AWS_ACCESS_KEY_ID: 'S3RVER',
          AWS_SECRET_ACCESS_KEY: 'S3RVER',
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
          SIGNING_SECRET: 'bench-signing-secret-shared-by-all-nodes',
        },
        stdio: 'ignore',
      });
      children.push(child);
    }
    for (const port of ports) await waitFor(`http://127.0.0.1:${port}/healthz`);
    const lbPort = await freePort();
    const addr = (i: number) => `127.0.0.1:${ports[i % n]}`;
    const lb = spawn('/usr/sbin/haproxy', ['-db', '-f', path.join(root, 'deploy/haproxy.cfg')], {
      env: { HAPROXY_BIND: `127.0.0.1:${lbPort}`, SLUICE1: addr(0), SLUICE2: addr(1), SLUICE3: addr(2) },
      stdio: 'ignore',
    });
    children.push(lb);
    const lbUrl = `http://127.0.0.1:${lbPort}`;
    await waitFor(`${lbUrl}/healthz`);
    await new Promise((r) => setTimeout(r, 1500)); // HAProxy's health checks mark every node up
    const created = await fetch(`${lbUrl}/v1/uploads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ file_name: 'nodes.bin', size, chunk_size: 16 * MiB, sha256: data.sha256 }),
    });
    const up = (await created.json()) as { id: string };
    const t0 = performance.now();
    await putChunks(lbUrl, up.id, data.chunks, 4);
    const seconds = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const fin = await fetch(`${lbUrl}/v1/uploads/${up.id}/finish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const done = (await fin.json()) as { sha256?: string };
    if (done.sha256 !== data.sha256) throw new Error(`finish through HAProxy: ${JSON.stringify(done)}`);
    return { nodes: n, seconds, finishSeconds: (performance.now() - t1) / 1000, bytes: size };
  } finally {
    for (const child of children) child.kill('SIGKILL');
  }
}

/** One recorded chunk at a time, each awaited: what the ledger adds to every chunk's answer. */
async function ledgerLatency(kind: 'sqlite' | 'postgres', work: string, url?: string): Promise<LedgerLatency> {
  let ledger: Ledger;
  if (kind === 'sqlite') ledger = new SqliteLedger(openDatabase(path.join(await fs.mkdtemp(path.join(work, 'lat-')), 'l.db')));
  else ledger = await PgLedger.open(url as string);
  const chunks = 1000;
  try {
    await ledger.create(
      {
        id: 'lat',
        owner: 'bench',
        layout: 'grid',
        protocol: 'native',
        fileName: 'lat',
        contentType: 'application/octet-stream',
        metadata: {},
        size: chunks * 1024,
        chunkSize: 1024,
        totalChunks: chunks,
        expectedSha256: null,
        createdAt: Date.now(),
        expiresAt: Date.now() + 3600_000,
      },
      { maxActive: 10, quota: undefined },
    );
    const times: number[] = [];
    for (let i = 0; i < chunks; i++) {
      const t0 = performance.now();
      const r = await ledger.recordChunk('lat', { index: i, offset: i * 1024, length: 1024, sha256: `h${i}`, receivedAt: Date.now() }, () => true);
      times.push(performance.now() - t0);
      if (r.kind !== 'recorded') throw new Error(`recordChunk: ${r.kind}`);
    }
    times.sort((a, b) => a - b);
    return { ledger: kind, medianMs: times[Math.floor(chunks / 2)] as number, p99Ms: times[Math.floor(chunks * 0.99)] as number };
  } finally {
    await ledger.close();
  }
}

export function nodesReport(r: { runs: NodesResult[]; latency: LedgerLatency[] }, nodes: number): string[] {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const line = (n: number) => {
    const runs = r.runs.filter((x) => x.nodes === n);
    return `- ${n} node${n > 1 ? 's' : ''}: ${median(runs.map((x) => x.bytes / 1e6 / x.seconds)).toFixed(0)} MB/s of chunks through HAProxy, finish ${median(runs.map((x) => x.finishSeconds)).toFixed(1)} s`;
  };
  return [
    'Several nodes (one PostgreSQL ledger, S3 staging into s3rver, HAProxy round-robin; every process shares these 2 cores):',
    line(1),
    line(nodes),
    ...r.latency.map((l) => `- ledger, one recorded chunk: ${l.ledger} median ${l.medianMs.toFixed(2)} ms, p99 ${l.p99Ms.toFixed(2)} ms (durable commits)`),
  ];
}
