import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { request as undiciRequest } from 'undici';
import { buildApp, type AppOverrides, type Sluice } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { Db } from '../../src/ledger/database.js';
import type { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';

export type TestContext = { teardown(fn: () => unknown): void };
type Tap = TestContext;

/** A fresh data directory removed when the test ends. */
export async function tmpDir(t: Tap, prefix = 'sluice-test-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A validated config for tests: small limits so that tests stay quick, overridable by env names.
 * Event-loop-delay shedding is off: an in-process test server shares its event loop with the test
 * client and tap's coverage, two test files at a time on two cores, and a fresh-clone CI run once
 * saw a whole test's requests refused as `overloaded` after such a stall. Overload answers are
 * tested on purpose (recovery.test.ts, OVERLOAD_MAX_RSS).
 */
export function testConfig(dataDir: string, env: Record<string, string> = {}): Config {
  return loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', MIN_CHUNK_SIZE: '1', DEFAULT_CHUNK_SIZE: '64KiB', OVERLOAD_EVENT_LOOP_DELAY: '0', ...env });
}

export interface Running extends Sluice {
  url: string;
  /** The SQLite ledger's database, for tests that check rows directly. */
  db: Db;
  config: Config;
  dataDir: string;
  close(): Promise<void>;
}

/** Builds sluice on a data dir and serves it on 127.0.0.1 on a free port; closed at teardown. */
export async function startServer(t: Tap, opts: { dataDir?: string; env?: Record<string, string>; overrides?: AppOverrides } = {}): Promise<Running> {
  const dataDir = opts.dataDir ?? (await tmpDir(t));
  const config = testConfig(dataDir, opts.env);
  const sluice = await buildApp(config, { logger: false, ...opts.overrides });
  await sluice.app.listen({ port: 0, host: '127.0.0.1' });
  const address = sluice.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await sluice.app.close();
  };
  t.teardown(close);
  return { ...sluice, db: (sluice.ledger as SqliteLedger).db, url: `http://127.0.0.1:${address.port}`, config, dataDir, close };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
  text: string;
}

/** One HTTP request over a real socket; JSON bodies are encoded and decoded. */
export async function http(
  method: string,
  url: string,
  opts: { json?: unknown; body?: Buffer | string | Readable; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await undiciRequest(url, { method: method as 'GET', headers, body: body ?? null });
  const text = await res.body.text();
  let parsed: unknown;
  if (/json/.test(String(res.headers['content-type'] ?? ''))) parsed = JSON.parse(text);
  return { status: res.statusCode, headers: res.headers, body: parsed, text };
}

/** Writes `size` random bytes to a file in `dir`; returns its path and SHA-256. */
export async function randomFile(dir: string, size: number, name = 'source.bin'): Promise<{ file: string; sha256: string }> {
  const file = path.join(dir, name);
  const fh = await fs.open(file, 'w');
  const hash = createHash('sha256');
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(1024 * 1024, size - done);
      const buf = randomBytes(n);
      hash.update(buf);
      await fh.write(buf);
      done += n;
    }
  } finally {
    await fh.close();
  }
  return { file, sha256: hash.digest('hex') };
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const buf of createReadStream(file)) hash.update(buf as Buffer);
  return hash.digest('hex');
}

/** Creates an upload through the API and returns its JSON. */
export async function createUpload(url: string, body: Record<string, unknown>): Promise<any> {
  const res = await http('POST', `${url}/v1/uploads`, { json: body });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${res.text}`);
  return res.body;
}

/** PUTs one chunk of `data` by index. */
export function putChunk(url: string, id: string, index: number, data: Buffer | Readable, headers: Record<string, string> = {}): Promise<Reply> {
  return http('PUT', `${url}/v1/uploads/${id}/chunks/${index}`, {
    body: data,
    headers: { 'content-type': 'application/octet-stream', ...headers },
  });
}

/**
 * A hand-driven HTTP/1.1 request over a raw TCP socket, for what ordinary clients will not do:
 * stop mid-body, stall, or never end. `response` resolves with everything the server sent once it
 * closes the socket or `untilClose` is false and a full response head arrived.
 */
export function rawRequest(url: string, head: string) {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  socket.setNoDelay(true);
  let received = '';
  let closed = false;
  const closedPromise = new Promise<void>((resolve) => socket.on('close', () => ((closed = true), resolve())));
  socket.on('data', (d) => (received += d.toString('latin1')));
  socket.on('error', () => {});
  const ready = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return {
    socket,
    async send(data: string | Buffer) {
      await ready;
      if (!socket.destroyed) socket.write(data);
    },
    async start() {
      await ready;
      socket.write(`${head.replace(/\n/g, '\r\n')}\r\n`);
    },
    get received() {
      return received;
    },
    get closed() {
      return closed;
    },
    closedPromise,
    /** Waits until the server has sent a complete status line and headers. */
    async responseHead(timeoutMs = 10_000): Promise<{ status: number; text: string }> {
      const deadline = Date.now() + timeoutMs;
      while (!received.includes('\r\n\r\n')) {
        if (Date.now() > deadline || closed) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      const m = /^HTTP\/1\.1 (\d{3})/.exec(received);
      return { status: m ? Number(m[1]) : 0, text: received };
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
