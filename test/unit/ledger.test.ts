import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../../src/ledger/database.js';
import { Ledger, type Chunk } from '../../src/ledger/ledger.js';
import { tmpDir } from '../helpers/server.js';

async function ledger(t: Parameters<typeof tmpDir>[0]) {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'ledger.db');
  const db = openDatabase(file);
  t.teardown(() => db.close());
  const l = new Ledger(db);
  const u = l.createUpload({
    id: 'u1', owner: 'alice', protocol: 'native', fileName: 'f', contentType: 'application/octet-stream', metadata: { a: 'b' },
    size: 25, chunkSize: 10, totalChunks: 3, expectedSha256: null, createdAt: 1000, expiresAt: 5000,
  });
  return { db, l, u, file };
}
const chunk = (index: number, sha256 = `h${index}`): Chunk => ({ index, offset: index * 10, length: index === 2 ? 5 : 10, sha256, receivedAt: 2000 });

t.test('schema: WAL, synchronous FULL, migrations versioned', async (t) => {
  const { db } = await ledger(t);
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
  t.equal(db.pragma('user_version', { simple: true }), 3);
});

t.test('recordChunk: recorded, duplicate, conflict; counters move once', async (t) => {
  const { l } = await ledger(t);
  const a = await l.recordChunk('u1', chunk(1));
  t.equal(a.kind, 'recorded');
  t.same(a.kind === 'recorded' && [a.upload.chunksReceived, a.upload.bytesReceived], [1, 10]);
  t.equal((await l.recordChunk('u1', chunk(1))).kind, 'duplicate');
  const c = await l.recordChunk('u1', chunk(1, 'other'));
  t.same([c.kind, c.kind === 'conflict' && c.existing.sha256], ['conflict', 'h1']);
  await l.recordChunk('u1', chunk(2));
  const u = l.getUpload('u1');
  t.same([u?.chunksReceived, u?.bytesReceived], [2, 15]);
  t.same(l.missingChunks('u1', 3), [0]);
  t.same(l.missingChunks('u1', 3, 0), [], 'limit');
});

t.test('recordChunk answers the upload as stored; recordedUntil follows the contiguous recorded chunks', async (t) => {
  const { l } = await ledger(t);
  t.equal(l.recordedUntil('u1', 0), 0, 'nothing recorded');
  await l.recordChunk('u1', chunk(1));
  t.equal(l.recordedUntil('u1', 0), 0, 'chunk 0 is missing');
  t.equal(l.recordedUntil('u1', 10), 20, 'from chunk 1: up to the gap at 2');
  const r = await l.recordChunk('u1', chunk(0));
  t.same(r.kind === 'recorded' && r.upload, l.getUpload('u1'), 'the returned upload equals a fresh read');
  t.equal(l.recordedUntil('u1', 0), 20);
  await l.recordChunk('u1', chunk(2));
  t.equal(l.recordedUntil('u1', 10), 25, 'the last, short chunk ends at the size');
  l.transition('u1', 'uploading', 'aborted', 3000);
  t.equal(l.recordedUntil('u1', 0), 0, 'an upload that takes no bytes');
  t.equal(l.recordedUntil('nope', 0), 0);
});

t.test('missingChunks pages through gaps without loading every row', async (t) => {
  const { l, db } = await ledger(t);
  db.prepare('UPDATE uploads SET total_chunks = 10000, size = 100000 WHERE id = ?').run('u1');
  const writes = [];
  for (let i = 0; i < 10000; i += 3) writes.push(l.recordChunk('u1', { ...chunk(i), offset: i * 10, length: 10 }));
  t.ok((await Promise.all(writes)).every((w) => w.kind === 'recorded'));
  t.same(l.commitStats(), { commits: 1, writes: 3334 }, 'requested in one turn, committed as one transaction');
  const missing = l.missingChunks('u1', 10000);
  t.equal(missing.length, 10000 - 3334);
  t.same(missing.slice(0, 4), [1, 2, 4, 5]);
  t.same(l.missingChunks('u1', 10000, 5), [1, 2, 4, 5, 7]);
});

