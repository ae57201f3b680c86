import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import FakeTimers from '@sinonjs/fake-timers';
import t from 'tap';
import { bodyStream, deferred, faultyIo, feed, serviceFor } from '../helpers/service.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const CHUNK = 256 * 1024; // above the inline-hashing limit: the hashing thread reads it back
const streamInput = (size: number) => ({ protocol: 'tus' as const, fileName: 'f', contentType: 'x/y', metadata: {}, size, echo: null, isPart: false });

t.test('one of two concurrent writers fails its flush: neither records, both answer a retryable 503, a retry lands', async (t) => {
  const { io, plan } = faultyIo();
  const { service, ledger, staging } = await serviceFor(t, { io });
  const data = randomBytes(2 * CHUNK);
  const upload = await service.create('alice', { fileName: 'f', size: data.length, chunkSize: CHUNK, sha256: sha(data) });
  const a = bodyStream();
  const b = bodyStream();
  const ra = service.receiveChunk('alice', upload.id, { index: 0 }, { stream: a, declaredLength: CHUNK });
  const rb = service.receiveChunk('alice', upload.id, { index: 1 }, { stream: b, declaredLength: CHUNK });
  rb.catch(() => {});
  // Both write into the one shared descriptor; A's flush then fails. The kernel reports that once,
  // to A: B's own flush, which starts later, succeeds although B's first half was written back
  // (and lost) with A's bytes.
  await feed(a, data.subarray(0, CHUNK), false);
  await feed(b, data.subarray(CHUNK, CHUNK + CHUNK / 2), false);
  plan.failSyncs = 1;
  a.end();
  await t.rejects(ra, { code: 'staging_failed', status: 503, headers: { 'retry-after': '5' } }, 'the writer whose flush failed');
  await feed(b, data.subarray(CHUNK + CHUNK / 2));
  await t.rejects(rb, { code: 'staging_failed', status: 503 }, 'the writer whose flush succeeded on the poisoned descriptor');
  t.equal(plan.failSyncs, 0, 'exactly one flush failed');
  t.equal((await ledger.get(upload.id))?.chunksReceived, 0, 'nothing recorded');

  // The poisoned descriptor is not handed out again: the retries get a fresh one and land.
  for (const i of [0, 1]) {
    const s = bodyStream();
    const r = service.receiveChunk('alice', upload.id, { index: i }, { stream: s });
    await feed(s, data.subarray(i * CHUNK, (i + 1) * CHUNK));
    t.equal((await r).created, true);
  }
  const done = await service.finish('alice', upload.id);
  t.equal(done.sha256, sha(data));
  await t.rejects(fs.access(staging.pathOf(upload.id)), 'the staging file went with the publish');
});

t.test('flushes on one descriptor overlap, but one settles for its caller only with those that overlapped it', async (t) => {
  const { io, plan } = faultyIo();
  const { staging } = await serviceFor(t, { io });
  await staging.create('x', 3);
  const lease = await staging.openForWrite('x');
  t.teardown(() => lease.release());
  const h = lease.handle;
  const gates = [deferred(), deferred()];
  let n = 0;
  const base = io.datasync;
  io.datasync = async (fh) => {
    const gate = gates[n++];
    if (gate) await gate.promise;
    return base(fh);
  };
  h.write(Buffer.from('a'), 0);
  const first = h.flush();
  t.equal(h.flush(), first, 'nothing written since it started: the running flush covers it');
  h.write(Buffer.from('b'), 1);
  const second = h.flush();
  t.not(second, first, 'a write after it started needs another, which starts at once');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(n, 2, 'both are on the disk together');
  let firstSettled = false;
  void first.then(() => (firstSettled = true));
  (gates[0] as { resolve: () => void }).resolve(); // the earlier one's fdatasync returns 0 ...
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(firstSettled, '... but it is not settled while a flush that overlapped it runs: that one may take its error');
  plan.failSyncs = 1;
  (gates[1] as { resolve: () => void }).resolve();
  await t.rejects(second, { code: 'EIO' });
  await first;
  t.equal(h.failures, 1, 'when it settles the handle is already poisoned, so its caller records nothing');
  t.ok(h.poisoned);
});

