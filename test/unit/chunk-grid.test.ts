import t from 'tap';
import { chunkSpan, spanForRange, totalChunks } from '../../src/service/chunk-grid.js';

t.test('totalChunks is ceil(size / chunkSize), 0 for an empty file', async (t) => {
  t.equal(totalChunks(0, 10), 0);
  t.equal(totalChunks(1, 10), 1);
  t.equal(totalChunks(10, 10), 1);
  t.equal(totalChunks(11, 10), 2);
  t.equal(totalChunks(100 * 1024 ** 3, 8 * 1024 ** 2), 12800);
});

t.test('chunkSpan covers the grid; the last chunk is short', async (t) => {
  const grid = { size: 25, chunkSize: 10 };
  t.same(chunkSpan(grid, 0), { index: 0, offset: 0, length: 10 });
  t.same(chunkSpan(grid, 2), { index: 2, offset: 20, length: 5 });
  t.equal(chunkSpan(grid, 3), undefined, 'past the end');
  t.equal(chunkSpan(grid, -1), undefined, 'negative');
  t.equal(chunkSpan(grid, 1.5), undefined, 'fractional');
  t.equal(chunkSpan({ size: 0, chunkSize: 10 }, 0), undefined, 'an empty upload has no chunk 0');
});

t.test('spanForRange accepts exactly one chunk', async (t) => {
  const grid = { size: 25, chunkSize: 10 };
  t.same(spanForRange(grid, 10, 19), { index: 1, offset: 10, length: 10 });
  t.same(spanForRange(grid, 20, 24), { index: 2, offset: 20, length: 5 });
  t.equal(spanForRange(grid, 5, 14), undefined, 'not aligned');
  t.equal(spanForRange(grid, 0, 19), undefined, 'two chunks');
  t.equal(spanForRange(grid, 0, 8), undefined, 'short of the chunk end');
  t.equal(spanForRange(grid, 20, 25), undefined, 'past the file end');
});
