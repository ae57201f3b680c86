import { S3_MIN_PART_SIZE } from '../config.js';

/** S3 allows at most this many parts in one multipart upload. */
export const S3_MAX_PARTS = 10_000;

const MiB = 1024 * 1024;

/**
 * The part size for a file of `size` bytes: the configured size, grown (in whole MiB) when the file
 * would otherwise need more than 10,000 parts, and never under S3's 5 MiB minimum.
 */
export function partSizeFor(size: number, configured: number): number {
  const needed = Math.ceil(size / S3_MAX_PARTS);
  const chosen = Math.max(configured, needed, S3_MIN_PART_SIZE);
  return Math.ceil(chosen / MiB) * MiB;
}
