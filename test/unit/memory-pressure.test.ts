import t from 'tap';
import { MemoryPressure, anonymousRss } from '../../src/http/memory-pressure.js';

const MiB = 1024 * 1024;

t.test('sheds over the limit only if a collection does not bring it under; stops below 90 % of it', async (t) => {
  let bytes = 80 * MiB;
  let collections = 0;
  let freed = 0;
  const m = new MemoryPressure(
    90 * MiB,
    () => bytes,
    () => {
      collections++;
      bytes -= freed;
    },
  );
  m.check();
  t.equal(m.shedding, false, 'under the limit');
  t.equal(collections, 0, 'no collection needed');

  bytes = 95 * MiB;
  freed = 10 * MiB;
  m.check();
  t.same([m.shedding, collections, m.bytes], [false, 1, 85 * MiB], 'over, but a collection gave back enough: nothing refused');

  bytes = 120 * MiB;
  freed = 0;
  m.check();
  t.equal(m.shedding, true, 'still over after collecting: shedding');
  bytes = 85 * MiB;
  m.check();
  t.equal(m.shedding, true, 'under the limit but above 90 % of it: still shedding (no flapping)');
  bytes = 80 * MiB;
  m.check();
  t.equal(m.shedding, false, 'below 90 %: requests are let in again');
});

t.test('the load gone, a collection ends shedding within one check', async (t) => {
  let bytes = 120 * MiB;
  const m = new MemoryPressure(
    90 * MiB,
    () => bytes,
    () => {
      bytes = 60 * MiB; // the dead buffers of finished requests
    },
  );
  bytes = 120 * MiB;
  const noGc = new MemoryPressure(
    90 * MiB,
    () => bytes,
    () => {},
  );
  noGc.check();
  t.equal(noGc.shedding, true);
  m.check();
  t.equal(m.shedding, false, 'collected before deciding');
});

t.test('measures anonymous memory, not the file-backed pages RSS also counts', async (t) => {
  const anon = anonymousRss();
  t.ok(anon > 0);
  t.ok(anon <= process.memoryUsage.rss(), 'at most the RSS');
});

t.test('0 turns it off', async (t) => {
  const m = new MemoryPressure(0, () => Number.MAX_SAFE_INTEGER);
  m.check();
  m.start();
  t.equal(m.shedding, false);
  m.stop();
});
