import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import FakeTimers from '@sinonjs/fake-timers';
import t from 'tap';
import { HashWorker, inlineHasher, type SegmentDigest } from '../../src/service/hashing/hash-worker.js';
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

  const job = w.job(file, at, { algorithms: ['sha1', 'md5'], own: true });
  const fd = fs.openSync(file, 'r+');
  t.teardown(() => fs.closeSync(fd));
  const cutAt = 2 * 1024 * 1024 + 17;
  let cut: Promise<SegmentDigest> | undefined;
  for (let off = 0; off < data.length; off += 65536) {
    const piece = data.subarray(off, off + 65536);
    fs.writeSync(fd, piece, 0, piece.length, at + off);
    job.update(piece, at + off + piece.length);
    if (cut === undefined && off + piece.length >= cutAt) cut = job.cut(at + off + piece.length);
  }
  const firstSegment = Math.ceil(cutAt / 65536) * 65536;
  t.same(await cut, { sha256: hex('sha256', data.subarray(0, firstSegment)) }, 'the segment up to the cut');
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
  await t.rejects(w.job(path.join(dir, 'nope'), 0, { own: true }).end(10), /hashing failed: .*ENOENT/);
  fs.writeFileSync(path.join(dir, 'short'), Buffer.alloc(100));
  await t.rejects(w.job(path.join(dir, 'short'), 0, { own: true }).end(1000), /ends at byte 100, before byte 1000/);
  // The thread keeps serving after a failed job.
  t.equal((await w.job(path.join(dir, 'short'), 0, { own: true }).end(100)).sha256, hex('sha256', Buffer.alloc(100)));
});

t.test('whole-file digests continue across requests, start over at 0 and are lost when the thread stops', async (t) => {
  const { file, data } = await randomFile(t, 3_000_000);
  const w = new HashWorker(50, 100);
  t.teardown(() => w.close());
  t.equal(await w.extend('k', file, 0, 1_000_000), 1_000_000);
  t.equal(await w.extend('k', file, 1_000_000, 3_000_000), 3_000_000);
  t.same(await w.digest('k'), { upTo: 3_000_000, sha256: hex('sha256', data) });
  t.equal(await w.extend('k', file, 5, 10), null, 'a digest that does not end where asked is reported lost');
  t.equal(await w.extend('k', file, 0, 10), 10, 'from 0 starts over');
  t.same(await w.digest('k'), { upTo: 10, sha256: hex('sha256', data.subarray(0, 10)) });
  // Idle for longer than the idle time with digests held: the thread stops and they go with it.
  await new Promise((r) => setTimeout(r, 400));
  t.equal(w.running, false, 'the thread stopped');
  t.same(await w.digest('k'), { upTo: 0 });
  t.equal(await w.extend('k', file, 10, 20), null);
  // Closed for good (shutdown): nothing starts the thread again.
  await w.close();
  await t.rejects(w.digest('k'), /closed/);
});

/**
 * Writes `data` into `file` at `at` as a body would, through a job of `w` that continues the
 * whole-file digest of `key` (with the segment's own digest too when `own`), cutting once at
 * `cutAt` bytes. `record` says which ends (cut, end) are reported recorded.
 */
async function writeThrough(
  w: HashWorker,
  file: string,
  at: number,
  data: Buffer,
  key: string,
  opts: { own?: boolean; cutAt?: number; record?: boolean } = {},
) {
  const job = w.job(file, at, { key, own: opts.own ?? false });
  const fd = fs.openSync(file, 'r+');
  let cut: Promise<SegmentDigest> | undefined;
  let cutEnd = 0;
  try {
    for (let off = 0; off < data.length; off += 65536) {
      const piece = data.subarray(off, off + 65536);
      fs.writeSync(fd, piece, 0, piece.length, at + off);
      job.update(piece, at + off + piece.length);
      if (opts.cutAt !== undefined && cut === undefined && off + piece.length >= opts.cutAt) cut = job.cut((cutEnd = at + off + piece.length));
    }
  } finally {
    fs.closeSync(fd);
  }
  const result = { cut: await cut, end: await job.end(at + data.length) };
  if (opts.record !== false) {
    if (cut) job.recorded(cutEnd);
    job.recorded(at + data.length);
  }
  job.settle();
  return result;
}

