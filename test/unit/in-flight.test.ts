import t from 'tap';
import { InFlight } from '../../src/service/in-flight.js';

t.test('a live writer blocks a second one; a stale one is evicted and replaced', async (t) => {
  let now = 0;
  const reg = new InFlight(1000, () => now);
  let evicted = 0;
  const first = await reg.acquire('k', () => {
    evicted++;
    first.release();
  });
  await t.rejects(reg.acquire('k', () => {}), { code: 'chunk_in_progress' });
  now = 900;
  first.touch();
  now = 1800;
  await t.rejects(reg.acquire('k', () => {}), { code: 'chunk_in_progress' }, 'touched 900 ms ago: still alive');
  now = 2000;
  const second = await reg.acquire('k', () => {});
  t.equal(evicted, 1, 'the stale writer was evicted');
  t.equal(reg.size, 1);
  first.release(); // a late release of the old writer must not free the new one
  await t.rejects(reg.acquire('k', () => {}), { code: 'chunk_in_progress' });
  second.release();
  t.equal(reg.size, 0);
  const third = await reg.acquire('k', () => {});
  third.release();
});

t.test('different keys are independent', async (t) => {
  const reg = new InFlight(1000);
  const a = await reg.acquire('a', () => {});
  const b = await reg.acquire('b', () => {});
  t.equal(reg.size, 2);
  a.release();
  b.release();
});

t.test('settling: only a writer whose request has stopped receiving is waited for, until it releases', async (t) => {
  const reg = new InFlight(1000);
  t.equal(reg.settling('k'), undefined, 'no writer');
  let ended = false;
  const writer = await reg.acquire('k', () => {}, 0, () => ended);
  t.equal(reg.settling('k'), undefined, 'a live writer is not waited for');
  ended = true;
  const settling = reg.settling('k');
  t.ok(settling, 'a finishing writer is');
  let settled = false;
  void settling?.then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(settled, 'not before its release');
  writer.release();
  await settling;
  t.equal(reg.settling('k'), undefined, 'released');
  const plain = await reg.acquire('p', () => {});
  t.equal(reg.settling('p'), undefined, 'a writer acquired without the question is never waited for');
  plain.release();
});
