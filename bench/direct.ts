import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
// s3rver ships no types; it is a real S3-compatible HTTP server that keeps objects on disk.
// @ts-expect-error no declaration file
import S3rver from 's3rver';
import { bytesRead, cpuSeconds } from './proc.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface DirectData {
  file: string;
  sha256: string;
  chunks: { file: string; sha256: string }[];
}

export interface DirectResult {
  round: number;
  bytes: number;
  seconds: number;
  /** sluice's CPU-seconds in the phase, all of it. */
  cpu: number;
  /** The same less what the idle server spends in as long (its timers): the upload's own cost. */
  netCpu: number;
  /** Bytes sluice read from sockets and files while the file went to the bucket. */
  received: number;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A direct upload of the whole file (#26): sluice hands out presigned part URLs, curl PUTs every
 * part straight to an S3-compatible server (s3rver on loopback), sluice finishes it. What it costs
 * sluice - CPU-seconds, and bytes it read (/proc rchar: its sockets and files) - against the file's
 * size. The finish's read-back of the assembled object (the verification) is its one pass over the
 * bytes, so it is measured separately from the transfer.
 */
export async function directCase(
  root: string,
  work: string,
  data: DirectData,
  size: number,
  rounds: number,
  partSize: number,
): Promise<{ transfer: DirectResult[]; finish: DirectResult[] }> {
  const transfer: DirectResult[] = [];
  const finish: DirectResult[] = [];
  await withS3Sluice(root, work, {}, async ({ url, measure, reset }) => {
    for (let round = 1; round <= rounds; round++) {
      let created: Record<string, unknown> = {};
      let etags: { part_number: number; etag: string }[] = [];
      transfer.push(
        await measure(round, size, async () => {
          created = await post(`${url}/v1/uploads`, {
            file_name: 'bench.bin',
            size,
            chunk_size: partSize,
            sha256: data.sha256,
            transfer: 'direct',
            part_sha256: data.chunks.map((c) => c.sha256),
          });
          etags = await putParts(created.parts as { part_number: number; url: string; headers: Record<string, string> }[], data.chunks);
        }),
      );
      finish.push(
        await measure(round, size, async () => {
          const done = await post(`${url}/v1/uploads/${created.id}/finish`, { parts: etags });
          if (done.sha256 !== data.sha256) throw new Error(`direct finish: ${JSON.stringify(done)}`);
        }),
      );
      await fetch(`${url}/v1/uploads/${created.id}`, { method: 'DELETE' });
      await reset();
    }
  });
  return { transfer, finish };
}

export type StagingResults = Record<'local' | 's3', { transfer: DirectResult[]; finish: DirectResult[] }>;

/**
 * The same native upload (chunks in order with curl, then finish) into the S3 backend, its chunks
 * staged on the local disk or in the bucket (STAGING_BACKEND=s3): what each costs sluice per GiB.
 */
export async function stagingCase(root: string, work: string, data: DirectData, size: number, rounds: number, chunkSize: number): Promise<StagingResults> {
  const out = { local: { transfer: [], finish: [] }, s3: { transfer: [], finish: [] } } as StagingResults;
  for (const staging of ['local', 's3'] as const) {
    await withS3Sluice(root, work, { STAGING_BACKEND: staging }, async ({ url, measure, reset }) => {
      for (let round = 1; round <= rounds; round++) {
        let id = '';
        out[staging].transfer.push(
          await measure(round, size, async () => {
            const created = await post(`${url}/v1/uploads`, { file_name: 'bench.bin', size, chunk_size: chunkSize, sha256: data.sha256 });
            id = created.id as string;
            await putChunks(url, id, data.chunks);
          }),
        );
        out[staging].finish.push(
          await measure(round, size, async () => {
            const done = await post(`${url}/v1/uploads/${id}/finish`, {});
            if (done.sha256 !== data.sha256) throw new Error(`staging finish: ${JSON.stringify(done)}`);
          }),
        );
        await fetch(`${url}/v1/uploads/${id}`, { method: 'DELETE' });
        await reset();
      }
    });
  }
  return out;
}

interface S3Sluice {
  url: string;
  /** Runs `phase` and measures what sluice spent in it. */
  measure(round: number, bytes: number, phase: () => Promise<void>): Promise<DirectResult>;
  /** Empties the bucket between rounds. */
  reset(): Promise<void>;
}

/** s3rver on loopback and sluice (STORAGE_BACKEND=s3, plus `extra`) in front of it, for `body`. */
async function withS3Sluice(root: string, work: string, extra: Record<string, string>, body: (s: S3Sluice) => Promise<void>): Promise<void> {
  const directory = await fs.mkdtemp(path.join(work, 's3-'));
  const s3 = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true, configureBuckets: [{ name: 'bench' }] });
  const { port: s3Port } = await s3.run();
  const port = await freePort();
  const env = {
    PATH: process.env.PATH ?? '',
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: await fs.mkdtemp(path.join(work, 'sluice-s3-')),
    RATE_LIMIT_MAX: '0',
    STORAGE_BACKEND: 's3',
    S3_BUCKET: 'bench',
    S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
    S3_FORCE_PATH_STYLE: 'true',
    S3_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
  const child = spawn(process.execPath, [path.join(root, 'dist/server/main.js')], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let tries = 0; ; tries++) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {
        // not yet listening
      }
      if (tries > 200) throw new Error('sluice (S3) did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const pid = child.pid as number;
    // What the idle server spends per second (timers, the sweeper), to tell the upload's own cost.
    await new Promise((r) => setTimeout(r, 2000));
    const idle0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 3000));
    const idlePerSecond = (cpuSeconds(pid) - idle0) / 3;
    await body({
      url,
      measure: async (round, bytes, phase) => {
        const cpu0 = cpuSeconds(pid);
        const read0 = bytesRead(pid);
        const t0 = performance.now();
        await phase();
        const seconds = (performance.now() - t0) / 1000;
        const cpu = cpuSeconds(pid) - cpu0;
        return { round, bytes, seconds, cpu, netCpu: Math.max(0, cpu - idlePerSecond * seconds), received: bytesRead(pid) - read0 };
      },
      reset: async () => {
        await fs.rm(path.join(directory, 'bench'), { recursive: true, force: true }).catch(() => {});
        await fs.mkdir(path.join(directory, 'bench'), { recursive: true });
      },
    });
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
    await s3.close();
  }
}

