import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { createUpload, http, putChunk, sha256, startServer } from '../helpers/server.js';

const MiB = 1024 * 1024;

t.test('creation reserves space: free minus outstanding reservations minus the margin must hold it (507 otherwise)', async (t) => {
  let free = 100 * MiB;
  const s = await startServer(t, { env: { DISK_RESERVE: '10MiB', MIN_CHUNK_SIZE: '1' }, overrides: { statfs: async () => ({ free, total: 1000 * MiB }) } });
  const a = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size: 60 * MiB, chunk_size: MiB } });
  t.equal(a.status, 201, '60 MiB of 100 free, 10 kept');
  const b = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'b', size: 40 * MiB } });
  t.same([b.status, b.body.code], [507, 'insufficient_storage'], 'fits alone, not next to the first reservation');
  t.match(b.body.detail, /60000000|62914560/);
  t.equal((await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'c', size: 30 * MiB } })).status, 201, '100 - 60 - 10 = 30 exactly');
  const tus = await http('POST', `${s.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': String(MiB) } });
  t.equal(tus.status, 507, 'tus creation is checked too');
  // Bytes that arrive stop being outstanding (statfs now counts them as used).
  await putChunk(s.url, a.body.id, 0, randomBytes(MiB));
  free -= MiB;
  t.equal((await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'd', size: 1 } })).status, 507, 'still full');
  await http('DELETE', `${s.url}/v1/uploads/${a.body.id}`);
  free += MiB;
  t.equal((await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'e', size: 50 * MiB } })).status, 201, 'an abort releases its reservation');
  t.equal((s.db.prepare('SELECT COUNT(*) AS n FROM uploads').get() as { n: number }).n, 3, 'refused creations left no rows');
});

t.test('DISK_RESERVE as a percentage; the default keeps min(1 GiB, 5%)', async (t) => {
  const total = 10 * 1024 * MiB;
  const pct = await startServer(t, { env: { DISK_RESERVE: '10%' }, overrides: { statfs: async () => ({ free: 2 * 1024 * MiB, total }) } });
  t.equal(
    (await http('POST', `${pct.url}/v1/uploads`, { json: { file_name: 'a', size: 1024 * MiB + 1, chunk_size: 16 * MiB } })).status,
    507,
    '2 GiB free - 1 GiB (10%) leaves 1 GiB',
  );
  t.equal((await http('POST', `${pct.url}/v1/uploads`, { json: { file_name: 'a', size: 1000 * MiB, chunk_size: 16 * MiB } })).status, 201);
  const def = await startServer(t, { overrides: { statfs: async () => ({ free: 1024 * MiB, total }) } });
  t.equal(
    (await http('POST', `${def.url}/v1/uploads`, { json: { file_name: 'a', size: 512 * MiB + 1, chunk_size: 16 * MiB } })).status,
    507,
    '5% of 10 GiB = 512 MiB kept',
  );
  t.equal((await http('POST', `${def.url}/v1/uploads`, { json: { file_name: 'a', size: 512 * MiB, chunk_size: 16 * MiB } })).status, 201);
});

/** A tmpfs of `sizeMiB` mounted for this file's tests, or undefined where mounting is not permitted. */
function mountTmpfs(sizeMiB: number): string | undefined {
  const dir = execFileSync('mktemp', ['-d', path.join(os.tmpdir(), 'sluice-tmpfs-XXXXXX')])
    .toString()
    .trim();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  t.teardown(() => {
    execFileSync('umount', ['-l', dir]);
    execFileSync('rmdir', [dir]);
  });
  return dir;
}

const tmpfs = mountTmpfs(4);
const skip = tmpfs ? false : 'mounting a tmpfs is not permitted here (the injected-statfs tests cover reservations)';

t.test('a write that still hits ENOSPC is a clear 507 for that chunk; nothing is recorded; the server keeps serving', { skip }, async (t) => {
  const dir = tmpfs as string;
  // The reservation check is told the disk is large, so that the real write is what fails.
  const s = await startServer(t, {
    dataDir: dir,
    env: { DISK_RESERVE: '0', MIN_CHUNK_SIZE: '1' },
    overrides: { statfs: async () => ({ free: 1024 * MiB, total: 1024 * MiB }) },
  });
  // Something else on the disk, that the operator can delete once it is full.
  const filler = path.join(dir, 'filler');
  await fs.writeFile(filler, Buffer.alloc(256 * 1024));
  const data = randomBytes(8 * MiB);
  const up = await createUpload(s.url, { file_name: 'big', size: data.length, chunk_size: MiB, sha256: sha256(data) });
  const statuses: number[] = [];
  let full: { status: number; body: { code: string } } | undefined;
  for (let i = 0; i < 8; i++) {
    const res = await putChunk(s.url, up.id, i, data.subarray(i * MiB, (i + 1) * MiB));
    statuses.push(res.status);
    if (res.status !== 200) {
      full = res;
      break;
    }
  }
  t.ok(full, `the disk filled up (statuses ${statuses.join(',')})`);
  t.same([full?.status, full?.body.code], [507, 'insufficient_storage']);
  const st = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.equal(st.status, 200, 'still serving');
  t.equal(st.body.chunks_received, statuses.filter((x) => x === 200).length, 'the failed chunk was not recorded');
  t.equal((await http('GET', `${s.url}/healthz`)).status, 200);
  // A full disk also blocks ledger writes (that is what DISK_RESERVE prevents); once the operator
  // frees some space, aborting releases the upload's bytes and work goes on.
  await fs.rm(filler);
  t.equal((await http('DELETE', `${s.url}/v1/uploads/${up.id}`)).status, 204);
  const small = await createUpload(s.url, { file_name: 'small', size: 3, sha256: sha256('abc') });
  t.equal((await putChunk(s.url, small.id, 0, Buffer.from('abc'))).status, 200);
  t.equal((await http('POST', `${s.url}/v1/uploads/${small.id}/finish`, { json: {} })).status, 200);
  t.equal((await fs.readFile(path.join(dir, 'files', small.id))).toString(), 'abc');
});
