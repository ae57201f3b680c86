import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { spawnServer } from '../helpers/process.js';
import { tmpDir } from '../helpers/server.js';

// No Docker engine here: the Dockerfile is linted, its promises are checked one by one, and the
// commands it runs are run (the HEALTHCHECK against a real server, the CMD's entry point exists).

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The Dockerfile as logical instructions (continuation lines joined, comments dropped). */
async function instructions(): Promise<{ keyword: string; args: string }[]> {
  const text = await fs.readFile(path.join(ROOT, 'Dockerfile'), 'utf8');
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [keyword, ...rest] = l.split(/\s+/);
      return { keyword: (keyword as string).toUpperCase(), args: rest.join(' ') };
    });
}

t.test('the Dockerfile lints clean', async (t) => {
  const { stdout } = await run(path.join(ROOT, 'node_modules/.bin/dockerfile-utils'), ['lint', path.join(ROOT, 'Dockerfile')]);
  t.equal(stdout.trim(), '', 'no warnings, no errors');
});

t.test('multi-stage on a Node LTS slim base, non-root, /data volume, port 8080, tini, healthcheck', async (t) => {
  const all = await instructions();
  const froms = all.filter((i) => i.keyword === 'FROM').map((i) => i.args);
  t.equal(froms.length, 2, 'a build stage and a runtime stage');
  for (const from of froms) {
    const major = Number(/^node:(\d+)-[a-z]+-slim\b/.exec(from)?.[1]);
    t.ok(major >= 22 && major % 2 === 0, `${from}: an even (LTS) Node line, 22 or newer, slim`);
  }
  const runtime = all.slice(all.findIndex((i, n) => i.keyword === 'FROM' && n > 0));
  const has = (keyword: string, pattern: RegExp) =>
    t.ok(
      runtime.some((i) => i.keyword === keyword && pattern.test(i.args)),
      `${keyword} ${pattern}`,
    );
  has('ENV', /\bHOST=0\.0\.0\.0\b/);
  has('ENV', /\bDATA_DIR=\/data\b/);
  has('VOLUME', /"\/data"/);
  has('EXPOSE', /^8080$/);
  has('USER', /^node$/);
  has('ENTRYPOINT', /tini/);
  has('HEALTHCHECK', /\/healthz/);
  t.notOk(
    runtime.some((i) => i.keyword === 'RUN' && /npm (ci|install)\b(?!.*--omit=dev)/.test(i.args)),
    'no dev dependencies installed in the runtime stage',
  );
  const ignore = await fs.readFile(path.join(ROOT, '.dockerignore'), 'utf8');
  for (const entry of ['node_modules', 'data', '.git', 'dist']) t.match(ignore, new RegExp(`^${entry.replace('.', '\\.')}$`, 'm'), `.dockerignore: ${entry}`);
});

t.test('what the runtime stage runs exists and works: COPY sources, the CMD entry, the HEALTHCHECK command', async (t) => {
  const all = await instructions();
  for (const copy of all.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))) {
    const sources = copy.args.split(/\s+/).slice(0, -1);
    for (const source of sources) await t.resolves(fs.access(path.join(ROOT, source)), `COPY ${source} exists`);
  }
  const cmd = JSON.parse(all.find((i) => i.keyword === 'CMD')?.args ?? '[]') as string[];
  t.same(cmd.slice(0, 1), ['node']);
  await t.resolves(fs.access(path.join(ROOT, cmd[1] as string)), `${cmd[1]} is built by npm run build`);

  const health = all.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? '';
  const probe = JSON.parse(health.slice(health.indexOf('CMD') + 3).trim()) as string[];
  const server = await spawnServer({ DATA_DIR: await tmpDir(t) }, t);
  const port = new URL(server.url).port;
  const ok = await run(process.execPath, probe.slice(1), { env: { PORT: port } }).then(
    () => 0,
    (e: { code: number }) => e.code,
  );
  t.equal(ok, 0, 'the healthcheck passes against a running server');
  server.child.kill('SIGTERM');
  await server.exited;
  const down = await run(process.execPath, probe.slice(1), { env: { PORT: port } }).then(
    () => 0,
    (e: { code: number }) => e.code,
  );
  t.equal(down, 1, 'and fails once it is gone');
});
