import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { AppOverrides } from '../../src/app.js';
import type { FileStore, PublishInput } from '../../src/storage/file-store.js';
import { LocalStore } from '../../src/storage/local-store.js';
import { createUpload, http, putChunk, sha256, startServer, tmpDir, type TestContext } from '../helpers/server.js';

const CHUNK = 1000;

async function uploaded(t: TestContext, opts: { declare?: boolean; overrides?: AppOverrides; dataDir?: string; env?: Record<string, string> } = {}) {
  const s = await startServer(t, { overrides: opts.overrides, dataDir: opts.dataDir, ...(opts.env && { env: opts.env }) });
  const data = randomBytes(2500);
  const up = await createUpload(s.url, {
    file_name: 'report.pdf',
    size: data.length,
    chunk_size: CHUNK,
    content_type: 'application/pdf',
    ...(opts.declare !== false && { sha256: sha256(data) }),
  });
  const send = async (...indexes: number[]) => {
    for (const i of indexes) {
      const r = await putChunk(s.url, up.id, i, data.subarray(i * CHUNK, (i + 1) * CHUNK));
      if (r.status !== 200) throw new Error(`chunk ${i}: ${r.status} ${r.text}`);
    }
  };
  const finish = (json: unknown = {}) => http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json });
  const status = async () => (await http('GET', `${s.url}/v1/uploads/${up.id}`)).body;
  return { s, data, up, send, finish, status, staging: path.join(s.dataDir, 'staging', up.id) };
}

t.test('finish verifies the SHA-256 and moves the staging file into files/ with a rename', async (t) => {
  const { s, data, up, send, finish, status, staging } = await uploaded(t);
  await send(2, 0, 1);
  const { ino } = await fs.stat(staging);
  const res = await finish();
  t.equal(res.status, 200);
  t.same(res.body, {
    id: up.id,
    status: 'completed',
    sha256: sha256(data),
    size: 2500,
    location: { backend: 'local', path: `files/${up.id}` },
    sha256_checked: true,
  });
  const stored = path.join(s.dataDir, 'files', up.id);
  t.same(await fs.readFile(stored), data, 'stored bytes equal the source');
  t.equal((await fs.stat(stored)).ino, ino, 'same inode: renamed, not copied');
  await t.rejects(fs.access(staging), 'staging file is gone');
  const st = await status();
  t.same([st.status, st.sha256, st.missing_chunks, st.progress, st.location], ['completed', sha256(data), [], 1, { backend: 'local', path: `files/${up.id}` }]);
  t.ok(st.completed_at);
  const row = s.db.prepare('SELECT status, sha256, location FROM uploads WHERE id = ?').get(up.id);
  t.same(row, { status: 'completed', sha256: sha256(data), location: JSON.stringify({ backend: 'local', path: `files/${up.id}` }) });
});

