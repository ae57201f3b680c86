import t from 'tap';
import { createGcPacer } from '../../src/lib/gc-pacer.js';

t.test('collects once per `everyBytes` received, counting across calls', async (t) => {
  let collections = 0;
  const pace = createGcPacer(1000, () => collections++);
  pace(400);
  pace(400);
  t.equal(collections, 0, 'not before 1000 bytes');
  pace(400);
  t.equal(collections, 1, 'at 1200 bytes');
  pace(999);
  t.equal(collections, 1, 'the count starts again after a collection');
  pace(1);
  t.equal(collections, 2);
  pace(5000);
  t.equal(collections, 3, 'one collection for a large piece, not one per 1000 bytes');
});

t.test('0 turns pacing off', async (t) => {
  let collections = 0;
  const pace = createGcPacer(0, () => collections++);
  for (let i = 0; i < 100; i++) pace(1024 * 1024);
  t.equal(collections, 0);
});

t.test('the real collector frees dropped socket-sized buffers without waiting for V8', async (t) => {
  const pace = createGcPacer(1024 * 1024);
  // Dropped buffers like those a socket hands over for each read: 64 x 64 KiB = 4 MiB.
  const drop = () => {
    for (let i = 0; i < 64; i++) Buffer.alloc(64 * 1024).fill(i);
  };
  drop();
  await new Promise((r) => setImmediate(r));
  const before = process.memoryUsage().arrayBuffers;
  pace(1024 * 1024);
  // Backing stores are released by V8's sweeper during the scavenge or a tick or two later (far
  // sooner than V8 would collect on its own with nothing else allocating).
  let after = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < 10 && before - after < 3 * 1024 * 1024; i++) {
    await new Promise((r) => setImmediate(r));
    after = process.memoryUsage().arrayBuffers;
  }
  t.ok(before - after >= 3 * 1024 * 1024, `array buffers went from ${before} to ${after} bytes`);
});
