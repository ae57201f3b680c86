import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../../src/ledger/database.js';
import type { Chunk, NewUpload } from '../../src/ledger/ledger.js';
import { MIGRATIONS } from '../../src/ledger/migrations.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { tmpDir } from '../helpers/server.js';

const LIMITS = { maxActive: 100, quota: undefined };
const open = () => true;

const upload = (over: Partial<NewUpload> = {}): NewUpload => ({
  id: 'u1',
  owner: 'alice',
  layout: 'grid',
  protocol: 'native',
  fileName: 'f',
  contentType: 'application/octet-stream',
  metadata: { a: 'b' },
  size: 25,
  chunkSize: 10,
  totalChunks: 3,
  expectedSha256: null,
  createdAt: 1000,
  expiresAt: 5000,
  ...over,
});

async function ledger(t: Parameters<typeof tmpDir>[0]) {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'ledger.db');
  const db = openDatabase(file);
  t.teardown(() => db.open && db.close());
  const l = new SqliteLedger(db);
  const created = await l.create(upload(), LIMITS);
  return { db, l, u: created.kind === 'created' ? created.upload : undefined, file };
}
const chunk = (index: number, sha256 = `h${index}`): Chunk => ({ index, offset: index * 10, length: index === 2 ? 5 : 10, sha256, receivedAt: 2000 });

t.test('schema: WAL, synchronous FULL, migrations versioned', async (t) => {
  const { db } = await ledger(t);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
  t.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  t.equal(db.pragma('foreign_keys', { simple: true }), 1, 'foreign keys are back on after migrating');
});

t.test('recordChunk: recorded, duplicate, conflict; counters move once', async (t) => {
  const { l } = await ledger(t);
  const a = await l.recordChunk('u1', chunk(1), open);
  t.equal(a.kind, 'recorded');
  t.same(a.kind === 'recorded' && [a.upload.chunksReceived, a.upload.bytesReceived], [1, 10]);
  t.equal((await l.recordChunk('u1', chunk(1), open)).kind, 'duplicate');
  const c = await l.recordChunk('u1', chunk(1, 'other'), open);
  t.same([c.kind, c.kind === 'conflict' && c.existing.sha256], ['conflict', 'h1']);
  await l.recordChunk('u1', chunk(2), open);
  const u = await l.get('u1');
  t.same([u?.chunksReceived, u?.bytesReceived], [2, 15]);
  t.same(await l.missingChunks('u1', 3), [0]);
  t.same(await l.missingChunks('u1', 3, 0), [], 'limit');
});

t.test('a fenced writer records nothing: the fence is asked inside the transaction', async (t) => {
  const { l } = await ledger(t);
  let held = true;
  const pending = l.recordChunk('u1', chunk(0), () => held);
  held = false; // lost after asking, before the group commit ran
  t.same(await pending, { kind: 'fenced' });
  t.equal((await l.get('u1'))?.chunksReceived, 0);
  t.equal(await l.getChunk('u1', 0), undefined);
  const s = await l.create(upload({ id: 's1', layout: 'stream', protocol: 'tus', size: 10, chunkSize: 10, totalChunks: 0 }), LIMITS);
  t.equal(s.kind, 'created');
  t.same(await l.recordExtent('s1', { offset: 0, length: 5 }, 2000, undefined, () => false), { kind: 'fenced' });
  t.equal((await l.get('s1'))?.bytesReceived, 0);
});

t.test('recordChunk answers the upload as stored; recordedUntil follows the contiguous recorded chunks', async (t) => {
  const { l } = await ledger(t);
  t.equal(await l.recordedUntil('u1', 0), 0, 'nothing recorded');
  await l.recordChunk('u1', chunk(1), open);
  t.equal(await l.recordedUntil('u1', 0), 0, 'chunk 0 is missing');
  t.equal(await l.recordedUntil('u1', 10), 20, 'from chunk 1: up to the gap at 2');
  const r = await l.recordChunk('u1', chunk(0), open);
  t.same(r.kind === 'recorded' && r.upload, await l.get('u1'), 'the returned upload equals a fresh read');
  t.equal(await l.recordedUntil('u1', 0), 20);
  await l.recordChunk('u1', chunk(2), open);
  t.equal(await l.recordedUntil('u1', 10), 25, 'the last, short chunk ends at the size');
  await l.transition('u1', 'uploading', 'aborted', 3000);
  t.equal(await l.recordedUntil('u1', 0), 0, 'an upload that takes no bytes');
  t.equal(await l.recordedUntil('nope', 0), 0);
});