/** Overwrites [at, at + length) of `file` with zeros. */
function zero(file: string, at: number, length: number): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.alloc(length), 0, length, at);
  fs.closeSync(fd);
}

t.test('an append that continues the whole-file digest hashes each byte once and hands its result to extend', async (t) => {
  const { file, data } = await randomFile(t, 3 * 1024 * 1024);
  const w = new HashWorker();
  t.teardown(() => w.close());
  const mib = 1024 * 1024;

  const first = await writeThrough(w, file, 0, data.subarray(0, mib), 'k');
  t.equal(first.end.sha256, undefined, 'an append wants no digest of its own');
  t.equal(await w.extend('k', file, 0, mib), mib);
  const second = await writeThrough(w, file, mib, data.subarray(mib), 'k', { cutAt: mib });
  t.same(second.cut, {}, 'a cut of an append answers no digest');
  // The bytes change on disk after the job hashed them: extend takes the job's digests, so it does
  // not see the change (recorded bytes never change; this only shows that nothing was read again).
  zero(file, mib, 2 * mib);
  t.equal(await w.extend('k', file, mib, 2 * mib), 2 * mib, 'the digest at the cut');
  t.equal(await w.extend('k', file, 2 * mib, 2 * mib + 1000, 3 * mib), 3 * mib, 'a digest past `to` is taken when the bytes up to it are recorded');
  t.same(await w.digest('k'), { upTo: 3 * mib, sha256: hex('sha256', data) }, "the digest was continued from the job's");

  // A job that does not start where the kept digest ends leaves nothing for extend: the bytes it
  // wrote are read back.
  const apart = await writeThrough(w, file, 3 * mib - 5, Buffer.alloc(5, 1), 'k');
  t.equal(apart.end.sha256, undefined);
  t.same(await w.digest('k'), { upTo: 3 * mib, sha256: hex('sha256', data) }, 'the kept digest is unchanged');
});

t.test('a chunk that continues the whole-file digest answers its own SHA-256 and feeds the digest from the same reads', async (t) => {
  const { file, data } = await randomFile(t, 2 * 1024 * 1024);
  const w = new HashWorker();
  t.teardown(() => w.close());
  const mib = 1024 * 1024;
  const first = await writeThrough(w, file, 0, data.subarray(0, mib), 'n', { own: true });
  t.equal(first.end.sha256, hex('sha256', data.subarray(0, mib)));
  t.equal(await w.extend('n', file, 0, mib), mib);
  const second = await writeThrough(w, file, mib, data.subarray(mib), 'n', { own: true });
  t.equal(second.end.sha256, hex('sha256', data.subarray(mib)), "the chunk's own digest");
  zero(file, mib, mib);
  t.equal(await w.extend('n', file, mib, 2 * mib), 2 * mib);
  t.same(await w.digest('n'), { upTo: 2 * mib, sha256: hex('sha256', data) }, "the whole-file digest came from the chunk's reads");
});

t.test("the bytes a chunk's job had not reached at its end are hashed for the chunk, answered, then fed to the whole-file digest", async (t) => {
  const { file, data } = await randomFile(t, 2 * 1024 * 1024);
  const w = new HashWorker();
  t.teardown(() => w.close());
  const mib = 1024 * 1024;
  // 1.5 MiB: the main thread posts a read at 1 MiB, so the last half MiB is read only at the end.
  const size = mib + mib / 2;
  const job = await writeThrough(w, file, 0, data.subarray(0, size), 'late', { own: true });
  t.equal(job.end.sha256, hex('sha256', data.subarray(0, size)), "the chunk's own digest covers the late bytes");
  // Any later answer comes after the thread fed the late bytes to the whole-file digest.
  await w.digest('late');
  zero(file, 0, size);
  t.equal(await w.extend('late', file, 0, size), size);
  t.same(await w.digest('late'), { upTo: size, sha256: hex('sha256', data.subarray(0, size)) }, 'the whole-file digest includes the late bytes, not read back');
});

