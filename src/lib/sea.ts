import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sea from 'node:sea';

/**
 * Running as a single executable (Node SEA, `npm run build:binary`): files that a normal install
 * reads from the package (the web page, package.json, the SQLite addon) are assets inside the
 * binary instead.
 */
export const inSea = (): boolean => sea.isSea();

export function seaAsset(name: string): Buffer {
  return Buffer.from(sea.getAsset(name));
}

/**
 * The better-sqlite3 addon embedded in the binary, loaded with process.dlopen (a path string does
 * not work inside a SEA). It is written once to a cache directory keyed by its hash, with an
 * atomic rename so that concurrent starts never load a half-written file.
 */
export function embeddedSqliteBinding(): unknown {
  const bytes = seaAsset('better_sqlite3.node');
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const dir = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir() || os.tmpdir(), '.cache'), 'sluice');
  const file = path.join(dir, `better_sqlite3-${digest}.node`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, bytes, { mode: 0o755 });
    fs.renameSync(tmp, file);
  }
  const mod = { exports: {} as unknown };
  process.dlopen(mod, file);
  return mod.exports;
}