/** Every chunk in order with one curl (a config section per chunk). */
/** Every chunk of a native upload with one curl (a config section per chunk), `parallel` at a time. */
export async function putChunks(url: string, id: string, chunks: { file: string; sha256: string }[], parallel = 1): Promise<void> {
  const q = (s: string) => JSON.stringify(s);
  const text = chunks
    .map((c, i) =>
      [
        `url = ${q(`${url}/v1/uploads/${id}/chunks/${i}`)}`,
        'request = PUT',
        `upload-file = ${q(c.file)}`,
        'header = "Expect:"',
        'header = "Content-Type: application/octet-stream"',
        `header = ${q(`x-chunk-sha256: ${c.sha256}`)}`,
        'output = "/dev/null"',
        'write-out = "%{http_code}\\n"',
      ].join('\n'),
    )
    .join('\nnext\n');
  const { code, out, err } = await curl(text, parallel > 1 ? ['-Z', '--parallel-max', String(parallel)] : []);
  const lines = out.split('\n').filter(Boolean);
  if (code !== 0 || lines.length !== chunks.length || lines.some((l) => l !== '200')) {
    throw new Error(`curl chunks failed (exit ${code}): ${lines.slice(0, 3).join('; ')} ${err.slice(0, 300)}`);
  }
}

