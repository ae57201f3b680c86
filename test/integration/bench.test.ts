import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { tmpDir } from '../helpers/server.js';

// CI runs the benchmark's smoke mode: every case against every server it names, end to end. The
// numbers are not checked here (other tests share this machine's cores); that the run completes,
// verifies every upload and reports every measurement is.

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

t.test('npm run bench -- --quick runs every case on sluice, @tus/server and the raw limits', async (t) => {
  const out = path.join(await tmpDir(t), 'bench.json');
  const { stdout } = await run(path.join(ROOT, 'node_modules/.bin/tsx'), ['bench/bench.ts', '--quick', '--json', out], {
    cwd: ROOT,
    timeout: 240_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const report = JSON.parse(await fs.readFile(out, 'utf8')) as {
    results: { case: string; target: string; seconds: number; bytes: number; cpu: number; peakRss: number }[];
  };
  const seen = new Set(report.results.map((r) => `${r.case}/${r.target}`));
  const expected = ['single', 'chunks', 'small'].flatMap((c) => ['sluice', 'tus-server', 'discard'].map((s) => `${c}/${s}`));
  for (const key of [...expected, 'finish/sluice', 'parallel/sluice', 'dd/dd']) t.ok(seen.has(key), `measured ${key}`);
  for (const r of report.results) {
    t.ok(r.seconds > 0 && r.bytes > 0, `${r.case}/${r.target}: ${r.bytes} bytes in ${r.seconds.toFixed(2)} s`);
    if (r.target !== 'dd') t.ok(r.peakRss > 10 * 1024 * 1024, `${r.case}/${r.target}: peak RSS measured`);
  }
  t.match(stdout, /\| case \| server \| rate/, 'prints the table');
  t.match(stdout, /Targets \(ratios in this run\):\n- (met|NOT met): native 16 MiB chunks/, 'prints the targets');
  t.match(stdout, /direct upload \(parts straight to S3\): sluice [\d.]+ CPU-s\/GiB of its own/, 'measures a direct upload to s3rver');
  t.match(stdout, /- (met|NOT met): and under 1 MiB of received bytes per GiB/);
});

const pgInstalled = await fs
  .readdir('/usr/lib/postgresql')
  .then((v) => v.length > 0)
  .catch(() => false);
const nodesSkip = !pgInstalled ? 'no PostgreSQL here' : !(await fs.stat('/usr/sbin/haproxy').catch(() => undefined)) ? 'no HAProxy here' : false;

t.test(
  'npm run bench -- --nodes 3 --quick: through HAProxy to one node and to three, and the ledger latency of both ledgers',
  { skip: nodesSkip },
  async (t) => {
    const { stdout } = await run(path.join(ROOT, 'node_modules/.bin/tsx'), ['bench/bench.ts', '--nodes', '3', '--quick'], {
      cwd: ROOT,
      timeout: 240_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    t.match(stdout, /- 1 node: \d+ MB\/s of chunks through HAProxy, finish [\d.]+ s/);
    t.match(stdout, /- 3 nodes: \d+ MB\/s of chunks through HAProxy, finish [\d.]+ s/);
    t.match(stdout, /ledger, one recorded chunk: sqlite median [\d.]+ ms/);
    t.match(stdout, /ledger, one recorded chunk: postgres median [\d.]+ ms/);
  },
);
