import t from 'tap';
import type { Ledger, NewUpload } from '../../src/ledger/ledger.js';
import { backoffMs, webhookBody } from '../../src/events/webhook-dispatcher.js';
import { ledgerKinds } from '../helpers/ledgers.js';
import type { TestContext } from '../helpers/server.js';

const LIMITS = { maxActive: 100, quota: undefined };
const open = () => true;
const HOOK = 'http://127.0.0.1:9/hook';

const row = (id: string, over: Partial<NewUpload> = {}): NewUpload => ({
  id,
  owner: 'alice',
  layout: 'grid',
  protocol: 'native',
  fileName: `${id}.bin`,
  contentType: 'application/octet-stream',
  metadata: { k: 'v' },
  size: 20,
  chunkSize: 10,
  totalChunks: 2,
  expectedSha256: null,
  createdAt: 1000,
  expiresAt: 90_000,
  ...over,
});

const { kinds, make } = await ledgerKinds(t);

const types = async (l: Ledger, owner = 'alice') => (await l.events.list(owner, 0, 100)).map((e) => `${e.uploadId}:${e.type}`);

for (const kind of kinds) {
  const ledger = async (t: TestContext, progressIntervalMs = 0) => ({ l: await make(t, kind, progressIntervalMs) });

  t.test(`${kind}`, async (t) => {
    t.test('each state change writes its event in its own transaction; a refused change writes none', async (t) => {
      const { l } = await ledger(t);
      t.equal((await l.create(row('a'), LIMITS)).kind, 'created');
      t.equal((await l.create(row('b'), { maxActive: 1, quota: undefined })).kind, 'too_many', 'refused');
      await l.recordChunk('a', { index: 0, offset: 0, length: 10, sha256: 'h0', receivedAt: 1100 }, open);
      t.notOk(await l.complete('a', 'f'.repeat(64), { backend: 'local', path: '/x' }, 1200), 'not finishing: refused');
      t.ok(await l.transition('a', 'uploading', 'finishing', 1300));
      t.ok(await l.complete('a', 'f'.repeat(64), { backend: 'local', path: '/x' }, 1400));
      t.ok(await l.updateFile('a', { fileName: 'renamed.bin' }, 1500));
      t.notOk(await l.terminateCompleted('missing', 1600));
      t.ok(await l.terminateCompleted('a', 1600));
      t.same(await types(l), ['a:upload.created', 'a:upload.completed', 'a:file.updated', 'a:file.deleted']);

      await l.create(row('c'), LIMITS);
      await l.create(row('d'), LIMITS);
      await l.create(row('e'), LIMITS);
      t.ok(await l.discard('c', { from: 'uploading', to: 'aborted', now: 2000 }));
      t.notOk(await l.discard('c', { from: 'uploading', to: 'aborted', now: 2001 }), 'twice: nothing more');
      t.ok(await l.discard('d', { from: 'uploading', to: 'expired', now: 2002 }));
      await l.transition('e', 'uploading', 'finishing', 2003);
      t.ok(await l.discard('e', { from: 'finishing', to: 'failed', now: 2004, failure: 'bad digest' }));
      const all = await l.events.list('alice', 0, 100);
      t.same(
        all.slice(4).map((e) => `${e.uploadId}:${e.type}`),
        ['c:upload.created', 'd:upload.created', 'e:upload.created', 'c:upload.aborted', 'd:upload.expired', 'e:upload.failed'],
      );
      const failed = all.at(-1);
      t.same([failed?.data.status, failed?.data.reason], ['failed', 'bad digest'], 'the reason travels with the event');
      const completed = all[1];
      t.same(
        [completed?.data.sha256, completed?.data.location, completed?.data.metadata, completed?.data.size],
        ['f'.repeat(64), { backend: 'local', path: '/x' }, { k: 'v' }, 20],
      );
      t.same(await types(l, 'bob'), [], "another owner's events are not listed");
      t.same(
        (await l.events.list('alice', all[2]?.id ?? 0, 2)).map((e) => e.id),
        [all[3]?.id, all[4]?.id],
        'after and limit page',
      );
    });

    t.test('processing: stored files wait for the processor; its answer completes or fails them', async (t) => {
      const { l } = await ledger(t);
      for (const id of ['p', 'q']) {
        await l.create(row(id), LIMITS);
        await l.transition(id, 'uploading', 'finishing', 1100);
        t.ok(await l.complete(id, 'a'.repeat(64), { backend: 'local', path: `/${id}` }, 1200, true));
      }
      t.equal((await l.get('p'))?.status, 'processing');
      t.ok(await l.processed('p', { status: 'completed', outputs: { thumbnail: 'https://x/t.jpg' } }, 1300));
      t.notOk(await l.processed('p', { status: 'failed' }, 1301), 'answered once');
      t.ok(await l.processed('q', { status: 'failed', message: 'not a video' }, 1400));
      const p = await l.get('p');
      const q = await l.get('q');
      t.same([p?.status, p?.processing?.outputs], ['completed', { thumbnail: 'https://x/t.jpg' }]);
      t.same([q?.status, q?.failure], ['failed', 'not a video']);
      const events = await l.events.list('alice', 0, 100);
      t.same(
        events.map((e) => `${e.uploadId}:${e.type}`),
        ['p:upload.created', 'p:upload.processing', 'q:upload.created', 'q:upload.processing', 'p:upload.completed', 'q:upload.failed'],
      );
      t.same(events[4]?.data.outputs, { thumbnail: 'https://x/t.jpg' });
      t.equal(events[5]?.data.message, 'not a video');
    });

    t.test('upload.progress at most once per interval, written with the chunk it reports', async (t) => {
      const { l } = await ledger(t, 1000);
      await l.create(row('a', { size: 40, totalChunks: 4 }), LIMITS);
      for (const [index, at] of [
        [0, 1500],
        [1, 2100],
        [2, 2500],
        [3, 3200],
      ] as const) {
        await l.recordChunk('a', { index, offset: index * 10, length: 10, sha256: `h${index}`, receivedAt: at }, open);
      }
      const progress = (await l.events.list('alice', 0, 100)).filter((e) => e.type === 'upload.progress');
      t.same(
        progress.map((e) => [e.createdAt, e.data.bytes_received]),
        [
          [2100, 20],
          [3200, 40],
        ],
      );
    });

    t.test('deliveries: a new endpoint starts after the newest event; each upload in order; retries wait; 410 stops', async (t) => {
      const { l } = await ledger(t);
      await l.create(row('old'), LIMITS);
      t.same(await l.events.syncEndpoints([{ url: HOOK }]), []);
      await l.create(row('a'), LIMITS);
      await l.create(row('b'), LIMITS);
      await l.discard('a', { from: 'uploading', to: 'aborted', now: 1500 });
      const ids = (d: { event: { uploadId: string; type: string } }[]) => d.map((x) => `${x.event.uploadId}:${x.event.type}`);
      let due = await l.events.due(HOOK, 2000, 10, 0);
      t.same(ids(due), ['a:upload.created', 'b:upload.created'], "only each upload's oldest pending event, and nothing from before");
      const aCreated = due[0]?.event.id as number;
      await l.events.failed(HOOK, aCreated, 'HTTP 500', 5000, 2000);
      t.same(ids(await l.events.due(HOOK, 2001, 10, 0)), ['b:upload.created'], 'a waits for its retry; its later event waits behind it');
      t.equal(await l.events.nextDue(HOOK), 2001, 'b is due (claimed for no time)');
      await l.events.delivered(HOOK, due[1]?.event.id as number, 2001);
      t.equal(await l.events.nextDue(HOOK), 5000);
      due = await l.events.due(HOOK, 5000, 10, 0);
      t.same(ids(due), ['a:upload.created']);
      t.equal(due[0]?.attempts, 1);
      await l.events.failed(HOOK, aCreated, 'timed out', null, 5001);
      t.same(ids(await l.events.due(HOOK, 5002, 10, 0)), ['a:upload.aborted'], 'given up: the next one goes');
      t.same(await l.events.stats(), { pending: 1, oldestPendingAt: 1500 });

      await l.events.stop(HOOK, 'gone', 6000);
      await l.create(row('c'), LIMITS);
      t.same(await l.events.due(HOOK, 7000, 10, 0), [], 'a stopped endpoint takes nothing');
      t.same(await l.events.stats(), { pending: 0, oldestPendingAt: undefined });
      t.same(await l.events.syncEndpoints([{ url: HOOK }]), [HOOK], 'it stays stopped across restarts');
      t.same(await l.events.syncEndpoints([]), [], 'until it is removed from the configuration');
      await l.events.syncEndpoints([{ url: HOOK }]);
      await l.create(row('d'), LIMITS);
      t.same(ids(await l.events.due(HOOK, 8000, 10, 0)), ['d:upload.created'], 'added again: from then on');
    });

    t.test('an endpoint with a type filter only takes those events', async (t) => {
      const { l } = await ledger(t);
      await l.events.syncEndpoints([{ url: HOOK, types: ['upload.processing'] }]);
      await l.create(row('a'), LIMITS);
      await l.transition('a', 'uploading', 'finishing', 1100);
      await l.complete('a', 'b'.repeat(64), { backend: 'local', path: '/a' }, 1200, true);
      const due = await l.events.due(HOOK, 2000, 10, 0);
      t.same(
        due.map((d) => d.event.type),
        ['upload.processing'],
      );
    });

    t.test('prune drops old events nobody waits for, and keeps those a delivery still needs', async (t) => {
      const { l } = await ledger(t);
      await l.events.syncEndpoints([{ url: HOOK }]);
      await l.create(row('a', { createdAt: 1000 }), LIMITS);
      await l.create(row('b', { createdAt: 2000 }), LIMITS);
      const due = await l.events.due(HOOK, 3000, 10, 0);
      await l.events.delivered(HOOK, due[0]?.event.id as number, 3000);
      t.equal(await l.events.prune(2500), 1, 'a (delivered) goes; b waits for its delivery');
      t.same(await types(l), ['b:upload.created']);
    });

    t.test('a claimed delivery is not due again until its claim runs out (a node that died mid-attempt)', async (t) => {
      const { l } = await ledger(t);
      await l.events.syncEndpoints([{ url: HOOK }]);
      await l.create(row('a'), LIMITS);
      const first = await l.events.due(HOOK, 2000, 10, 15_000);
      t.equal(first.length, 1);
      t.same(await l.events.due(HOOK, 2001, 10, 15_000), [], 'claimed: nobody else takes it');
      t.equal(await l.events.nextDue(HOOK), 17_000);
      const again = await l.events.due(HOOK, 17_000, 10, 15_000);
      t.same([again.length, again[0]?.event.id, again[0]?.attempts], [1, first[0]?.event.id, 0], 'taken again, no attempt recorded');
      await l.events.delivered(HOOK, first[0]?.event.id as number, 17_001);
      t.same(await l.events.stats(), { pending: 0, oldestPendingAt: undefined });
    });
  });
}

t.test('backoff doubles from the minimum, up to an hour, with jitter in its upper half', async (t) => {
  t.same(
    [1, 2, 3, 10].map((n) => backoffMs(n, 1000, () => 1)),
    [1000, 2000, 4000, 512_000],
  );
  t.equal(
    backoffMs(30, 1000, () => 1),
    3600_000,
    'capped',
  );
  t.equal(
    backoffMs(3, 1000, () => 0),
    2000,
    'jitter takes at most half',
  );
  const body = webhookBody({ id: 7, type: 'upload.created', owner: 'o', uploadId: 'u', data: { id: 'u' }, createdAt: 0 }, { id: 'u' });
  t.same(body, { type: 'upload.created', timestamp: '1970-01-01T00:00:00.000Z', data: { id: 'u' } });
});
