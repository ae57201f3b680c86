import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { HashWorker } from '../../src/service/hashing/hash-worker.js';
import { RunningDigests } from '../../src/service/hashing/running-digest.js';
import { tmpDir, type TestContext } from '../helpers/server.js';

const CHUNK = 300_000;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A digest keeper over a real staging file and a real hashing thread; the test records the chunks. */
async function setup(t: TestContext & { fail(msg: string): void }, chunks: number, idleMs?: number) {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'staging');
  const data = randomBytes(CHUNK * chunks - 1234);
  await fs.writeFile(file, data);
  const recorded = new Set<number>();
  // The same idle time with and without digests held: a test can make the thread stop and lose them.
  const hasher = new HashWorker(idleMs, idleMs);
  t.teardown(() => hasher.close());
  const digests = new RunningDigests({
    hasher,
    pathOf: () => file,
    recordedUntil: async (_id, from) => {
      let i = Math.floor(from / CHUNK);
      while (recorded.has(i)) i++;
      return Math.min(i * CHUNK, data.length);
    },
    onError: (_id, err) => t.fail(String(err)),
  });
  const receive = (i: number) => {
    recorded.add(i);
    digests.recorded('u');
  };
  return { data, digests, receive, hasher, file };
}

/** Waits until the background catch-up has covered `bytes`. */
async function covered(digests: RunningDigests, bytes: number): Promise<void> {
  for (let i = 0; i < 500 && digests.coveredBytes('u') < bytes; i++) await new Promise((r) => setTimeout(r, 10));
}

t.test('chunks in order are hashed in the background as they are recorded', async (t) => {
  const { data, digests, receive } = await setup(t, 5);
  for (let i = 0; i < 4; i++) receive(i);
  await covered(digests, 4 * CHUNK);
  t.equal(digests.coveredBytes('u'), 4 * CHUNK, 'covered before anyone asked for the digest');
  receive(4);
  t.equal(await digests.digest('u', data.length), sha(data));
  t.equal(digests.coveredBytes('u'), data.length);
});

t.test('chunks out of order are hashed once they join the prefix; the digest is still exact', async (t) => {
  const { data, digests, receive } = await setup(t, 6);
  receive(3);
  receive(1);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(digests.coveredBytes('u'), 0, 'nothing contiguous from byte 0 yet');
  receive(0);
  receive(5);
  await covered(digests, 2 * CHUNK);
  t.equal(digests.coveredBytes('u'), 2 * CHUNK, 'chunks 0-1, up to the gap');
  receive(2);
  receive(4);
  t.equal(await digests.digest('u', data.length), sha(data));
});

t.test('a restarted hashing thread loses its digests: they are computed again from byte 0', async (t) => {
  const { data, digests, receive } = await setup(t, 4, 50);
  const idle = () => new Promise((r) => setTimeout(r, 200)); // the thread stops after 50 ms idle
  receive(0);
  receive(1);
  await covered(digests, 2 * CHUNK);
  await idle();
  receive(2);
  receive(3);
  t.equal(await digests.digest('u', data.length), sha(data));
  // Lost again after everything was covered: asking for the digest hashes it all again.
  await idle();
  t.equal(await digests.digest('u', data.length), sha(data));
});

t.test('a digest asked for before every byte is recorded is undefined; forget drops the state', async (t) => {
  const { data, digests, receive, hasher } = await setup(t, 3);
  receive(0);
  receive(2);
  t.equal(await digests.digest('u', data.length), undefined);
  t.equal(digests.coveredBytes('u'), CHUNK);
  digests.forget('u');
  t.equal(digests.coveredBytes('u'), 0);
  t.same(await hasher.digest('u'), { upTo: 0 }, 'the hashing thread dropped it too');
});

t.test('a staging file shorter than its recorded bytes is reported, and the digest is not trusted', async (t) => {
  const { data, hasher, file } = await setup(t, 2);
  await fs.truncate(file, CHUNK);
  const errors: unknown[] = [];
  const d = new RunningDigests({
    hasher,
    pathOf: () => file,
    recordedUntil: async () => data.length,
    onError: (_id, err) => errors.push(err),
  });
  t.equal(await d.digest('u', data.length), undefined);
  t.match(String(errors[0]), /ends at byte 300000/);
  t.equal(d.coveredBytes('u'), 0);
});
