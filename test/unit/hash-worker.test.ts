import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { HashWorker, inlineHasher } from '../../src/service/hash-worker.js';
import { tmpDir } from '../helpers/server.js';

const hex = (alg: string, b: Buffer) => createHash(alg).update(b).digest('hex');

/** A file of `size` random bytes in a fresh temporary directory. */
async function randomFile(t: Parameters<typeof tmpDir>[0], size: number): Promise<{ file: string; data: Buffer }> {
  const file = path.join(await tmpDir(t), 'f');
  const data = randomBytes(size);
  fs.writeFileSync(file, data);
  return { file, data };
}

t.test('a job hashes what was written, read back from the file by the hashing thread', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'staging');
  const data = randomBytes(5 * 1024 * 1024 + 333);
  const at = 4096;
  fs.writeFileSync(file, Buffer.alloc(at + data.length));
  const w = new HashWorker();
  t.teardown(() => w.close());

  const job = w.job(file, at, ['sha1', 'md5']);
  const fd = fs.openSync(file, 'r+');
  t.teardown(() => fs.closeSync(fd));
  const cutAt = 2 * 1024 * 1024 + 17;
  let cut: Promise<string> | undefined;
  for (let off = 0; off < data.length; off += 65536) {
    const piece = data.subarray(off, off + 65536);
    fs.writeSync(fd, piece, 0, piece.length, at + off);
    job.update(piece, at + off + piece.length);
    if (cut === undefined && off + piece.length >= cutAt) cut = job.cut(at + off + piece.length);
  }
  const firstSegment = Math.ceil(cutAt / 65536) * 65536;
  t.equal(await cut, hex('sha256', data.subarray(0, firstSegment)), 'the segment up to the cut');
  const end = await job.end(at + data.length);
  t.equal(end.sha256, hex('sha256', data.subarray(firstSegment)), 'the segment after the cut');
  t.equal(end.checks.get('sha1')?.toString('hex'), hex('sha1', data), 'other algorithms cover the whole body');
  t.equal(end.checks.get('md5')?.toString('hex'), hex('md5', data));
  await t.rejects(job.end(at + data.length), /already ended/);
});

t.test('a job over a missing or short file fails with the reason', async (t) => {
  const dir = await tmpDir(t);
  const w = new HashWorker();
  t.teardown(() => w.close());
  await t.rejects(w.job(path.join(dir, 'nope'), 0).end(10), /hashing failed: .*ENOENT/);
  fs.writeFileSync(path.join(dir, 'short'), Buffer.alloc(100));
  await t.rejects(w.job(path.join(dir, 'short'), 0).end(1000), /ends at byte 100, before byte 1000/);
  // The thread keeps serving after a failed job.
  t.equal((await w.job(path.join(dir, 'short'), 0).end(100)).sha256, hex('sha256', Buffer.alloc(100)));
});

t.test('whole-file digests continue across requests, start over at 0 and are lost when the thread stops', async (t) => {
  const { file, data } = await randomFile(t, 3_000_000);
  const w = new HashWorker(50, 100);
  t.teardown(() => w.close());
  t.equal(await w.extend('k', file, 0, 1_000_000), true);
  t.equal(await w.extend('k', file, 1_000_000, 3_000_000), true);
  t.same(await w.digest('k'), { upTo: 3_000_000, sha256: hex('sha256', data) });
  t.equal(await w.extend('k', file, 5, 10), false, 'a digest that does not end where asked is reported lost');
  t.equal(await w.extend('k', file, 0, 10), true, 'from 0 starts over');
  t.same(await w.digest('k'), { upTo: 10, sha256: hex('sha256', data.subarray(0, 10)) });
  // Idle for longer than the idle time with digests held: the thread stops and they go with it.
  await new Promise((r) => setTimeout(r, 400));
  t.equal(w.running, false, 'the thread stopped');
  t.same(await w.digest('k'), { upTo: 0 });
  t.equal(await w.extend('k', file, 10, 20), false);
  // Closed for good (shutdown): nothing starts the thread again.
  await w.close();
  await t.rejects(w.digest('k'), /closed/);
});

t.test('a thread holding digests outlasts a short pause; once they are forgotten it stops after the short idle time', async (t) => {
  const { file, data } = await randomFile(t, 2_000_000);
  const w = new HashWorker(50, 60_000);
  t.teardown(() => w.close());
  const pause = () => new Promise((r) => setTimeout(r, 500));

  // Nothing held: the short idle time applies.
  t.equal((await w.job(file, 0).end(10)).sha256, hex('sha256', data.subarray(0, 10)));
  await pause();
  t.equal(w.running, false, 'an idle thread without digests stops');

  // A digest held: a pause ten times the short idle time keeps the thread and the digest.
  t.equal(await w.extend('a', file, 0, 1_000_000), true);
  t.equal(await w.extend('b', file, 0, 500_000), true);
  await pause();
  t.equal(w.running, true, 'the thread is still up');
  t.equal(await w.extend('a', file, 1_000_000, 2_000_000), true, 'the digest continues where it was');
  t.same(await w.digest('a'), { upTo: 2_000_000, sha256: hex('sha256', data) });

  // One of two forgotten: still held. Both forgotten: back to the short idle time.
  w.forget('a');
  await pause();
  t.equal(w.running, true, 'still holding b');
  t.same(await w.digest('b'), { upTo: 500_000, sha256: hex('sha256', data.subarray(0, 500_000)) });
  w.forget('b');
  await pause();
  t.equal(w.running, false, 'nothing held any more: the thread stopped');
  t.same(await w.digest('b'), { upTo: 0 });

  // Forgotten while its extend was on the way: not counted as held, so the thread still stops.
  const extending = w.extend('c', file, 0, 1_000_000);
  w.forget('c');
  t.equal(await extending, true);
  await pause();
  t.equal(w.running, false, 'a digest forgotten mid-request does not keep the thread');
});

t.test('the inline hasher gives the same answers on the calling thread', async (t) => {
  const data = randomBytes(200_000);
  const h = inlineHasher(['sha1']);
  h.update(data.subarray(0, 70_000), 70_000);
  t.equal(await h.cut(70_000), hex('sha256', data.subarray(0, 70_000)));
  h.update(data.subarray(70_000), 200_000);
  const end = await h.end(200_000);
  t.equal(end.sha256, hex('sha256', data.subarray(70_000)));
  t.equal(end.checks.get('sha1')?.toString('hex'), hex('sha1', data));
});
