import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import type { FromHashThread, HashRequest, ToHashThread } from '../../src/service/hashing/hash-messages.js';
import { HashWorker } from '../../src/service/hashing/hash-worker.js';
import { tmpDir, type TestContext } from '../helpers/server.js';

/**
 * The hashing thread's message contract (src/service/hashing/hash-messages.ts), scripted message by
 * message against the real thread entry.
 */
const ENTRY = new URL('../../src/service/hashing/hash-thread.ts', import.meta.url);
/** A request without its number (the helper adds it); distributed over the union's members. */
type Ask = HashRequest extends infer R ? (R extends HashRequest ? Omit<R, 'req'> : never) : never;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function thread(t: TestContext) {
  const worker = new Worker(ENTRY);
  const waiting = new Map<number, (m: FromHashThread) => void>();
  worker.on('message', (m: FromHashThread) => waiting.get(m.req)?.(m));
  let next = 1;
  let alive = true;
  t.teardown(() => (alive ? worker.terminate() : undefined));
  return {
    post: (m: ToHashThread) => worker.postMessage(m),
    ask: (m: Ask): Promise<FromHashThread> => {
      const req = next++;
      return new Promise((resolve) => {
        waiting.set(req, resolve);
        worker.postMessage({ ...m, req });
      });
    },
    kill: async () => {
      alive = false;
      await worker.terminate();
    },
  };
}

async function file(t: TestContext, size: number) {
  const p = path.join(await tmpDir(t), 'staging');
  const data = randomBytes(size);
  fs.writeFileSync(p, data);
  return { p, data, zero: () => fs.writeFileSync(p, Buffer.alloc(size)) };
}

t.test("a job's copy of the whole-file digest is used by extend only after a confirm posted before it", async (t) => {
  const { p, data, zero } = await file(t, 300_000);
  const th = thread(t);
  th.post({ t: 'open', job: 1, path: p, at: 0, algorithms: [], own: false, key: 'k' });
  th.post({ t: 'read', job: 1, to: data.length });
  t.same(await th.ask({ t: 'end', job: 1, to: data.length }), { req: 1, checks: {} }, 'an append job answers no digest of its own');
  zero(); // from here on, a read of the file would hash zeros
  th.post({ t: 'confirm', job: 1, end: data.length });
  th.post({ t: 'settle', job: 1 });
  t.same(await th.ask({ t: 'extend', key: 'k', path: p, from: 0, to: data.length, recorded: data.length }), { req: 2, upTo: data.length });
  t.same(await th.ask({ t: 'digest', key: 'k' }), { req: 3, upTo: data.length, sha256: sha(data) }, 'the confirmed copy, not the file');
});

t.test('without a confirm (settle only, or a confirm posted after the extend) extend reads the file', async (t) => {
  const { p, data, zero } = await file(t, 300_000);
  const th = thread(t);
  th.post({ t: 'open', job: 1, path: p, at: 0, algorithms: [], own: false, key: 'a' });
  await th.ask({ t: 'end', job: 1, to: data.length });
  zero();
  th.post({ t: 'settle', job: 1 });
  th.post({ t: 'confirm', job: 1, end: data.length }); // after settle: nothing left to confirm
  await th.ask({ t: 'extend', key: 'a', path: p, from: 0, to: data.length, recorded: data.length });
  t.equal((await th.ask({ t: 'digest', key: 'a' })).sha256, sha(Buffer.alloc(data.length)), 'settled: the bytes were read back');

  fs.writeFileSync(p, data);
  th.post({ t: 'open', job: 2, path: p, at: 0, algorithms: [], own: false, key: 'b' });
  await th.ask({ t: 'end', job: 2, to: data.length });
  zero();
  await th.ask({ t: 'extend', key: 'b', path: p, from: 0, to: data.length, recorded: data.length });
  th.post({ t: 'confirm', job: 2, end: data.length });
  t.equal((await th.ask({ t: 'digest', key: 'b' })).sha256, sha(Buffer.alloc(data.length)), 'a confirm after the extend came too late');
});

t.test('a restarted thread knows no job and no digest: ends fail, extends answer lost', async (t) => {
  const { p, data } = await file(t, 300_000);
  const first = thread(t);
  first.post({ t: 'open', job: 7, path: p, at: 0, algorithms: ['sha1'], own: true, key: 'k' });
  first.post({ t: 'read', job: 7, to: 100_000 });
  t.same(await first.ask({ t: 'extend', key: 'k', path: p, from: 0, to: 100_000, recorded: 100_000 }), { req: 1, upTo: 100_000 });
  await first.kill();
  const second = thread(t);
  t.match(await second.ask({ t: 'end', job: 7, to: data.length }), { error: /unknown hashing job/ }, 'the body is not recorded');
  t.same(
    await second.ask({ t: 'extend', key: 'k', path: p, from: 100_000, to: data.length, recorded: data.length }),
    { req: 2, lost: true },
    'start again at 0',
  );
  t.same(await second.ask({ t: 'digest', key: 'k' }), { req: 3, upTo: 0 });
});

t.test('the thread dying mid-job: the job fails, the next job gets a fresh thread', async (t) => {
  const { p, data } = await file(t, 3 * 1024 * 1024);
  const w = new HashWorker();
  t.teardown(() => w.close());
  const job = w.job(p, 0, { own: true, key: 'k' });
  job.update(data.subarray(0, 2 * 1024 * 1024), 2 * 1024 * 1024);
  t.equal(await w.extend('k', p, 0, 1024), 1024, 'the thread is up and serving');
  await w.kill();
  await t.rejects(job.end(data.length), /unknown hashing job/, 'the job died with the thread: its body is not recorded');
  job.settle();
  const again = w.job(p, 0, { own: true });
  t.equal((await again.end(data.length)).sha256, sha(data));
});