t.test('bytes a job hashed are taken only once they are reported recorded', async (t) => {
  const { file } = await randomFile(t, 1024 * 1024);
  const w = new HashWorker();
  t.teardown(() => w.close());
  const a = randomBytes(300_000);
  const b = randomBytes(300_000);
  // Hashed but refused (a checksum mismatch, a quota): never reported recorded.
  await writeThrough(w, file, 0, a, 'u', { record: false });
  // Other bytes then reach the same end without a job (small bodies are hashed inline).
  fs.writeFileSync(file, b, { flag: 'r+' });
  t.equal(await w.extend('u', file, 0, b.length), b.length);
  t.same(await w.digest('u'), { upTo: b.length, sha256: hex('sha256', b) }, 'the digest covers the bytes recorded, read from the file');

  // Reported recorded, then forgotten: a new digest of the key starts from the file.
  await writeThrough(w, file, 0, a, 'v');
  w.forget('v');
  zero(file, 0, a.length);
  t.equal(await w.extend('v', file, 0, a.length), a.length);
  t.same(await w.digest('v'), { upTo: a.length, sha256: hex('sha256', Buffer.alloc(a.length)) }, 'what the job left went with forget');
});

t.test('a thread holding digests outlasts a pause of half an hour; once they are forgotten it stops after 10 s idle', async (t) => {
  const { file, data } = await randomFile(t, 2_000_000);
  // The real idle times (10 s without digests, 1 h with), on a test clock.
  const clock = FakeTimers.install({ now: Date.now(), toFake: ['Date', 'setTimeout', 'clearTimeout'] });
  t.teardown(() => clock.uninstall());
  const w = new HashWorker();
  t.teardown(() => w.close());
  let long = false;
  const pause = async () => {
    await clock.tickAsync(long ? 30 * 60_000 : 11_000);
  };

  // Nothing held: the short idle time applies.
  t.equal((await w.job(file, 0, { own: true }).end(10)).sha256, hex('sha256', data.subarray(0, 10)));
  await pause();
  t.equal(w.running, false, 'an idle thread without digests stops');

  // A digest held: half an hour keeps the thread and the digest.
  t.equal(await w.extend('a', file, 0, 1_000_000), 1_000_000);
  t.equal(await w.extend('b', file, 0, 500_000), 500_000);
  long = true;
  await pause();
  t.equal(w.running, true, 'the thread is still up');
  t.equal(await w.extend('a', file, 1_000_000, 2_000_000), 2_000_000, 'the digest continues where it was');
  t.same(await w.digest('a'), { upTo: 2_000_000, sha256: hex('sha256', data) });

  // One of two forgotten: still held. Both forgotten: back to the short idle time.
  w.forget('a');
  await pause();
  t.equal(w.running, true, 'still holding b');
  t.same(await w.digest('b'), { upTo: 500_000, sha256: hex('sha256', data.subarray(0, 500_000)) });
  w.forget('b');
  long = false;
  await pause();
  t.equal(w.running, false, 'nothing held any more: the thread stopped');
  t.same(await w.digest('b'), { upTo: 0 });

  // Forgotten while its extend was on the way: not counted as held, so the thread still stops.
  const extending = w.extend('c', file, 0, 1_000_000);
  w.forget('c');
  t.equal(await extending, 1_000_000);
  await pause();
  t.equal(w.running, false, 'a digest forgotten mid-request does not keep the thread');
});

t.test('the inline hasher gives the same answers on the calling thread', async (t) => {
  const data = randomBytes(200_000);
  const h = inlineHasher(['sha1']);
  h.update(data.subarray(0, 70_000), 70_000);
  t.same(await h.cut(70_000), { sha256: hex('sha256', data.subarray(0, 70_000)) });
  h.update(data.subarray(70_000), 200_000);
  const end = await h.end(200_000);
  t.equal(end.sha256, hex('sha256', data.subarray(70_000)));
  t.equal(end.checks.get('sha1')?.toString('hex'), hex('sha1', data));
});
