import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../../src/ledger/database.js';
import type { Chunk } from '../../src/ledger/ledger.js';
import { MIGRATIONS } from '../../src/ledger/migrations.js';
import { fileQuery } from '../../src/ledger/file-query.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { sampleUpload } from '../helpers/ledgers.js';
import { tmpDir } from '../helpers/server.js';

const LIMITS = { maxActive: 100, quota: undefined };
const open = () => true;

const upload = sampleUpload;

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

t.test('the ledger survives reopening the file', async (t) => {
  const { l, db, file } = await ledger(t);
  await l.recordChunk('u1', chunk(0), open);
  db.close();
  const again = new SqliteLedger(openDatabase(file));
  t.teardown(() => again.close());
  t.same(await again.getChunk('u1', 0), chunk(0));
  t.same((await again.get('u1'))?.metadata, { a: 'b' });
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

t.test('a metadata filter over many files is an index lookup, not a scan', async (t) => {
  const { db } = await ledger(t);
  const plan = (sql: string) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail).join(' | ');
  const { sql } = fileQuery('alice', { metadata: [['parent_object_id', '7']] }, 100, undefined, () => "'x'");
  const detail = plan(sql);
  t.match(detail, /SEARCH m USING PRIMARY KEY \(owner=\? AND key=\? AND value=\?\)/, `the metadata condition is a key lookup: ${detail}`);
  t.match(detail, /SEARCH u USING INDEX sqlite_autoindex_uploads_1 \(id=\?\)/, 'then each of its files by id');
  t.notMatch(detail, /\bSCAN\b/, 'no table scan');
  const plain = plan(fileQuery('alice', {}, 100, undefined, () => "'x'").sql);
  t.match(plain, /SEARCH u USING INDEX uploads_owner_status_created \(owner=\? AND status=\?\)/, `no filter: the owner's completed files, in order: ${plain}`);
  t.notMatch(plain, /TEMP B-TREE/, 'already in order');
});
