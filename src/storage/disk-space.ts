import fs from 'node:fs/promises';

/** Free and total bytes of the filesystem holding a directory (injectable for tests). */
export type StatFs = (dir: string) => Promise<{ free: number; total: number }>;

export const statFs: StatFs = async (dir) => {
  const s = await fs.statfs(dir);
  // bavail: what an unprivileged process may use (the root-reserved blocks excluded).
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
};

/** The safety margin kept free: DISK_RESERVE as bytes or a share of the filesystem, the smaller. */
export function reserveMargin(total: number, reserve: { bytes: number | undefined; percent: number | undefined }): number {
  const candidates = [reserve.bytes, reserve.percent === undefined ? undefined : Math.floor((total * reserve.percent) / 100)].filter(
    (n): n is number => n !== undefined,
  );
  return candidates.length === 0 ? 0 : Math.min(...candidates);
}
