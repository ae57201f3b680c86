import t from 'tap';
import type { Chunk, NewUpload } from '../../src/ledger/ledger.js';
import path from 'node:path';
import pg from 'pg';
import { openDatabase } from '../../src/ledger/database.js';
import { MIGRATIONS } from '../../src/ledger/migrations.js';
import { PgLedger } from '../../src/ledger/pg-ledger.js';
import { PG_MIGRATIONS } from '../../src/ledger/pg-migrations.js';
import { ledgerKinds, sampleUpload } from '../helpers/ledgers.js';
import { tmpDir } from '../helpers/server.js';

/**
 * The ledger contract: every test runs against the SQLite ledger and the PostgreSQL ledger (a real
 * cluster started for this file; skipped, with a message, where the machine has no PostgreSQL).
 */

const LIMITS = { maxActive: 100, quota: undefined };
const open = () => true;

const upload = sampleUpload;
const chunk = (index: number, sha256 = `h${index}`): Chunk => ({ index, offset: index * 10, length: index === 2 ? 5 : 10, sha256, receivedAt: 2000 });

type Tap = Parameters<typeof tmpDir>[0];

const { kinds, make, postgres } = await ledgerKinds(t);

t.test('both ledgers have the same tables and columns, at the same schema version', { skip: postgres ? false : 'no PostgreSQL here' }, async (t) => {
  const dir = await tmpDir(t);
  const db = openDatabase(path.join(dir, 'schema.db'));
  t.teardown(() => db.close());
  const sqlite = new Map<string, string[]>();
  for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]) {
    sqlite.set(name, (db.prepare(`PRAGMA table_info(${name})`).all() as { name: string }[]).map((c) => c.name).sort());
  }
  const url = await (postgres as NonNullable<typeof postgres>).database();
  const l = await PgLedger.open(url);
  await l.close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  const cols = await client.query<{ table_name: string; column_name: string }>(
    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'sluice_schema'",
  );
  const postgresTables = new Map<string, string[]>();
  for (const row of cols.rows) postgresTables.set(row.table_name, [...(postgresTables.get(row.table_name) ?? []), row.column_name].sort());
  t.same(Object.fromEntries([...postgresTables].sort()), Object.fromEntries([...sqlite].sort()));
  const version = (await client.query<{ v: number }>('SELECT max(version) AS v FROM sluice_schema')).rows[0]?.v;
  t.equal(version, MIGRATIONS.length, 'the same version number');
  t.equal(PG_MIGRATIONS.at(-1)?.version, MIGRATIONS.length);
});