t.test('a stream append whose background flush fails records nothing and answers a retryable 503', async (t) => {
  const { io, plan } = faultyIo();
  const { service, ledger } = await serviceFor(t, { io });
  const data = randomBytes(6 * 1024 * 1024);
  const upload = await service.createStream('alice', streamInput(data.length));
  plan.failSyncs = 1; // the background flush after 4 MiB
  const body = bodyStream();
  const appending = service.append('alice', upload.id, { offset: 0, stream: body, declaredLength: data.length });
  await feed(body, data);
  await t.rejects(appending, { code: 'staging_failed', status: 503 });
  t.equal((await ledger.get(upload.id))?.bytesReceived, 0, 'the final flush succeeded, yet nothing was recorded');

  const again = bodyStream();
  const retry = service.append('alice', upload.id, { offset: 0, stream: again, declaredLength: data.length });
  await feed(again, data);
  const done = await retry;
  t.same([done.status, done.sha256], ['completed', sha(data)], 'the retry from the recorded offset completes, verified');
});

t.test('a flush failing after a checkpoint keeps the checkpoint and answers 503, not offset_mismatch', async (t) => {
  const { io, plan } = faultyIo();
  const { service, ledger } = await serviceFor(t, { io });
  const mib = 1024 * 1024;
  const data = randomBytes(24 * mib);
  const upload = await service.createStream('alice', streamInput(data.length));
  const body = bodyStream();
  const appending = service.append('alice', upload.id, { offset: 0, stream: body });
  appending.catch(() => {});
  await feed(body, data.subarray(0, 17 * mib), false);
  for (let i = 0; i < 500 && (await ledger.get(upload.id))?.bytesReceived !== 16 * mib; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal((await ledger.get(upload.id))?.bytesReceived, 16 * mib, 'the checkpoint at 16 MiB is recorded while the body streams');
  plan.failSyncs = 100;
  await feed(body, data.subarray(17 * mib, 22 * mib), false);
  body.end();
  await t.rejects(appending, { code: 'staging_failed' });
  t.equal((await ledger.get(upload.id))?.bytesReceived, 16 * mib, 'nothing after the checkpoint');
  plan.failSyncs = 0;
  const rest = bodyStream();
  const resumed = service.append('alice', upload.id, { offset: 16 * mib, stream: rest });
  await feed(rest, data.subarray(16 * mib));
  t.same([(await resumed).status, (await resumed).sha256], ['completed', sha(data)], 'the client resumes at the recorded offset');
});

t.test('takeover fences the old writer: a stalled writer that resumes sending never lands a byte', async (t) => {
  const { service, ledger, staging } = await serviceFor(t, { env: { CHUNK_TAKEOVER_AFTER: '10s' } });
  const old = randomBytes(CHUNK);
  const fresh = randomBytes(CHUNK);
  const upload = await service.create('alice', { fileName: 'f', size: CHUNK, chunkSize: CHUNK, sha256: sha(fresh) });
  // A request whose end does not take: its stream keeps delivering after it was told to stop.
  const stalled = bodyStream();
  stalled.destroy = () => stalled;
  const first = service.receiveChunk('alice', upload.id, { index: 0 }, { stream: stalled, declaredLength: CHUNK });
  first.catch(() => {});
  await feed(stalled, old.subarray(0, CHUNK / 2), false);
  await new Promise((r) => setTimeout(r, 50));

  const clock = FakeTimers.install({ now: Date.now(), toFake: ['Date', 'setTimeout', 'clearTimeout'], shouldClearNativeTimers: true });
  t.teardown(() => clock.uninstall());
  clock.tick(11_000); // silent past CHUNK_TAKEOVER_AFTER
  const next = bodyStream();
  const second = service.receiveChunk('alice', upload.id, { index: 0 }, { stream: next, declaredLength: CHUNK });
  await clock.tickAsync(5_000); // the old writer never lets go: fenced after the release wait
  clock.uninstall();
  await feed(next, fresh);
  const receipt = await second;
  t.equal(receipt.chunk.sha256, sha(fresh));

  // The stalled writer wakes up and sends the rest of its (other) bytes.
  // (Not waiting for it to be read: the fenced writer stops reading at its first late piece.)
  stalled.write(old.subarray(CHUNK / 2));
  stalled.end();
  await t.rejects(first, { code: 'chunk_in_progress' });
  const onDisk = await fs.readFile(staging.pathOf(upload.id));
  t.equal(sha(onDisk), sha(fresh), "the bytes on disk are the new writer's");
  t.equal((await ledger.getChunk(upload.id, 0))?.sha256, sha(onDisk), 'the recorded SHA-256 equals the bytes on disk');
  t.equal((await service.finish('alice', upload.id)).status, 'completed');
});

t.test('a writer taken over while its flush hangs records nothing once the flush returns', async (t) => {
  const { io, plan } = faultyIo();
  const { service, ledger, staging } = await serviceFor(t, { io, env: { CHUNK_TAKEOVER_AFTER: '10s' } });
  const old = randomBytes(CHUNK);
  const fresh = randomBytes(CHUNK);
  const upload = await service.create('alice', { fileName: 'f', size: CHUNK, chunkSize: CHUNK });
  const hung = deferred();
  plan.hold = hung.promise;
  const a = bodyStream();
  const first = service.receiveChunk('alice', upload.id, { index: 0 }, { stream: a, declaredLength: CHUNK });
  first.catch(() => {});
  await feed(a, old);
  while (plan.syncs === 0) await new Promise((r) => setTimeout(r, 5));

  const clock = FakeTimers.install({ now: Date.now(), toFake: ['Date', 'setTimeout', 'clearTimeout'], shouldClearNativeTimers: true });
  t.teardown(() => clock.uninstall());
  clock.tick(11_000);
  const b = bodyStream();
  const second = service.receiveChunk('alice', upload.id, { index: 0 }, { stream: b, declaredLength: CHUNK });
  await clock.tickAsync(5_000);
  clock.uninstall();
  await feed(b, fresh); // written over the old bytes while the old writer's flush still hangs
  plan.hold = null;
  hung.resolve();
  await t.rejects(first, { code: 'chunk_in_progress' }, 'the old writer is refused inside the ledger transaction');
  t.equal((await second).chunk.sha256, sha(fresh));
  const onDisk = await fs.readFile(staging.pathOf(upload.id));
  t.equal((await ledger.getChunk(upload.id, 0))?.sha256, sha(onDisk), 'the recorded SHA-256 equals the bytes on disk');
});

t.test('the hashing thread dying mid-body fails that body; nothing is recorded, the next one works', async (t) => {
  const { service, ledger, hashing } = await serviceFor(t);
  const data = randomBytes(4 * CHUNK);
  const upload = await service.create('alice', { fileName: 'f', size: data.length, chunkSize: 4 * CHUNK, sha256: sha(data) });
  const body = bodyStream();
  const receiving = service.receiveChunk('alice', upload.id, { index: 0 }, { stream: body });
  await feed(body, data.subarray(0, 2 * CHUNK), false);
  await hashing.kill();
  await feed(body, data.subarray(2 * CHUNK));
  await t.rejects(receiving);
  t.equal((await ledger.get(upload.id))?.chunksReceived, 0, 'nothing recorded');
  const again = bodyStream();
  const retry = service.receiveChunk('alice', upload.id, { index: 0 }, { stream: again });
  await feed(again, data);
  t.equal((await retry).chunk.sha256, sha(data));
  t.equal((await service.finish('alice', upload.id)).sha256, sha(data), 'the whole-file digest restarted from the file');
});

t.test('MAX_CONCURRENT_BODIES: a body beyond the budget is refused with 503 and Retry-After before anything is opened', async (t) => {
  const { service, ledger } = await serviceFor(t, { env: { MAX_CONCURRENT_BODIES: '2' } });
  t.equal(service.maxBodies, 2);
  const data = randomBytes(3 * CHUNK);
  const up = await service.create('alice', { fileName: 'f', size: data.length, chunkSize: CHUNK, sha256: sha(data) });
  const bodies = [bodyStream(), bodyStream()];
  const running = bodies.map((b, i) => service.receiveChunk('alice', up.id, { index: i }, { stream: b }));
  await new Promise((r) => setTimeout(r, 50));
  const third = bodyStream();
  await t.rejects(service.receiveChunk('alice', up.id, { index: 2 }, { stream: third }), {
    code: 'overloaded',
    status: 503,
    headers: { 'retry-after': '2' },
  });
  for (const [i, b] of bodies.entries()) await feed(b, data.subarray(i * CHUNK, (i + 1) * CHUNK));
  await Promise.all(running);
  const again = bodyStream();
  const ok = service.receiveChunk('alice', up.id, { index: 2 }, { stream: again });
  await feed(again, data.subarray(2 * CHUNK));
  t.equal((await ok).created, true, 'taken once the others are done');
  t.equal((await ledger.get(up.id))?.chunksReceived, 3);
});
