import t from 'tap';
import { S3_MAX_PARTS, partSizeFor } from '../../src/storage/part-size.js';

const MiB = 1024 * 1024;

t.test('part size: configured, never under 5 MiB, grown so no file needs more than 10,000 parts', async (t) => {
  t.equal(partSizeFor(1000, 16 * MiB), 16 * MiB);
  t.equal(partSizeFor(1000, 1 * MiB), 5 * MiB, 'S3 minimum');
  t.equal(partSizeFor(100 * 1024 * MiB, 8 * MiB), 11 * MiB, '100 GiB at 8 MiB would be 12,800 parts');
  for (const size of [0, 1, 5 * 1024 * MiB, 160 * 1024 * MiB, 5 * 1024 * 1024 * MiB]) {
    const part = partSizeFor(size, 16 * MiB);
    t.ok(Math.ceil(size / part) <= S3_MAX_PARTS, `${size} bytes: ${Math.ceil(size / part)} parts`);
    t.equal(part % MiB, 0, 'whole MiB');
  }
});
