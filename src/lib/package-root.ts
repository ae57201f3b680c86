import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The sluice package's root directory (where package.json and web/ are), found by walking up from
 * this module: it sits under src/ when run from source and under dist/server/ when built. Undefined
 * when there is none (the single executable, which carries those files as assets).
 */
export const packageRoot: string | undefined = (() => {
  let dir: string;
  try {
    dir = path.dirname(fileURLToPath(import.meta.url));
  } catch {
    return undefined; // bundled into the single executable: no module URL, no package directory
  }
  for (let i = 0; i < 5; i++) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'sluice') return dir;
    dir = path.dirname(dir);
  }
  return undefined;
})();