t.test('missingChunks pages through gaps without loading every row', async (t) => {
  const { l, db } = await ledger(t);
  db.prepare('UPDATE uploads SET total_chunks = 10000, size = 100000 WHERE id = ?').run('u1');
  const writes = [];
  for (let i = 0; i < 10000; i += 3) writes.push(l.recordChunk('u1', { ...chunk(i), offset: i * 10, length: 10 }, open));
  t.ok((await Promise.all(writes)).every((w) => w.kind === 'recorded'));
  t.same(l.commitStats(), { commits: 1, writes: 3334 }, 'requested in one turn, committed as one transaction');
  const missing = await l.missingChunks('u1', 10000);
  t.equal(missing.length, 10000 - 3334);
  t.same(missing.slice(0, 4), [1, 2, 4, 5]);
  t.same(await l.missingChunks('u1', 10000, 5), [1, 2, 4, 5, 7]);
});

t.test('transitions are guarded: exactly one of two racers wins', async (t) => {
  const { l } = await ledger(t);
  t.ok(await l.transition('u1', 'uploading', 'finishing', 3000));
  t.notOk(await l.transition('u1', 'uploading', 'finishing', 3000), 'second attempt changes nothing');
  t.equal((await l.recordChunk('u1', chunk(0), open)).kind, 'not_writable', 'no chunks while finishing');
  t.ok(await l.complete('u1', 'abc', { backend: 'local', path: 'files/u1' }, 4000));
  t.notOk(await l.discard('u1', { from: 'finishing', to: 'failed', now: 4000, failure: 'late' }), 'a completed upload cannot fail');
  const u = await l.get('u1');
  t.same([u?.status, u?.sha256, u?.location, u?.completedAt], ['completed', 'abc', { backend: 'local', path: 'files/u1' }, 4000]);
});

t.test('discard: the state change, the forgotten ranges and the freed reservation are one transaction', async (t) => {
  const { l, db } = await ledger(t);
  await l.recordChunk('u1', chunk(0), open);
  t.equal(await l.reserved('alice'), 25);
  t.notOk(await l.discard('u1', { from: 'finishing', to: 'failed', now: 3000 }), 'not in `from`: nothing changes');
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM chunks').get() as { n: number }).n, 1);
  t.ok(await l.discard('u1', { from: 'uploading', to: 'aborted', now: 3000 }));
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM chunks').get() as { n: number }).n, 0, 'its ranges are gone');
  t.equal(await l.reserved('alice'), 0, 'its reservation ended with it');
  t.equal((await l.get('u1'))?.status, 'aborted');
});

t.test('a composed upload completes with its parts in one transaction', async (t) => {
  const { l } = await ledger(t);
  const part = (id: string) => upload({ id, layout: 'stream', protocol: 'tus', size: 5, chunkSize: 5, totalChunks: 0, isPart: true });
  await l.create(part('p1'), LIMITS);
  await l.create(part('p2'), LIMITS);
  await l.create(
    upload({
      id: 'c1',
      layout: 'stream',
      protocol: 'tus',
      size: 10,
      chunkSize: 10,
      totalChunks: 0,
      parts: ['p1', 'p2'],
      echo: { 'upload-concat': 'final;/files/p1 /files/p2' },
    }),
    LIMITS,
  );
  t.same(await l.composedOf('p2'), ['c1']);
  t.same((await l.get('c1'))?.echo, { 'upload-concat': 'final;/files/p1 /files/p2' }, 'what the client sent, kept as sent');
  await l.transition('c1', 'uploading', 'finishing', 2000);
  t.ok(await l.complete('c1', 'abc', { backend: 'local', path: 'files/c1' }, 3000));
  t.same((await l.get('p1'))?.status, 'completed');
  t.same((await l.get('p2'))?.location, { backend: 'local', path: 'files/c1' });
});

t.test('the ledger survives reopening the file', async (t) => {
  const { l, db, file } = await ledger(t);
  await l.recordChunk('u1', chunk(0), open);
  db.close();
  const again = new SqliteLedger(openDatabase(file));
  t.teardown(() => again.close());
  t.same(await again.getChunk('u1', 0), chunk(0));
  t.same((await again.get('u1'))?.metadata, { a: 'b' });
});

