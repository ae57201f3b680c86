import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import * as tus from 'tus-js-client';
import { http, randomFile, tmpDir } from '../helpers/server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const run = (cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(cmd, args, { ...opts, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );

t.test('the single executable, alone in an empty directory with an empty environment, serves both protocols and is its own CLI', async (t) => {
  const built = await run('npm', ['run', 'build:binary'], { cwd: ROOT });
  t.equal(built.code, 0, built.stderr.slice(-500));
  const dir = await tmpDir(t, 'sluice-bin-');
  const binary = path.join(dir, 'sluice');
  await fs.copyFile(path.join(ROOT, 'dist/sluice'), binary);
  await fs.chmod(binary, 0o755);
  t.same(await fs.readdir(dir), ['sluice'], 'nothing but the binary');

  // env -i: only what sluice itself is configured with (and HOME for the addon cache).
  const env = { PORT: '0', HOME: dir, LOG_LEVEL: 'info' };
  const server = spawn(binary, [], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void server.kill('SIGKILL'));
  let log = '';
  server.stdout.on('data', (d) => (log += d));
  server.stderr.on('data', (d) => (log += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start:\n${log}`)), 20_000);
    server.stdout.on('data', () => {
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
  });
  t.equal((await http('GET', `${url}/healthz`)).status, 200);
  t.equal((await http('GET', `${url}/`)).status, 200, 'the uploader page is inside the binary');
  const openapi = await http('GET', `${url}/openapi.json`);
  t.equal(openapi.status, 200);
  t.ok(openapi.body.paths?.['/v1/uploads/{id}/chunks/{index}']?.put, 'the OpenAPI document, built on first use inside the binary');
  const docs = await fetch(`${url}/docs`);
  t.equal(docs.status, 200, '/docs is in the binary too');
  t.match(await docs.text(), /<title>sluice API<\/title>/);
  const bundle = await fetch(`${url}/docs/swagger-ui-bundle.js`);
  t.same([bundle.status, (await bundle.arrayBuffer()).byteLength > 500_000], [200, true], "with Swagger UI's files");

  const src = await randomFile(await tmpDir(t), 3 * 1024 * 1024 + 7, 'native.bin');
  const up = await run(binary, ['--json', '--server', url, 'upload', src.file, '--chunk-size', '1MiB'], { cwd: dir, env: { HOME: dir } });
  t.equal(up.code, 0, up.stderr);
  const done = up.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((e) => e.event === 'done');
  t.equal(done?.sha256, src.sha256, 'native API upload through the binary CLI, verified');

  const data = await fs.readFile(src.file);
  const tusUrl = await new Promise<string>((resolve, reject) => {
    const u = new tus.Upload(data, { endpoint: `${url}/files`, chunkSize: 1024 * 1024, onError: reject, onSuccess: () => resolve(u.url as string) });
    u.start();
  });
  const st = await http('GET', `${url}/v1/uploads/${tusUrl.split('/').pop()}`);
  t.same([st.body.status, st.body.sha256], ['completed', src.sha256], 'tus upload to the binary, verified');

  const help = await run(binary, ['--help'], { env: {} });
  t.match(help.stdout, /upload \[options\] <file\.\.\.>/);
  const serveHelp = await run(binary, ['serve', '--help'], { env: {} });
  t.match(serveHelp.stdout, /\n {2}DATA_DIR +SQLite ledger/, 'the binary documents its environment');
  server.kill('SIGTERM');
  t.equal(await new Promise((r) => server.once('exit', (code) => r(code))), 0, 'clean shutdown');
});