t.test('finishing twice is idempotent; concurrent finishes agree', async (t) => {
  const { s, up, data, send, finish } = await uploaded(t);
  await send(0, 1, 2);
  const [a, b] = await Promise.all([finish(), finish()]);
  t.same([a.status, b.status], [200, 200]);
  t.same(a.body, b.body);
  const bare = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`);
  t.same([bare.status, bare.body], [200, a.body], 'no body at all (curl -X POST)');
  const c = await finish({ sha256: sha256(data) });
  t.same([c.status, c.body], [200, a.body], 'again, with the same sha256');
  const d = await finish({ sha256: sha256(Buffer.from('other')) });
  t.same([d.status, d.body.code], [422, 'file_checksum_mismatch'], 'a different sha256 for a completed upload is refused');
});

t.test('missing chunks: 409 chunks_missing with the list', async (t) => {
  const { send, finish, status } = await uploaded(t);
  await send(1);
  const res = await finish();
  t.same([res.status, res.body.code, res.body.missing_chunks], [409, 'chunks_missing', [0, 2]]);
  t.equal((await status()).status, 'uploading', 'still uploading');
});

t.test('whole-file checksum mismatch: 422, upload failed, staging bytes removed', async (t) => {
  const { s, up, send, finish, status, staging } = await uploaded(t, { declare: false });
  await send(0, 1, 2);
  const res = await finish({ sha256: sha256(Buffer.from('not the file')) });
  t.same([res.status, res.body.code], [422, 'file_checksum_mismatch']);
  const st = await status();
  t.equal(st.status, 'failed');
  t.match(st.failure, /SHA-256/);
  await t.rejects(fs.access(staging), 'staging removed');
  t.same(await fs.readdir(path.join(s.dataDir, 'files')), [], 'nothing published');
  t.equal((s.db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE upload_id = ?').get(up.id) as { n: number }).n, 0, 'chunk rows dropped');
  const again = await finish({ sha256: sha256(Buffer.from('not the file')) });
  t.same([again.status, again.body.code, again.body.upload_status], [409, 'upload_not_writable', 'failed']);
});

t.test(
  'chunks received out of order are read back for the whole-file hash: a staged byte changed on disk is caught, and only that chunk is sent again',
  async (t) => {
    const { send, finish, staging, data, status } = await uploaded(t);
    // Chunks 1 and 2 lie beyond the in-order prefix: their bytes are hashed from the file later.
    await send(1, 2);
    const fh = await fs.open(staging, 'r+');
    // Flipped, not overwritten with a constant: the random byte there could already be that constant.
    await fh.write(Buffer.from([(data[1234] as number) ^ 0xff]), 0, 1, 1234);
    await fh.close();
    await send(0);
    const res = await finish();
    t.same(
      [res.status, res.body.code, res.body.corrupt_chunks, res.body.upload_status],
      [422, 'file_checksum_mismatch', [1], 'uploading'],
      'the damaged chunk is named',
    );
    const st = await status();
    t.same([st.status, st.missing_chunks, st.chunks_received], ['uploading', [1], 2], 'it is missing again; the others are kept');
    t.match(st.failure, /changed on disk/);
    await send(1);
    const again = await finish();
    t.same([again.status, again.body.sha256], [200, sha256(data)], 'sent again, the file completes');
  },
);

t.test('finish without any sha256 stores the file with the digest the server computed, and says so', async (t) => {
  const undeclared = await uploaded(t, { declare: false });
  await undeclared.send(0, 1, 2);
  const res = await undeclared.finish();
  t.same([res.status, res.body.sha256, res.body.sha256_checked], [200, sha256(undeclared.data), false]);
  const again = await undeclared.finish({ sha256: sha256(undeclared.data) });
  t.same([again.status, again.body.sha256_checked], [200, true], 'finishing again with the right digest checks it');
  const wrong = await undeclared.finish({ sha256: sha256(Buffer.from('other')) });
  t.same([wrong.status, wrong.body.code], [422, 'file_checksum_mismatch']);
});

t.test('REQUIRE_FILE_SHA256=true: sha256 is required somewhere, and must agree with the one declared', async (t) => {
  const undeclared = await uploaded(t, { declare: false, env: { REQUIRE_FILE_SHA256: 'true' } });
  await undeclared.send(0, 1, 2);
  const res = await undeclared.finish();
  t.same([res.status, res.body.code], [400, 'sha256_required']);
  const ok = await undeclared.finish({ sha256: sha256(undeclared.data).toUpperCase() });
  t.same([ok.status, ok.body.sha256_checked], [200, true], 'given at finish (any case)');

  const declared = await uploaded(t);
  await declared.send(0, 1, 2);
  const disagree = await declared.finish({ sha256: sha256(Buffer.from('x')) });
  t.same([disagree.status, disagree.body.code], [400, 'invalid_request']);
  const bad = await declared.finish({ sha256: 'nothex' });
  t.same([bad.status, bad.body.code], [400, 'invalid_request']);
});

/** A local store whose publish fails while `down` is true, like an unreachable S3. */
class FlakyStore implements FileStore {
  readonly backend = 'local' as const;
  down = true;
  constructor(private readonly inner: LocalStore) {}
  check() {
    return this.inner.check();
  }
  async publish(input: PublishInput) {
    if (this.down) throw new Error('connect ECONNREFUSED 10.0.0.1:9000 (secret internals)');
    return this.inner.publish(input);
  }
  read(location: Parameters<FileStore['read']>[0], range?: Parameters<FileStore['read']>[1]) {
    return this.inner.read(location, range);
  }
  delete(...args: Parameters<FileStore['delete']>) {
    return this.inner.delete(...args);
  }
  locate(id: string) {
    return this.inner.locate(id);
  }
  cleanupIncomplete() {
    return this.inner.cleanupIncomplete();
  }
}

t.test('a store failure is not data loss: 503 storage_unavailable, bytes kept, finish again succeeds', async (t) => {
  const dataDir = await tmpDir(t);
  const inner = new LocalStore(dataDir);
  await inner.init();
  const store = new FlakyStore(inner);
  const { data, send, finish, status, staging } = await uploaded(t, { dataDir, overrides: { store } });
  await send(0, 1, 2);
  const res = await finish();
  t.same([res.status, res.body.code], [503, 'storage_unavailable']);
  t.notMatch(res.text, /ECONNREFUSED|secret|10\.0\.0\.1/, 'no internals leak');
  t.equal((await status()).status, 'uploading', 'retryable state, not failed');
  t.same(await fs.readFile(staging), data, 'staging bytes kept');
  store.down = false;
  const again = await finish();
  t.same([again.status, again.body.status, again.body.sha256], [200, 'completed', sha256(data)]);
});

t.test('DELETE aborts: 204, staging removed, status aborted; idempotent; completed uploads are not aborted', async (t) => {
  const { s, up, send, status, staging, finish } = await uploaded(t);
  await send(0);
  const res = await http('DELETE', `${s.url}/v1/uploads/${up.id}`);
  t.equal(res.status, 204);
  await t.rejects(fs.access(staging), 'staging removed');
  t.equal((await status()).status, 'aborted');
  t.equal((await http('DELETE', `${s.url}/v1/uploads/${up.id}`)).status, 204, 'again: still 204');
  const fin = await finish();
  t.same([fin.status, fin.body.code], [409, 'upload_not_writable']);
  t.equal((await http('DELETE', `${s.url}/v1/uploads/7f1d6a7e-0000-4000-8000-000000000000`)).status, 404);

  const done = await uploaded(t);
  await done.send(0, 1, 2);
  await done.finish();
  const del = await http('DELETE', `${done.s.url}/v1/uploads/${done.up.id}`);
  t.same([del.status, del.body.code], [409, 'upload_not_writable']);
  t.equal((await fs.stat(path.join(done.s.dataDir, 'files', done.up.id))).size, 2500, 'the stored file is untouched');
});
