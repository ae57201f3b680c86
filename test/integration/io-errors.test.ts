import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createUpload, http, putChunk, rawRequest, sha256, sleep, startServer, tmpDir, type TestContext } from '../helpers/server.js';

/**
 * Real kernel I/O errors under the staging files: DATA_DIR lives on a FUSE passthrough filesystem
 * (test/fixtures/faulty-fs.py, Debian's python3-fusepy; scripts/install-fuse.sh installs it) that
 * fails an fdatasync with EIO on demand, as a failing disk does. Device-mapper's `error` and
 * `flakey` targets would do the same, but this kernel has no device-mapper; FUSE is there.
 */
const FS = fileURLToPath(new URL('../fixtures/faulty-fs.py', import.meta.url));
const PYTHON = '/usr/bin/python3';

function unavailable(): string | false {
  if (process.getuid?.() !== 0) return 'mounting a FUSE filesystem needs root here';
  if (!existsSync('/dev/fuse')) return 'this kernel has no /dev/fuse';
  if (spawnSync(PYTHON, ['-c', 'import fusepy']).status !== 0) return "Debian's python3-fusepy is not installed (scripts/install-fuse.sh installs it)";
  if (spawnSync('sh', ['-c', 'command -v fusermount3']).status !== 0) return "Debian's fuse3 is not installed (scripts/install-fuse.sh installs it)";
  return false;
}
const skip = unavailable();

/** Mounts the faulty filesystem over a fresh directory; unmounted at teardown. */
async function faultyMount(t: TestContext) {
  const backing = await tmpDir(t, 'sluice-backing-');
  const mnt = await tmpDir(t, 'sluice-fuse-');
  const child = spawn(PYTHON, [FS, backing, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d) => (err += d));
  const mounted = () => readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} fuse`);
  for (let i = 0; i < 200 && !mounted(); i++) {
    if (child.exitCode !== null) throw new Error(`faulty-fs exited: ${err}`);
    await sleep(25);
  }
  if (!mounted()) throw new Error(`faulty-fs did not mount: ${err}`);
  t.teardown(async () => {
    spawnSync('fusermount3', ['-u', '-z', mnt]);
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  });
  const control = path.join(mnt, '.fault');
  return { dir: mnt, arm: (line: string) => fs.writeFile(control, `${line}\n`) };
}

const CHUNK = 256 * 1024;

/** A chunk PUT over a raw socket, its body sent in two halves when the test says so. */
function halfway(url: string, id: string, index: number, body: Buffer) {
  const { host } = new URL(url);
  const req = rawRequest(
    url,
    `PUT /v1/uploads/${id}/chunks/${index} HTTP/1.1\nHost: ${host}\nContent-Type: application/octet-stream\nContent-Length: ${body.length}\nConnection: close\n`,
  );
  return {
    async first() {
      await req.start();
      await req.send(body.subarray(0, body.length / 2));
    },
    async rest() {
      await req.send(body.subarray(body.length / 2));
      await req.closedPromise;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(req.received);
      return { status: m ? Number(m[1]) : 0, text: req.received };
    },
  };
}

t.test('a real EIO from fdatasync: neither of two concurrent chunks is recorded, both answer 503, retries land', { skip }, async (t) => {
  const mount = await faultyMount(t);
  const s = await startServer(t, { dataDir: mount.dir });
  const data = randomBytes(2 * CHUNK);
  const up = await createUpload(s.url, { file_name: 'f.bin', size: data.length, chunk_size: CHUNK, sha256: sha256(data) });
  const a = halfway(s.url, up.id, 0, data.subarray(0, CHUNK));
  const b = halfway(s.url, up.id, 1, data.subarray(CHUNK));
  await a.first();
  await b.first();
  await sleep(100); // both halves written into the shared staging descriptor
  await mount.arm('fsync /staging/ 1');
  const ra = await a.rest();
  t.equal(ra.status, 503, 'the request whose fdatasync failed');
  t.match(ra.text, /staging_failed/);
  const rb = await b.rest();
  t.equal(rb.status, 503, 'the request whose own fdatasync succeeded on the same descriptor');
  t.match(rb.text, /retry-after: 5/i);
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`)).body.chunks_received, 0, 'nothing recorded');
  const rows = s.db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE upload_id = ?').get(up.id) as { n: number };
  t.equal(rows.n, 0, 'no ledger rows');

  for (const i of [0, 1]) t.equal((await putChunk(s.url, up.id, i, data.subarray(i * CHUNK, (i + 1) * CHUNK))).status, 200, `chunk ${i} sent again`);
  const done = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([done.status, done.body.sha256], [200, sha256(data)]);
  t.equal(sha256(await fs.readFile(path.join(mount.dir, 'files', up.id))), sha256(data), 'the stored file is the source');
});

t.test("a real EIO in a tus PATCH's background flush: nothing recorded, a retryable 503 with the tus body", { skip }, async (t) => {
  const mount = await faultyMount(t);
  const s = await startServer(t, { dataDir: mount.dir });
  const data = randomBytes(6 * 1024 * 1024);
  const tus = { 'tus-resumable': '1.0.0' };
  const created = await http('POST', `${s.url}/files`, { headers: { ...tus, 'upload-length': String(data.length) } });
  const url = created.headers.location as string;
  await mount.arm('fsync /staging/ 1'); // the background flush after 4 MiB
  const res = await http('PATCH', url, { body: data, headers: { ...tus, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' } });
  t.equal(res.status, 503);
  t.match(res.text, /^staging_failed: /, 'the tus plain-text body');
  const head = await http('HEAD', url, { headers: tus });
  t.equal(head.headers['upload-offset'], '0', 'the offset did not move: the final flush succeeded, yet nothing was recorded');
  const again = await http('PATCH', url, { body: data, headers: { ...tus, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' } });
  t.equal(again.status, 204);
  const native = await http('GET', `${s.url}/v1/uploads/${url.split('/').pop()}`);
  t.same([native.body.status, native.body.sha256], ['completed', sha256(data)]);
});
