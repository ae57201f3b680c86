import { readFileSync } from 'node:fs';

/** The soft limit on open descriptors (`ulimit -n`), or undefined where it cannot be read. */
export function descriptorLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return undefined;
    return m[1] === 'unlimited' ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * How many bodies may be written at once within `limit` descriptors: each holds up to three (its
 * socket, the staging file - shared by an upload's writers - and the hashing thread's read of it),
 * and 64 stay for everything else (the ledger, listening sockets, status requests, S3).
 */
export function bodyBudget(limit: number | undefined): number {
  if (limit === undefined) return 10_000;
  return Math.max(1, Math.floor((limit - 64) / 3));
}