t.test('dueForExpiry and list', async (t) => {
  const { l } = await ledger(t);
  t.same(await l.dueForExpiry(4999, 10), []);
  t.same(await l.dueForExpiry(5000, 10), ['u1']);
  t.same(
    (await l.list('alice', 10)).map((u) => u.id),
    ['u1'],
  );
  t.same(await l.list('bob', 10), [], 'other owners see nothing');
});

t.test('appends to uploads without a length count against the quota inside the transaction', async (t) => {
  const { l } = await ledger(t); // alice already reserves 25 bytes (u1)
  for (const id of ['d1', 'd2']) {
    await l.create(upload({ id, layout: 'stream', protocol: 'tus', size: 0, chunkSize: 1, totalChunks: 0, lengthDeferred: true, metadata: {} }), LIMITS);
  }
  t.equal(await l.reserved('alice'), 25, 'no bytes yet, nothing reserved');
  // Both asked for in one turn, so both were admitted by the request's own check: the ledger lets
  // only one past the quota of 100.
  const [a, b] = await Promise.all([
    l.recordExtent('d1', { offset: 0, length: 50 }, 2000, 100, open),
    l.recordExtent('d2', { offset: 0, length: 50 }, 2000, 100, open),
  ]);
  t.same([a.kind, b.kind, b.kind === 'over_quota' && b.reserved], ['recorded', 'over_quota', 75]);
  t.equal((await l.get('d2'))?.bytesReceived, 0, 'the refused bytes are not counted');
  t.equal(await l.reserved('alice'), 75);
  t.equal((await l.recordExtent('d2', { offset: 0, length: 25 }, 2000, 100, open)).kind, 'recorded', 'exactly up to the quota');
  t.same(await l.setLength('d1', 51, 3000, 100), { kind: 'over_quota', reserved: 100 }, 'a length one byte more than it holds');
  t.same(await l.setLength('d1', 50, 3000, 100), { kind: 'set' });
  t.same(await l.setLength('d1', 50, 3000, 100), { kind: 'unchanged' }, 'a length is set once');
  t.equal(await l.reserved('alice'), 100);
  t.equal((await l.recordExtent('d1', { offset: 40, length: 10 }, 2000, 100, open)).kind, 'offset_moved', 'an extent starts at the end');
});

t.test('migration 4 keeps every upload and chunk, with layout, protocol and echo derived from the old columns', async (t) => {
  const file = path.join(await tmpDir(t), 'old.db');
  const old = new Database(file);
  for (const sql of MIGRATIONS.slice(0, 3)) old.exec(sql);
  old.pragma('user_version = 3');
  const row = (id: string, protocol: string, extra: string) =>
    old.exec(`INSERT INTO uploads (id, owner, protocol, file_name, content_type, size, chunk_size, total_chunks, status, created_at, updated_at, expires_at${extra ? ', tus_metadata, concat' : ''})
              VALUES ('${id}', 'alice', '${protocol}', 'f', 'x/y', 10, 10, 1, 'uploading', 1, 1, 9${extra})`);
  row('n', 'native', '');
  row('s', 'tus', ", 'filename Zg==', 'partial'");
  old.exec(`INSERT INTO chunks (upload_id, idx, offset, length, sha256, received_at) VALUES ('n', 0, 0, 10, 'abc', 2)`);
  old.exec(`INSERT INTO chunks (upload_id, idx, offset, length, sha256, sha256_from, received_at) VALUES ('s', 0, 0, 10, 'def', 0, 2)`);
  old.close();

  const l = new SqliteLedger(openDatabase(file));
  t.teardown(() => l.close());
  const n = await l.get('n');
  const s = await l.get('s');
  t.same([n?.layout, n?.protocol, n?.echo, n?.isPart], ['grid', 'native', null, false]);
  t.same([s?.layout, s?.protocol, s?.echo, s?.isPart], ['stream', 'tus', { 'upload-metadata': 'filename Zg==', 'upload-concat': 'partial' }, true]);
  t.same(await l.getChunk('n', 0), { index: 0, offset: 0, length: 10, sha256: 'abc', receivedAt: 2 }, 'a grid chunk keeps its SHA-256');
  t.same(l.db.prepare('SELECT sha256 FROM chunks WHERE upload_id = ?').get('s'), { sha256: null }, 'an extent keeps no digest of its own');
  t.equal((l.db.pragma('foreign_key_check') as unknown[]).length, 0);
});