async function curl(config: string, extra: string[] = []): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn('curl', ['-sS', ...extra, '-K', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  child.stdin.end(config);
  const code = await new Promise<number | null>((r) => child.once('close', r));
  return { code, out, err };
}

async function post(url: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Every part with one curl (a config section per part), reading back each answer's ETag. */
async function putParts(parts: { part_number: number; url: string; headers: Record<string, string> }[], chunks: { file: string }[]) {
  const q = (s: string) => JSON.stringify(s);
  const text = parts
    .map((p) =>
      [
        `url = ${q(p.url)}`,
        'request = PUT',
        `upload-file = ${q((chunks[p.part_number - 1] as { file: string }).file)}`,
        'header = "Expect:"',
        ...Object.entries(p.headers).map(([k, v]) => `header = ${q(`${k}: ${v}`)}`),
        'output = "/dev/null"',
        'write-out = "%{http_code} %header{etag}\\n"',
      ].join('\n'),
    )
    .join('\nnext\n');
  const { code, out, err } = await curl(text);
  const lines = out.split('\n').filter(Boolean);
  if (code !== 0 || lines.length !== parts.length || lines.some((l) => !l.startsWith('200 '))) {
    throw new Error(`curl to S3 failed (exit ${code}): ${lines.slice(0, 3).join('; ')} ${err.slice(0, 300)}`);
  }
  return lines.map((l, i) => ({ part_number: (parts[i] as { part_number: number }).part_number, etag: l.slice(4).trim() }));
}

export function directReport(results: { transfer: DirectResult[]; finish: DirectResult[] }): string[] {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const per = (r: DirectResult[], f: (x: DirectResult) => number) => median(r.map(f));
  const { transfer, finish } = results;
  const cpuPerGiB = per(transfer, (r) => (r.netCpu / r.bytes) * GiB);
  const rawPerGiB = per(transfer, (r) => (r.cpu / r.bytes) * GiB);
  const receivedPerGiB = per(transfer, (r) => (r.received / r.bytes) * GiB);
  return [
    `direct upload (parts straight to S3): sluice ${cpuPerGiB.toFixed(3)} CPU-s/GiB of its own (${rawPerGiB.toFixed(3)} with its idle timers) and ` +
      `${(receivedPerGiB / MiB).toFixed(2)} MiB read per GiB while the parts went to the bucket (${per(transfer, (r) => r.bytes / 1e6 / r.seconds).toFixed(0)} MB/s, s3rver's pace); ` +
      `its verifying finish (one read-back of the file) ${per(finish, (r) => (r.cpu / r.bytes) * GiB).toFixed(2)} CPU-s/GiB, ${per(finish, (r) => r.seconds).toFixed(1)} s`,
    `- ${cpuPerGiB < 0.05 ? 'met' : 'NOT met'}: a direct upload's transfer costs sluice under 0.05 CPU-seconds per GiB (${cpuPerGiB.toFixed(3)})`,
    `- ${receivedPerGiB < MiB ? 'met' : 'NOT met'}: and under 1 MiB of received bytes per GiB (${(receivedPerGiB / 1024).toFixed(0)} KiB)`,
  ];
}

export function stagingReport(results: StagingResults): string[] {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const perGiB = (r: DirectResult[]) => median(r.map((x) => (x.netCpu / x.bytes) * GiB));
  const line = (name: string, r: StagingResults['local']) =>
    `${name}: chunks ${perGiB(r.transfer).toFixed(2)} + finish ${perGiB(r.finish).toFixed(2)} = ${(perGiB(r.transfer) + perGiB(r.finish)).toFixed(2)} CPU-s/GiB ` +
    `(${median(r.transfer.map((x) => x.bytes / 1e6 / x.seconds)).toFixed(0)} MB/s in, finish ${median(r.finish.map((x) => x.seconds)).toFixed(1)} s)`;
  return ['S3 backend, native chunks in order, sluice CPU of its own:', `- ${line('local staging', results.local)}`, `- ${line('S3 staging', results.s3)}`];
}
