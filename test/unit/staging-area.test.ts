import fs from 'node:fs/promises';
import t from 'tap';
import { StagingArea } from '../../src/storage/staging-area.js';
import { tmpDir, type TestContext } from '../helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function area(t: TestContext, handles: { idleMs?: number; maxIdle?: number } = {}) {
  const staging = new StagingArea(await tmpDir(t), handles);
  await staging.init();
  t.teardown(() => staging.close());
  return staging;
}

/** Staging files 'a' and 'b', each open for writing. */
async function openTwo(staging: StagingArea) {
  await staging.create('a', 4);
  await staging.create('b', 4);
  return Promise.all([staging.openForWrite('a'), staging.openForWrite('b')]);
}

t.test('requests writing one upload share one open file; their writes land in it', async (t) => {
  const staging = await area(t);
  await staging.create('a', 8);
  const [one, two] = await Promise.all([staging.openForWrite('a'), staging.openForWrite('a')]);
  t.equal(one.handle.fh, two.handle.fh, 'one handle');
  await one.handle.fh.write(Buffer.from('abcd'), 0, 4, 0);
  await two.handle.fh.write(Buffer.from('efgh'), 0, 4, 4);
  one.release();
  one.release(); // a second release of the same lease changes nothing
  t.not(two.handle.fh.fd, -1, 'still open while the other request holds it');
  two.release();
  t.equal(await fs.readFile(staging.pathOf('a'), 'utf8'), 'abcdefgh');
});

t.test('a released handle stays open for a moment and is reused, then closes', async (t) => {
  const staging = await area(t, { idleMs: 100 });
  await staging.create('a', 4);
  const first = await staging.openForWrite('a');
  first.release();
  t.not(first.handle.fh.fd, -1, 'open while idle');
  const again = await staging.openForWrite('a');
  t.equal(again.handle.fh, first.handle.fh, 'reused within the idle time');
  again.release();
  await sleep(250);
  t.equal(first.handle.fh.fd, -1, 'closed after the idle time');
  const later = await staging.openForWrite('a');
  t.not(later.handle.fh, first.handle.fh, 'opened anew');
  t.not(later.handle.fh.fd, -1);
  later.release();
});

t.test('at most maxIdle released handles stay open; beyond that they close at once', async (t) => {
  const staging = await area(t, { idleMs: 10_000, maxIdle: 1 });
  const [a, b] = await openTwo(staging);
  a.release();
  b.release();
  t.not(a.handle.fh.fd, -1, 'first one kept');
  await sleep(20);
  t.equal(b.handle.fh.fd, -1, 'second one closed');
});

t.test('remove: an idle handle closes at once; a held one keeps working until released', async (t) => {
  const staging = await area(t, { idleMs: 10_000 });
  await staging.create('idle', 4);
  const idle = await staging.openForWrite('idle');
  idle.release();
  await staging.remove('idle');
  await sleep(20);
  t.equal(idle.handle.fh.fd, -1, 'idle handle closed by remove');
  await t.rejects(staging.openForWrite('idle'), { code: 'ENOENT' }, 'the file is gone');
  await t.rejects(staging.openForWrite('idle'), { code: 'ENOENT' }, 'a failed open is not kept');

  await staging.create('held', 4);
  const held = await staging.openForWrite('held');
  await staging.remove('held');
  await t.rejects(fs.access(staging.pathOf('held')), 'unlinked');
  await held.handle.fh.write(Buffer.from('late'), 0, 4, 0); // the request's write goes nowhere, as with its own handle
  t.not(held.handle.fh.fd, -1, 'still open for the request holding it');
  held.release();
  await sleep(20);
  t.equal(held.handle.fh.fd, -1, 'closed by the last release');

  await staging.create('held', 4); // a new file by that name gets a new handle
  const fresh = await staging.openForWrite('held');
  t.not(fresh.handle.fh, held.handle.fh);
  fresh.release();
});

t.test('close: idle handles close now, held ones when released, and nothing is kept after', async (t) => {
  const staging = await area(t, { idleMs: 10_000 });
  const [a, b] = await openTwo(staging);
  a.release();
  staging.close();
  await sleep(20);
  t.equal(a.handle.fh.fd, -1, 'idle handle closed');
  t.not(b.handle.fh.fd, -1, 'held handle open');
  b.release();
  await sleep(20);
  t.equal(b.handle.fh.fd, -1, 'closed on release after close');
  const c = await staging.openForWrite('a');
  c.release();
  await sleep(20);
  t.equal(c.handle.fh.fd, -1, 'not kept idle after close');
});
