import { PerformanceObserver, constants } from 'node:perf_hooks';
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

t.test('the real collector runs a young-generation collection when the count is reached', async (t) => {
  // What the collection frees (the dead socket buffers) is measured by `npm run bench`; here: that
  // V8's collector is really reached, and that it is a minor (scavenge) collection.
  const seen: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) seen.push((entry as unknown as { detail: { kind: number } }).detail.kind);
  });
  observer.observe({ entryTypes: ['gc'] });
  t.teardown(() => observer.disconnect());
  const pace = createGcPacer(1024 * 1024);
  pace(512 * 1024);
  await new Promise((r) => setTimeout(r, 50));
  const before = seen.filter((k) => k === constants.NODE_PERFORMANCE_GC_MINOR).length;
  pace(512 * 1024);
  for (let i = 0; i < 50 && seen.filter((k) => k === constants.NODE_PERFORMANCE_GC_MINOR).length === before; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(seen.filter((k) => k === constants.NODE_PERFORMANCE_GC_MINOR).length > before, `a minor collection was observed (kinds seen: ${seen.join(', ')})`);
});
