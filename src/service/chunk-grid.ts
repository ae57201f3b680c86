/**
 * The chunk grid: an upload of `size` bytes is cut into `ceil(size / chunkSize)` chunks; chunk i
 * covers [i * chunkSize, min((i + 1) * chunkSize, size)). Pure arithmetic, no I/O.
 */
export interface Grid {
  size: number;
  chunkSize: number;
}

export interface Span {
  index: number;
  offset: number;
  length: number;
}

export function totalChunks(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** The byte span of chunk `index`, or undefined when the index is not on the grid. */
export function chunkSpan(grid: Grid, index: number): Span | undefined {
  if (!Number.isSafeInteger(index) || index < 0 || index >= totalChunks(grid.size, grid.chunkSize)) return undefined;
  const offset = index * grid.chunkSize;
  return { index, offset, length: Math.min(grid.chunkSize, grid.size - offset) };
}

/**
 * The chunk whose span is exactly the inclusive byte range [first, last]; undefined when the range
 * does not coincide with one chunk of the grid.
 */
export function spanForRange(grid: Grid, first: number, last: number): Span | undefined {
  if (first % grid.chunkSize !== 0) return undefined;
  const span = chunkSpan(grid, first / grid.chunkSize);
  if (!span || span.offset + span.length - 1 !== last) return undefined;
  return span;
}