t.test('transitions are guarded: exactly one of two racers wins', async (t) => {
  const { l } = await ledger(t);
  t.ok(l.transition('u1', 'uploading', 'finishing', 3000));
  t.notOk(l.transition('u1', 'uploading', 'finishing', 3000), 'second attempt changes nothing');
  t.equal((await l.recordChunk('u1', chunk(0))).kind, 'not_writable', 'no chunks while finishing');
  t.ok(l.markCompleted('u1', 'abc', { backend: 'local', path: 'files/u1' }, 4000));
  t.notOk(l.markFailed('u1', 'late', 4000), 'a completed upload cannot fail');
  const u = l.getUpload('u1');
  t.same([u?.status, u?.sha256, u?.location, u?.completedAt], ['completed', 'abc', { backend: 'local', path: 'files/u1' }, 4000]);
});

t.test('the ledger survives reopening the file', async (t) => {
  const { l, db, file } = await ledger(t);
  await l.recordChunk('u1', chunk(0));
  db.close();
  const again = new Ledger(openDatabase(file));
  t.same(again.getChunk('u1', 0), chunk(0));
  t.same(again.getUpload('u1')?.metadata, { a: 'b' });
});

t.test('dueForExpiry and listUploads', async (t) => {
  const { l } = await ledger(t);
  t.same(l.dueForExpiry(4999, 10), []);
  t.same(l.dueForExpiry(5000, 10), ['u1']);
  t.same(l.listUploads('alice', 10).map((u) => u.id), ['u1']);
  t.same(l.listUploads('bob', 10), [], 'other owners see nothing');
});

t.test('appends to uploads without a length count against the quota inside the transaction', async (t) => {
  const { l } = await ledger(t); // alice already reserves 25 bytes (u1)
  for (const id of ['d1', 'd2']) {
    l.createUpload({
      id, owner: 'alice', protocol: 'tus', fileName: id, contentType: 'application/octet-stream', metadata: {},
      size: 0, chunkSize: 1, totalChunks: 0, expectedSha256: null, createdAt: 1000, expiresAt: 5000, lengthDeferred: true,
    });
  }
  t.equal(l.reserved('alice'), 25, 'no bytes yet, nothing reserved');
  // Both asked for in one turn, so both were admitted by the request's own check: the ledger lets
  // only one past the quota of 100.
  const [a, b] = await Promise.all([
    l.recordExtent('d1', { offset: 0, length: 50, sha256: 'x', sha256From: 0 }, 2000, 100),
    l.recordExtent('d2', { offset: 0, length: 50, sha256: 'y', sha256From: 0 }, 2000, 100),
  ]);
  t.same([a.kind, b.kind, b.kind === 'over_quota' && b.reserved], ['recorded', 'over_quota', 75]);
  t.equal(l.getUpload('d2')?.bytesReceived, 0, 'the refused bytes are not counted');
  t.equal(l.reserved('alice'), 75);
  t.equal((await l.recordExtent('d2', { offset: 0, length: 25, sha256: 'y', sha256From: 0 }, 2000, 100)).kind, 'recorded', 'exactly up to the quota');
  t.same(l.setLength('d1', 51, 3000, 100), { kind: 'over_quota', reserved: 100 }, 'a length one byte more than it holds');
  t.same(l.setLength('d1', 50, 3000, 100), { kind: 'set' });
  t.same(l.setLength('d1', 50, 3000, 100), { kind: 'unchanged' }, 'a length is set once');
  t.equal(l.reserved('alice'), 100);
});

t.test('an extent records where its SHA-256 starts when that is not its own offset', async (t) => {
  const { l, db } = await ledger(t);
  l.createUpload({
    id: 'e1', owner: 'bob', protocol: 'tus', fileName: 'e1', contentType: 'application/octet-stream', metadata: {},
    size: 30, chunkSize: 30, totalChunks: 1, expectedSha256: null, createdAt: 1000, expiresAt: 5000,
  });
  await l.recordExtent('e1', { offset: 0, length: 10, sha256: 'a', sha256From: 0 }, 2000);
  await l.recordExtent('e1', { offset: 10, length: 10, sha256: 'b', sha256From: 0 }, 2000);
  await l.recordExtent('e1', { offset: 20, length: 10, sha256: 'c', sha256From: 20 }, 2000);
  t.same(db.prepare('SELECT offset, sha256, sha256_from FROM chunks WHERE upload_id = ? ORDER BY idx').all('e1'), [
    { offset: 0, sha256: 'a', sha256_from: null },
    { offset: 10, sha256: 'b', sha256_from: 0 },
    { offset: 20, sha256: 'c', sha256_from: null },
  ], 'NULL: the extent\'s own bytes; 0: the file from its first byte');
  await t.rejects(l.recordExtent('e1', { offset: 30, length: 0, sha256: 'd', sha256From: 31 }, 2000), /CHECK/, 'a start after the offset is refused');
});
