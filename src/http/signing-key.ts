import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * The key for signed upload URLs: SIGNING_SECRET when set; otherwise a random key generated once
 * and kept in `DATA_DIR/signing.key` (mode 0600), so that URLs stay valid across restarts.
 */
export async function loadSigningKey(dataDir: string, configured: string | undefined): Promise<string> {
  if (configured !== undefined) return configured;
  const file = path.join(dataDir, 'signing.key');
  try {
    return (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32).toString('base64url');
  try {
    // wx: of two processes starting at once, one writes and the other reads what it wrote.
    await fs.writeFile(file, `${key}\n`, { flag: 'wx', mode: 0o600 });
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await fs.readFile(file, 'utf8')).trim();
    throw err;
  }
}