for (const kind of kinds) {
  /** A fresh ledger with upload u1 (25 bytes, chunks of 10) created. */
  const ledger = async (t: Tap, first: NewUpload = upload()) => {
    const l = await make(t, kind);
    await l.create(first, LIMITS);
    return { l, kind };
  };

  t.test(`${kind} ledger`, async (t) => {
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
      const { l, kind } = await ledger(t, upload({ size: 100000, totalChunks: 10000 }));
      const writes = [];
      for (let i = 0; i < 10000; i += 3) writes.push(l.recordChunk('u1', { ...chunk(i), offset: i * 10, length: 10 }, open));
      t.ok((await Promise.all(writes)).every((w) => w.kind === 'recorded'));
      if (kind === 'sqlite') t.same(l.commitStats(), { commits: 1, writes: 3334 }, 'requested in one turn, committed as one transaction');
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
      const { l } = await ledger(t);
      await l.recordChunk('u1', chunk(0), open);
      t.equal(await l.reserved('alice'), 25);
      t.notOk(await l.discard('u1', { from: 'finishing', to: 'failed', now: 3000 }), 'not in `from`: nothing changes');
      t.ok(await l.getChunk('u1', 0));
      t.ok(await l.discard('u1', { from: 'uploading', to: 'aborted', now: 3000 }));
      t.same(await l.chunks('u1', 0, 10), [], 'its ranges are gone');
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
      const results = await Promise.all([
        l.recordExtent('d1', { offset: 0, length: 50 }, 2000, 100, open),
        l.recordExtent('d2', { offset: 0, length: 50 }, 2000, 100, open),
      ]);
      // Which one wins is a race (on PostgreSQL truly concurrent); exactly one does.
      const won = results[0].kind === 'recorded' ? 'd1' : 'd2';
      const lost = won === 'd1' ? 'd2' : 'd1';
      const refused = results[won === 'd1' ? 1 : 0];
      t.same([results.map((r) => r.kind).sort(), refused?.kind === 'over_quota' && refused.reserved], [['over_quota', 'recorded'], 75]);
      t.equal((await l.get(lost))?.bytesReceived, 0, 'the refused bytes are not counted');
      t.equal(await l.reserved('alice'), 75);
      t.equal((await l.recordExtent(lost, { offset: 0, length: 25 }, 2000, 100, open)).kind, 'recorded', 'exactly up to the quota');
      t.same(await l.setLength(won, 51, 3000, 100), { kind: 'over_quota', reserved: 100 }, 'a length one byte more than it holds');
      t.same(await l.setLength(won, 50, 3000, 100), { kind: 'set' });
      t.same(await l.setLength(won, 50, 3000, 100), { kind: 'unchanged' }, 'a length is set once');
      t.equal(await l.reserved('alice'), 100);
      t.equal((await l.recordExtent(won, { offset: 40, length: 10 }, 2000, 100, open)).kind, 'offset_moved', 'an extent starts at the end');
    });

    t.test('nodes: heartbeats, and the finishes a node gone silent left behind', async (t) => {
      const { l } = await ledger(t, upload({ node: 'node-a', multipart: 'mp', transfer: 'direct' }));
      await l.create(upload({ id: 'u2', node: 'node-b', multipart: 'mp2', transfer: 'direct' }), LIMITS);
      await l.create(upload({ id: 'u3', node: 'node-a' }), LIMITS);
      for (const id of ['u1', 'u2', 'u3']) await l.transition(id, 'uploading', 'finishing', 1500);
      await l.heartbeat('node-a', 'http://a:8080', 1000);
      await l.heartbeat('node-b', 'http://b:8080', 9000);
      t.same(await l.nodeInfo('node-a'), { url: 'http://a:8080', seenAt: 1000 });
      t.same(await l.abandonedFinishing(5000), ['u1'], "node a's, staged in the store (u3's bytes are on a's disk)");
      t.same(await l.idsWithStatus('finishing', 'node-b'), ['u2'], 'a node settles its own at start-up');
      await l.heartbeat('node-a', 'http://a:8080', 9500);
      t.same(await l.abandonedFinishing(5000), [], 'a is back');
      t.same(await l.dueForExpiry(99_999, 10, { id: 'node-b', deadBefore: 5000 }), [], 'finishing uploads do not expire');
    });

    t.test('listFiles: completed files of the owner, newest first, by type, time and metadata, page by page', async (t) => {
      const { l } = await ledger(t);
      const file = async (id: string, at: number, over: Partial<NewUpload>) => {
        await l.create(upload({ id, createdAt: at, ...over }), LIMITS);
        await l.transition(id, 'uploading', 'finishing', at);
        await l.complete(id, 'f'.repeat(64), { backend: 'local', path: `files/${id}` }, at);
      };
      await file('a', 2000, { contentType: 'image/png', metadata: { parent_content_type: 'post', parent_object_id: '7' } });
      await file('b', 3000, { contentType: 'image/jpeg', metadata: { parent_content_type: 'post', parent_object_id: '8' } });
      await file('c', 4000, { contentType: 'application/pdf', metadata: { parent_content_type: 'post', parent_object_id: '7' } });
      await file('d', 5000, { owner: 'bob', metadata: { parent_object_id: '7' } });
      const ids = async (filter: Parameters<typeof l.listFiles>[1], limit = 10, after?: { createdAt: number; id: string }) =>
        (await l.listFiles('alice', filter, limit, after)).map((u) => u.id);
      t.same(await ids({}), ['c', 'b', 'a'], 'u1 is not completed; bob is not alice');
      t.same(await ids({ metadata: [['parent_object_id', '7']] }), ['c', 'a']);
      t.same(
        await ids({
          metadata: [
            ['parent_object_id', '7'],
            ['parent_content_type', 'post'],
          ],
        }),
        ['c', 'a'],
        'every condition',
      );
      t.same(await ids({ contentType: 'image/*' }), ['b', 'a']);
      t.same(await ids({ contentType: 'image/png' }), ['a']);
      t.same(await ids({ createdAfter: 2000, createdBefore: 5000 }), ['c', 'b']);
      t.same(await ids({}, 2, { createdAt: 3000, id: 'b' }), ['a'], 'the page after b');
      await l.updateFile('a', { metadata: { parent_object_id: '9' } }, 6000);
      t.same(await ids({ metadata: [['parent_object_id', '7']] }), ['c'], 'the index follows a metadata change');
      t.same(await ids({ metadata: [['parent_object_id', '9']] }), ['a']);
    });

    t.test('two nodes creating at once cannot both pass the active-upload limit', async (t) => {
      const { l } = await ledger(t);
      const results = await Promise.all(['x1', 'x2', 'x3', 'x4'].map((id) => l.create(upload({ id }), { maxActive: 3, quota: undefined })));
      t.same(results.map((r) => r.kind).sort(), ['created', 'created', 'too_many', 'too_many'], 'u1 and two more: exactly the limit');
    });

    t.test('direct parts: declared, reported once, replaced, listed, missing, restarted', async (t) => {
      const { l } = await ledger(t, upload({ transfer: 'direct', multipart: 'mp-1', size: 25, totalChunks: 3 }));
      await l.parts.declare('u1', [{ index: 1, length: 10, sha256: 'd1' }]);
      const first = await l.parts.report('u1', { index: 0, length: 10, etag: 'e0', sha256: null }, 2000);
      t.same([first.kind, first.upload?.chunksReceived, first.upload?.bytesReceived], ['recorded', 1, 10]);
      t.equal((await l.parts.report('u1', { index: 0, length: 10, etag: 'e0b', sha256: null }, 2001)).kind, 'replaced');
      await l.parts.report('u1', { index: 1, length: 10, etag: 'e1', sha256: null }, 2002);
      const listed = await l.parts.list('u1', 0, 10);
      t.same(
        listed.map((p) => [p.index, p.etag, p.sha256, p.declaredSha256]),
        [
          [0, 'e0b', null, null],
          [1, 'e1', 'd1', 'd1'],
        ],
        'a reported part keeps the SHA-256 declared for it',
      );
      t.same(await l.parts.missing('u1', 3, 10), [2]);
      t.same((await l.get('u1'))?.chunksReceived, 2, 'a replaced part is counted once');
      t.notOk(await l.parts.restart('u1', 'mp-2', [], 3000, 'x'), 'only a finishing upload restarts');
      await l.transition('u1', 'uploading', 'finishing', 3000);
      t.ok(await l.parts.restart('u1', 'mp-2', [{ index: 1, etag: 'k1' }], 3001, 'part 1 was damaged'));
      const u = await l.get('u1');
      t.same([u?.status, u?.multipart, u?.chunksReceived, u?.bytesReceived], ['uploading', 'mp-2', 1, 10]);
      t.same(await l.parts.missing('u1', 3, 10), [0, 2]);
      t.equal((await l.recordChunk('u1', chunk(2), open)).kind, 'recorded', 'the ledger does not mix up chunks and parts');
    });

    t.test('a stream staged in the store: parts and the tail move with the end, guarded by the offset', async (t) => {
      const { l } = await ledger(t, upload({ layout: 'stream', protocol: 'tus', multipart: 'mp', size: 30, chunkSize: 10, totalChunks: 0 }));
      const parts = [{ index: 0, length: 10, etag: 'e0', sha256: 's0' }];
      const r = await l.recordStaged('u1', { extent: { offset: 0, length: 14 }, parts, tail: 'tail-1' }, 2000, undefined, open);
      t.same([r.kind, r.kind === 'recorded' && r.upload.bytesReceived, r.kind === 'recorded' && r.upload.tail], ['recorded', 14, 'tail-1']);
      t.equal((await l.recordStaged('u1', { extent: { offset: 0, length: 1 }, parts: [], tail: null }, 2001, undefined, open)).kind, 'offset_moved');
      t.same(
        (await l.parts.list('u1', 0, 10)).map((p) => p.etag),
        ['e0'],
      );
    });
  });
}
