import ms from 'ms';

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  k: 1000,
  kb: 1000,
  kib: 1024,
  m: 1000 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1000 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1000 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/**
 * Parses a byte size such as `1048576`, `64KiB`, `5GiB` or `1.5 GB`.
 * Decimal suffixes (KB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, ...) of 1024,
 * the way `dd`, `df -H` and the IEC define them. Returns undefined for anything else.
 */
export function parseBytes(input: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input);
  if (!m) return undefined;
  const unit = BYTE_UNITS[(m[2] ?? '').toLowerCase() || 'b'];
  if (unit === undefined) return undefined;
  const value = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Parses a duration such as `24h`, `90s`, `1500ms` or plain milliseconds. */
export function parseDuration(input: string): number | undefined {
  const trimmed = input.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const value = ms(trimmed as ms.StringValue);
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
