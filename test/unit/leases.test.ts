import t from 'tap';
import { Leases } from '../../src/service/intake/leases.js';

const opts = (evict = () => {}, takeoverAfterMs = 1000, ended?: () => boolean) => ({ evict, takeoverAfterMs, ...(ended && { ended }) });

t.test('a live writer blocks a second one; a stale one is evicted and replaced once it let go', async (t) => {
  let now = 0;
  const leases = new Leases(() => now);
  let evicted = 0;
  const first = await leases.acquire(
    'k',
    opts(() => {
      evicted++;
      t.ok(first.held, 'an evicted writer may still record what it made durable');
      first.release();
    }),
  );
  t.ok(first.held);
  await t.rejects(leases.acquire('k', opts()), { code: 'chunk_in_progress' });
  now = 900;
  first.touch();
  now = 1800;
  await t.rejects(leases.acquire('k', opts()), { code: 'chunk_in_progress' }, 'touched 900 ms ago: still alive');
  now = 2000;
  const second = await leases.acquire('k', opts());
  t.equal(evicted, 1, 'the stale writer was evicted');
  t.notOk(first.held, 'the old lease stays lost');
  t.ok(second.held);
  t.equal(leases.size, 1);
  first.release(); // a late release of the old writer must not free the new one
  await t.rejects(leases.acquire('k', opts()), { code: 'chunk_in_progress' });
  second.release();
  t.notOk(second.held, 'a released lease is not held');
  t.equal(leases.size, 0);
  const third = await leases.acquire('k', opts());
  third.release();
});

t.test('a takeover waits for the evicted writer to let go; a stuck one is fenced after the release wait', async (t) => {
  const leases = new Leases(Date.now, 50);
  // The release wait does not keep a process alive on its own (a request's socket does).
  const alive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(alive));
  const stuck = await leases.acquire(
    'k',
    opts(() => {}, 0),
  );
  const started = Date.now();
  const next = await leases.acquire(
    'k',
    opts(() => {}, 0),
  );
  t.ok(Date.now() - started >= 45, 'waited for the stuck writer');
  t.notOk(stuck.held, 'the stuck writer is fenced: it can neither write nor record');
  t.ok(next.held);
  let released = false;
  const waiting = leases
    .acquire(
      'k',
      opts(() => {}, 0),
    )
    .then((l) => ((released = true), l));
  await new Promise((r) => setImmediate(r));
  t.notOk(released, 'not before the holder lets go');
  next.release();
  (await waiting).release();
});

t.test('different keys are independent', async (t) => {
  const leases = new Leases();
  const a = await leases.acquire('a', opts());
  const b = await leases.acquire('b', opts());
  t.equal(leases.size, 2);
  a.release();
  b.release();
});

t.test('settling: only a writer whose body has ended is waited for, until it releases', async (t) => {
  const leases = new Leases();
  t.equal(leases.settling('k'), undefined, 'no writer');
  let ended = false;
  const writer = await leases.acquire(
    'k',
    opts(
      () => {},
      0,
      () => ended,
    ),
  );
  t.equal(leases.settling('k'), undefined, 'a live writer is not waited for');
  ended = true;
  const settling = leases.settling('k');
  t.ok(settling, 'a finishing writer is');
  let settled = false;
  void settling?.then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(settled, 'not before its release');
  writer.release();
  await settling;
  t.equal(leases.settling('k'), undefined, 'released');
  const plain = await leases.acquire('p', opts());
  t.equal(leases.settling('p'), undefined, 'a writer acquired without the question is never waited for');
  plain.release();
});
