import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { RunningDigests } from '../../src/service/running-digest.js';
import { tmpDir, type TestContext } from '../helpers/server.js';

const CHUNK = 300_000;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A digest keeper over a real staging file whose recorded chunks the test controls. */
async function setup(t: TestContext & { fail(msg: string): void }, chunks: number) {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'staging');
  const data = randomBytes(CHUNK * chunks - 1234);
  await fs.writeFile(file, data);
  const recorded = new Set<number>();
  let reads = 0;
  const digests = new RunningDigests({
    pathOf: () => {
      reads++;
      return file;
    },
    recordedUntil: (_id, from) => {
      let i = Math.floor(from / CHUNK);
      while (recorded.has(i)) i++;
      return Math.min(i * CHUNK, data.length);
    },
    onError: (_id, err) => t.fail(String(err)),
  });
  const part = (i: number) => data.subarray(i * CHUNK, (i + 1) * CHUNK);
  /** Records chunk i, feeding it inline when the keeper hands out a hash for its offset. */
  const receive = (i: number) => {
    const fed = digests.feed('u', i * CHUNK);
    fed?.update(part(i));
    recorded.add(i);
    digests.recorded('u', i * CHUNK, part(i).length, fed);
    return fed !== undefined;
  };
  return { data, digests, receive, reads: () => reads };
}

t.test('chunks in order are hashed as they arrive: the digest needs no read of the file', async (t) => {
  const { data, digests, receive, reads } = await setup(t, 5);
  for (let i = 0; i < 5; i++) t.ok(receive(i), `chunk ${i} fed inline`);
  t.equal(await digests.digest('u', data.length), sha(data));
  t.equal(reads(), 0, 'the staging file was never opened');
});

t.test('chunks out of order are read back once they join the prefix; the digest is still exact', async (t) => {
  const { data, digests, receive, reads } = await setup(t, 6);
  t.notOk(receive(3), 'ahead of the digest: not fed');
  t.notOk(receive(1));
  t.ok(receive(0), 'chunk 0 starts the digest');
  t.notOk(receive(5));
  t.notOk(receive(2), 'fills the gap: 1-3 are read back in the background');
  receive(4);
  t.equal(await digests.digest('u', data.length), sha(data));
  t.ok(reads() > 0, 'read what was not fed');
  t.equal(digests.coveredBytes('u'), data.length);
});

t.test('after a restart (no running hash) the first chunk starts a catch-up from byte 0', async (t) => {
  const { data, digests, receive } = await setup(t, 4);
  t.notOk(receive(2), 'no digest exists and the chunk is not at 0');
  receive(0);
  receive(1);
  receive(3);
  t.equal(await digests.digest('u', data.length), sha(data));
});

t.test('a digest asked for before every byte is recorded is undefined; forget drops the state', async (t) => {
  const { data, digests, receive } = await setup(t, 3);
  receive(0);
  receive(2);
  t.equal(await digests.digest('u', data.length), undefined);
  digests.forget('u');
  t.equal(digests.coveredBytes('u'), 0);
});
