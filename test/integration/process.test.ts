import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import t from 'tap';
import { MAIN, spawnServer } from '../helpers/process.js';
import { createUpload, http, rawRequest, sha256, sleep, tmpDir } from '../helpers/server.js';

t.test('a bad configuration stops start-up with a clear message and exit code 2', async (t) => {
  const dataDir = await tmpDir(t);
  const res = spawnSync(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, DATA_DIR: dataDir, MAX_UPLOAD_SIZE: 'lots', PORT: '99999', MIN_CHUNK_SIZE: '1GiB' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  t.equal(res.status, 2);
  t.match(res.stderr, /MAX_UPLOAD_SIZE="lots" is not a positive byte size/);
  t.match(res.stderr, /PORT="99999" is not a port number/);
  t.match(res.stderr, /MIN_CHUNK_SIZE .* is larger than MAX_CHUNK_SIZE/, 'every problem is listed at once');
});

t.test('SIGTERM: stops accepting, lets the in-flight chunk finish, closes; a restart keeps the chunk', async (t) => {
  const dataDir = await tmpDir(t);
  const env = { DATA_DIR: dataDir, SHUTDOWN_TIMEOUT: '10s' };
  const server = await spawnServer(env, t);
  const data = randomBytes(256 * 1024);
  const up = await createUpload(server.url, { file_name: 'a', size: data.length, chunk_size: data.length, sha256: sha256(data) });

  const host = new URL(server.url).host;
  const inflight = rawRequest(
    server.url,
    `PUT /v1/uploads/${up.id}/chunks/0 HTTP/1.1\nHost: ${host}\nContent-Type: application/octet-stream\nContent-Length: ${data.length}\n`,
  );
  await inflight.start();
  await inflight.send(data.subarray(0, 1000));
  await sleep(200);
  server.child.kill('SIGTERM');
  await sleep(300);
  await t.rejects(http('GET', `${server.url}/healthz`), 'new connections are refused');
  await inflight.send(data.subarray(1000));
  const { status, text } = await inflight.responseHead();
  t.equal(status, 200, 'the in-flight chunk completed');
  t.match(text, /"chunks_received":1/);
  inflight.socket.destroy();
  const exit = await server.exited;
  t.same(exit, { code: 0, signal: null }, 'clean exit');
  t.match(server.output(), /shutting down/);

  const again = await spawnServer(env, t);
  const st = await http('GET', `${again.url}/v1/uploads/${up.id}`);
  t.same([st.body.chunks_received, st.body.missing_chunks], [1, []]);
  const fin = await http('POST', `${again.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
  again.child.kill('SIGTERM');
  t.same(await again.exited, { code: 0, signal: null });
});

t.test('SIGTERM with a stalled request: shutdown is bounded by SHUTDOWN_TIMEOUT', async (t) => {
  const dataDir = await tmpDir(t);
  const server = await spawnServer({ DATA_DIR: dataDir, SHUTDOWN_TIMEOUT: '1s', IDLE_TIMEOUT: '1h', MIN_CHUNK_SIZE: '1' }, t);
  const up = await createUpload(server.url, { file_name: 'a', size: 1000, chunk_size: 1000 });
  const host = new URL(server.url).host;
  const stalled = rawRequest(
    server.url,
    `PUT /v1/uploads/${up.id}/chunks/0 HTTP/1.1\nHost: ${host}\nContent-Type: application/octet-stream\nContent-Length: 1000\n`,
  );
  await stalled.start();
  await stalled.send(Buffer.alloc(10));
  await sleep(200);
  const started = Date.now();
  server.child.kill('SIGTERM');
  const exit = await server.exited;
  const took = Date.now() - started;
  t.ok(took < 5000, `exited after ${took} ms`);
  t.not(exit.code, null, 'exited by itself, not killed');
  stalled.socket.destroy();
});

t.test('anonymous mode is announced at start-up, loudly when reachable from other machines', async (t) => {
  const local = await spawnServer({ DATA_DIR: await tmpDir(t) }, t);
  await sleep(100);
  t.match(local.output(), /"event":"anonymous_mode".*every client is the same anonymous user/);
  local.child.kill('SIGTERM');
  await local.exited;
  const open = await spawnServer({ DATA_DIR: await tmpDir(t), HOST: '0.0.0.0' }, t);
  await sleep(100);
  t.match(open.output(), /"level":40.*"event":"anonymous_mode".*anyone who can reach it can upload, read and delete/);
  open.child.kill('SIGTERM');
  await open.exited;
  const authed = await spawnServer({ DATA_DIR: await tmpDir(t), AUTH_TOKENS: 'a-long-enough-token-123:alice' }, t);
  await sleep(100);
  t.notMatch(authed.output(), /anonymous_mode/, 'no warning with authentication configured');
  authed.child.kill('SIGTERM');
  await authed.exited;
});

t.test('SIGTERM under load: every in-flight request finishes or is cleanly refused; a restart resumes all uploads', async (t) => {
  const dataDir = await tmpDir(t);
  const env = { DATA_DIR: dataDir, SHUTDOWN_TIMEOUT: '10s', MIN_CHUNK_SIZE: '1' };
  let server = await spawnServer(env, t);
  const CLIENTS = 20;
  const CHUNK = 128 * 1024;
  const CHUNKS = 8;
  const files = Array.from({ length: CLIENTS }, () => randomBytes(CHUNK * CHUNKS));
  const ids: string[] = [];
  for (const f of files) ids.push((await createUpload(server.url, { file_name: 'f', size: f.length, chunk_size: CHUNK, sha256: sha256(f) })).id);
  const outcomes: string[] = [];
  const acked = ids.map(() => new Set<number>());
  const url = server.url;
  const uploader = async (c: number) => {
    for (let i = 0; i < CHUNKS; i++) {
      try {
        const res = await http('PUT', `${url}/v1/uploads/${ids[c]}/chunks/${i}`, {
          body: files[c]!.subarray(i * CHUNK, (i + 1) * CHUNK),
          headers: { 'content-type': 'application/octet-stream' },
        });
        outcomes.push(String(res.status));
        if (res.status === 200) acked[c]!.add(i);
      } catch (err) {
        // Refused before anything was sent: the listener is closed.
        outcomes.push((err as { code?: string }).code ?? 'error');
        return;
      }
    }
  };
  const running = Promise.all(ids.map((_, c) => uploader(c)));
  await sleep(150);
  server.child.kill('SIGTERM');
  await running;
  t.same(await server.exited, { code: 0, signal: null }, 'clean exit');
  const odd = outcomes.filter((o) => !['200', '503', 'ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET'].includes(o));
  t.same(odd, [], `every request completed or was refused cleanly (${outcomes.filter((o) => o === '200').length} chunks done before the stop)`);

  server = await spawnServer(env, t);
  for (let c = 0; c < CLIENTS; c++) {
    const st = await http('GET', `${server.url}/v1/uploads/${ids[c]}`);
    const missing = st.body.missing_chunks as number[];
    t.same(
      [...acked[c]!].filter((i) => missing.includes(i)),
      [],
      `upload ${c}: acknowledged chunks kept`,
    );
    for (const i of missing)
      await http('PUT', `${server.url}/v1/uploads/${ids[c]}/chunks/${i}`, {
        body: files[c]!.subarray(i * CHUNK, (i + 1) * CHUNK),
        headers: { 'content-type': 'application/octet-stream' },
      });
    const fin = await http('POST', `${server.url}/v1/uploads/${ids[c]}/finish`, { json: {} });
    t.equal(fin.body.sha256, sha256(files[c]!), `upload ${c} resumed and verified`);
  }
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('both memory profiles serve uploads; under the default (small) one, JWKS fetching (WebAssembly) still works', async (t) => {
  // The small profile turns V8 tiers off at run time. --lite-mode would have been smaller still,
  // but it implies --jitless and the process aborts when undici compiles its WebAssembly parser.
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' };
  const jwks = createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify({ keys: [jwk] })));
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => jwks.close(r)));
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('erin').setExpirationTime('5m').sign(privateKey);
  const headers = { authorization: `Bearer ${token}` };
  for (const profile of [undefined, 'fast'] as const) {
    const env: Record<string, string> = { DATA_DIR: await tmpDir(t), JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks` };
    if (profile) env.MEMORY_PROFILE = profile;
    const server = await spawnServer(env, t);
    const data = randomBytes(5 * 1024 * 1024);
    const up = await http('POST', `${server.url}/v1/uploads`, {
      headers,
      json: { file_name: 'a', size: data.length, chunk_size: data.length, sha256: sha256(data) },
    });
    t.equal(up.status, 201, 'authenticated through the fetched key set');
    const put = await http('PUT', `${server.url}/v1/uploads/${up.body.id}/chunks/0`, {
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: data,
    });
    t.equal(put.status, 200);
    const fin = await http('POST', `${server.url}/v1/uploads/${up.body.id}/finish`, { headers, json: {} });
    t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
    t.match(server.output(), new RegExp(`"memoryProfile":"${profile ?? 'small'}".*sluice is ready`), `${profile ?? 'default'}: profile in the ready line`);
    server.child.kill('SIGTERM');
    t.same(await server.exited, { code: 0, signal: null }, 'exits cleanly (no V8 abort)');
  }
});
