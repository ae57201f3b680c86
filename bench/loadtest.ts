/**
 * `npm run loadtest`: sustained load against the real server process on loopback, bounded in
 * count and time. 200 native clients each upload 4 MiB in 256 KiB chunks with 3 chunks in flight,
 * while 20 tus clients (tus-js-client) upload 4 MiB each. Every file is verified by SHA-256; chunk
 * latency (p50/p99) and the server's peak RSS are reported. Exits non-zero on any error, on a
 * failed verification, or when the server's RSS reaches 150 MiB.
 *
 *   npm run loadtest [-- --clients 200 --tus 20 --size 4MiB --chunk 256KiB --inflight 3]
 */
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tus from 'tus-js-client';
import { Agent, request } from 'undici';
import { parseBytes } from '../src/lib/units.js';
import { envArgs } from './env-args.js';
import { spawnServer } from '../test/helpers/process.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '200' },
    tus: { type: 'string', default: '20' },
    size: { type: 'string', default: '4MiB' },
    chunk: { type: 'string', default: '256KiB' },
    inflight: { type: 'string', default: '3' },
    'max-rss': { type: 'string', default: '150MiB' },
    'time-limit': { type: 'string', default: '300' },
    // Server settings to try (e.g. the small-server profile): --env NODE_OPTIONS=... --env OVERLOAD_MAX_RSS=200MiB
    env: { type: 'string', multiple: true, default: [] },
  },
});
const CLIENTS = Number(values.clients);
const TUS_CLIENTS = Number(values.tus);
const SIZE = parseBytes(values.size as string) as number;
const CHUNK = parseBytes(values.chunk as string) as number;
const INFLIGHT = Number(values.inflight);
const MAX_RSS = parseBytes(values['max-rss'] as string) as number;
const CHUNKS = Math.ceil(SIZE / CHUNK);

/** Deterministic pseudo-random bytes for client c, chunk i (AES-CTR of zeros): no files, no RAM. */
function chunkBytes(c: number, i: number): Buffer {
  const key = createHash('sha256').update(`client-${c}`).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(i, 12);
  const len = Math.min(CHUNK, SIZE - i * CHUNK);
  return createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(len));
}

function fileDigest(c: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < CHUNKS; i++) h.update(chunkBytes(c, i));
  return h.digest('hex');
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);
}

async function main(): Promise<number> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sluice-load-'));
  const extra = envArgs(values.env as string[]);
  const server = await spawnServer({ DATA_DIR: dataDir, LOG_LEVEL: 'info', ...extra });
  const pid = server.child.pid as number;
  let peakRss = 0;
  const sampler = setInterval(async () => {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
    peakRss = Math.max(peakRss, rss);
  }, 50);
  const deadline = setTimeout(() => {
    console.error(`time limit of ${values['time-limit']} s reached`);
    server.child.kill('SIGKILL');
    process.exit(1);
  }, Number(values['time-limit']) * 1000);

  const dispatcher = new Agent({ connections: CLIENTS * INFLIGHT + TUS_CLIENTS * 2 + 50, keepAliveTimeout: 30_000 });
  const latencies: number[] = [];
  const errors: string[] = [];
  let verified = 0;
  const started = Date.now();

  const native = async (c: number) => {
    const digest = fileDigest(c);
    const created = await request(`${server.url}/v1/uploads`, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ file_name: `load-${c}.bin`, size: SIZE, chunk_size: CHUNK, sha256: digest }),
    });
    const up = (await created.body.json()) as { id: string };
    if (created.statusCode !== 201) throw new Error(`create: ${created.statusCode}`);
    let next = 0;
    const worker = async () => {
      while (next < CHUNKS) {
        const i = next++;
        const body = chunkBytes(c, i);
        const t0 = performance.now();
        const res = await request(`${server.url}/v1/uploads/${up.id}/chunks/${i}`, {
          method: 'PUT',
          dispatcher,
          headers: { 'content-type': 'application/octet-stream', 'x-chunk-sha256': createHash('sha256').update(body).digest('hex') },
          body,
        });
        await res.body.dump();
        latencies.push(performance.now() - t0);
        if (res.statusCode !== 200) throw new Error(`chunk ${i}: ${res.statusCode}`);
      }
    };
    await Promise.all(Array.from({ length: INFLIGHT }, worker));
    const fin = await request(`${server.url}/v1/uploads/${up.id}/finish`, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    const result = (await fin.body.json()) as { sha256?: string };
    if (fin.statusCode !== 200 || result.sha256 !== digest) throw new Error(`finish: ${fin.statusCode}`);
    verified++;
  };

  const tusClient = async (c: number) => {
    const data = Buffer.concat(Array.from({ length: CHUNKS }, (_, i) => chunkBytes(10_000 + c, i)));
    const url = await new Promise<string>((resolve, reject) => {
      const u = new tus.Upload(data, {
        endpoint: `${server.url}/files`,
        chunkSize: 1024 * 1024,
        retryDelays: [],
        metadata: { filename: `tus-${c}.bin` },
        onError: reject,
        onSuccess: () => resolve(u.url as string),
      });
      u.start();
    });
    const id = url.split('/').pop() as string;
    const st = await request(`${server.url}/v1/uploads/${id}`, { dispatcher });
    const body = (await st.body.json()) as { sha256?: string; status?: string };
    if (body.status !== 'completed' || body.sha256 !== createHash('sha256').update(data).digest('hex')) throw new Error('tus upload did not verify');
    verified++;
  };

  const tasks = [
    ...Array.from({ length: CLIENTS }, (_, c) => native(c).catch((e: Error) => void errors.push(`native ${c}: ${e.message}`))),
    ...Array.from({ length: TUS_CLIENTS }, (_, c) => tusClient(c).catch((e: Error) => void errors.push(`tus ${c}: ${e.message}`))),
  ];
  await Promise.all(tasks);
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  clearTimeout(deadline);
  server.child.kill('SIGTERM');
  await server.exited;
  await dispatcher.close();
  await fs.rm(dataDir, { recursive: true, force: true });

  latencies.sort((a, b) => a - b);
  const total = (CLIENTS + TUS_CLIENTS) * SIZE;
  const MiB = 1024 * 1024;
  console.log('');
  console.log('| measure | value |');
  console.log('|---|---|');
  console.log(`| clients | ${CLIENTS} native (${INFLIGHT} chunks in flight) + ${TUS_CLIENTS} tus |`);
  console.log(`| data | ${(total / MiB).toFixed(0)} MiB in ${CLIENTS * CHUNKS} chunks of ${CHUNK / 1024} KiB + tus PATCHes |`);
  console.log(`| time | ${seconds.toFixed(1)} s (${(total / MiB / seconds).toFixed(0)} MiB/s) |`);
  console.log(`| chunk latency p50 / p99 | ${percentile(latencies, 50).toFixed(1)} ms / ${percentile(latencies, 99).toFixed(1)} ms |`);
  console.log(`| server peak RSS | ${(peakRss / MiB).toFixed(0)} MiB (limit ${(MAX_RSS / MiB).toFixed(0)} MiB) |`);
  console.log(`| files verified | ${verified} of ${CLIENTS + TUS_CLIENTS} |`);
  console.log(`| errors | ${errors.length} |`);
  for (const e of errors.slice(0, 10)) console.log(`  ${e}`);
  const ok = errors.length === 0 && verified === CLIENTS + TUS_CLIENTS && peakRss < MAX_RSS;
  console.log(ok ? '\nloadtest passed' : '\nloadtest FAILED');
  return ok ? 0 : 1;
}

process.exitCode = await main();
