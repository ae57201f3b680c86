import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { StoredLocation } from '../ledger/ledger.js';
import type { Download, FileStore, PublishInput } from './file-store.js';
import { syncDir } from './staging-area.js';

/**
 * Local destination: finished files live at `DATA_DIR/files/<upload id>`. Publishing verifies the
 * staged bytes with one read and then moves the staging file into place with an atomic rename on
 * the same filesystem, so no byte is copied and a crash leaves either the staging file or the
 * published file, never half of one.
 */
export class LocalStore implements FileStore {
  readonly backend = 'local' as const;
  private readonly filesDir: string;

  constructor(private readonly dataDir: string) {
    this.filesDir = path.join(dataDir, 'files');
  }

  async init(): Promise<void> {
    await fs.mkdir(this.filesDir, { recursive: true });
  }

  async check(): Promise<void> {
    await fs.access(this.filesDir, fs.constants.W_OK | fs.constants.R_OK);
  }

  async publish(input: PublishInput): Promise<StoredLocation> {
    const relative = path.posix.join('files', input.id);
    const target = path.join(this.dataDir, relative);
    if (input.stagingPath === null) {
      // Several source files: write them once into a hidden file, then rename it into place.
      const tmp = path.join(this.filesDir, `.incoming-${input.id}`);
      try {
        await pipeline(input.open(), createWriteStream(tmp, { flags: 'w', mode: 0o600 }));
        const fh = await fs.open(tmp, 'r');
        await fh.sync().finally(() => fh.close());
        await fs.rename(tmp, target);
      } catch (err) {
        await fs.rm(tmp, { force: true });
        throw err;
      }
      await syncDir(this.filesDir);
      return { backend: 'local', path: relative };
    }
    // Unless the service hashed these very bytes already, drain the verifying stream: it errors
    // (and we publish nothing) if the bytes do not match.
    if (!input.verified) await pipeline(input.open(), new Writable({ write: (_chunk, _enc, cb) => cb() }));
    await fs.rename(input.stagingPath, target);
    await syncDir(this.filesDir);
    await syncDir(path.dirname(input.stagingPath));
    return { backend: 'local', path: relative };
  }

  async read(location: StoredLocation, range?: { start: number; end: number }): Promise<Download> {
    const file = this.resolve(location);
    const { size } = await fs.stat(file);
    return { kind: 'stream', stream: createReadStream(file, { highWaterMark: 1024 * 1024, ...range }), size };
  }

  async delete(location: StoredLocation): Promise<void> {
    await fs.rm(this.resolve(location), { force: true });
  }

  async locate(id: string): Promise<{ location: StoredLocation; sha256: string | undefined } | undefined> {
    const relative = path.posix.join('files', id);
    try {
      await fs.access(path.join(this.dataDir, relative));
      return { location: { backend: 'local', path: relative }, sha256: undefined };
    } catch {
      return undefined;
    }
  }

  async cleanupIncomplete(): Promise<number> {
    let removed = 0;
    for (const name of await fs.readdir(this.filesDir)) {
      if (!name.startsWith('.incoming-')) continue;
      await fs.rm(path.join(this.filesDir, name), { force: true });
      removed++;
    }
    return removed;
  }

  private resolve(location: StoredLocation): string {
    if (location.backend !== 'local') throw new Error(`local store cannot read a ${location.backend} location`);
    const file = path.resolve(this.dataDir, location.path);
    // Locations are written by this store, but the guard keeps a damaged ledger from reaching outside.
    if (!file.startsWith(this.filesDir + path.sep)) throw new Error('location outside the files directory');
    return file;
  }
}
