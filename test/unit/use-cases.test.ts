import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import t from 'tap';
import type { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { bodyStream, feed, serviceFor } from '../helpers/service.js';

/** The use cases on a temporary SQLite ledger, driven by an injected clock (no sleeps). */
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const rows = (ledger: SqliteLedger, id: string) => (ledger.db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE upload_id = ?').get(id) as { n: number }).n;

async function send(service: Awaited<ReturnType<typeof serviceFor>>['service'], id: string, index: number, data: Buffer) {
  const body = bodyStream();
  const receipt = service.receiveChunk('alice', id, { index }, { stream: body });
  await feed(body, data);
  return receipt;
}

t.test('expiry on the clock: a status read past expires_at expires the upload and discards its bytes at once', async (t) => {
  let now = 1_000_000;
  const { service, ledger, staging, config } = await serviceFor(t, { now: () => now, env: { UPLOAD_TTL: '1h' } });
  const data = randomBytes(2000);
  const up = await service.create('alice', { fileName: 'f', size: 2000, chunkSize: 1000 });
  await send(service, up.id, 0, data.subarray(0, 1000));
  t.equal(up.expiresAt, now + config.uploadTtlMs);
  t.equal(await ledger.reserved('alice'), 2000);
  now += config.uploadTtlMs - 1;
  t.equal((await service.status('alice', up.id)).status, 'uploading', 'a millisecond before');
  now += 1;
  t.equal((await service.status('alice', up.id)).status, 'expired', 'due: expired by the read itself');
  t.equal(rows(ledger, up.id), 0, 'its ranges are gone with the state change');
  t.equal(await ledger.reserved('alice'), 0, 'its reservation too');
  await t.rejects(fs.access(staging.pathOf(up.id)), 'and its staging file');
  await t.rejects(send(service, up.id, 1, data.subarray(1000)), { code: 'upload_expired' });
});

t.test('the sweeper expires what is due and nothing else', async (t) => {
  let now = 5_000_000;
  const { service, config } = await serviceFor(t, { now: () => now });
  const old = await service.create('alice', { fileName: 'old', size: 10, chunkSize: 10 });
  now += config.uploadTtlMs / 2;
  const young = await service.create('alice', { fileName: 'young', size: 10, chunkSize: 10 });
  now += config.uploadTtlMs / 2;
  t.equal(await service.expireDue(), 1);
  t.same([(await service.get('alice', old.id)).status, (await service.get('alice', young.id)).status], ['expired', 'uploading']);
  t.equal(await service.expireDue(), 0, 'a second pass finds nothing');
});

t.test('abort and a failed publish drop the bytes the same way: one discard', async (t) => {
  const { service, ledger, staging } = await serviceFor(t);
  const data = randomBytes(3000);
  const aborted = await service.create('alice', { fileName: 'a', size: 3000, chunkSize: 1000 });
  await send(service, aborted.id, 0, data.subarray(0, 1000));
  await service.abort('alice', aborted.id);
  t.same([(await service.get('alice', aborted.id)).status, rows(ledger, aborted.id)], ['aborted', 0]);
  await t.rejects(fs.access(staging.pathOf(aborted.id)));
  await service.abort('alice', aborted.id); // aborting an aborted upload changes nothing

  const wrong = await service.create('alice', { fileName: 'w', size: 3000, chunkSize: 1000, sha256: sha(Buffer.alloc(3000)) });
  for (const i of [0, 1, 2]) await send(service, wrong.id, i, data.subarray(i * 1000, (i + 1) * 1000));
  await t.rejects(service.finish('alice', wrong.id), { code: 'file_checksum_mismatch' });
  const failed = await service.get('alice', wrong.id);
  t.same([failed.status, rows(ledger, wrong.id)], ['failed', 0], 'failed, its ranges gone in the same transaction');
  t.match(failed.failure, /SHA-256/);
  await t.rejects(fs.access(staging.pathOf(wrong.id)));
  t.equal(await ledger.reserved('alice'), 0);
});

t.test('a composed upload is published from its parts, which are consumed with it', async (t) => {
  const { service, ledger } = await serviceFor(t);
  const data = randomBytes(5000);
  const part = (size: number) =>
    service.createStream('alice', { protocol: 'tus', fileName: 'p', contentType: 'x/y', metadata: {}, size, echo: null, isPart: true });
  const a = await part(2000);
  const b = await part(3000);
  const composed = await service.createComposed('alice', [a.id, b.id], { protocol: 'tus', fileName: 'c', contentType: 'x/y', metadata: {}, echo: null });
  t.equal(composed.status, 'uploading', 'its parts are not complete yet');
  for (const [p, from, to] of [
    [b, 2000, 5000],
    [a, 0, 2000],
  ] as const) {
    const body = bodyStream();
    const appending = service.append('alice', p.id, { offset: 0, stream: body });
    await feed(body, data.subarray(from, to));
    await appending;
  }
  const done = await service.get('alice', composed.id);
  t.same([done.status, done.sha256, done.size], ['completed', sha(data), 5000]);
  t.same([(await ledger.get(a.id))?.status, (await ledger.get(b.id))?.location], ['completed', done.location], 'parts consumed');
});

t.test('finishes that join a running finish are each answered by their own sha256; a wrong one alone does not fail the upload', async (t) => {
  const { service } = await serviceFor(t);
  const data = randomBytes(6 * 300_000);
  const right = sha(data);
  const wrong = 'f'.repeat(64);
  const upload = async () => {
    const up = await service.create('alice', { fileName: 'f', size: data.length, chunkSize: 300_000 });
    // Out of order, so that the whole-file digest is still being read back when the finishes come.
    for (const i of [5, 3, 1, 4, 2, 0]) await send(service, up.id, i, data.subarray(i * 300_000, (i + 1) * 300_000));
    return up;
  };
  const one = await upload();
  const [w, r] = await Promise.allSettled([service.finish('alice', one.id, wrong), service.finish('alice', one.id, right)]);
  t.match(w, { status: 'rejected', reason: { code: 'file_checksum_mismatch' } }, 'the wrong one started the job and gets 422');
  t.match(r, { status: 'fulfilled', value: { status: 'completed', sha256: right } }, 'the right one that joined it completes the upload');
  t.equal((await service.get('alice', one.id)).status, 'completed');
  await t.rejects(service.finish('alice', one.id, wrong), { code: 'file_checksum_mismatch' }, 'after completion, as before');
  t.equal((await service.finish('alice', one.id, right)).sha256, right);

  const two = await upload();
  const outcomes = await Promise.allSettled([wrong, right, wrong, right].map((s) => service.finish('alice', two.id, s)));
  t.same(
    outcomes.map((o) => o.status),
    ['rejected', 'fulfilled', 'rejected', 'fulfilled'],
    'two right and two wrong at once: the right ones complete it',
  );
  t.equal((await service.get('alice', two.id)).status, 'completed');

  const three = await upload();
  await t.rejects(service.finish('alice', three.id, wrong), { code: 'file_checksum_mismatch' });
  t.equal((await service.get('alice', three.id)).status, 'failed', 'a wrong sha256 with nobody right waiting fails it, as before');
});
