import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createReadStream } from 'node:fs';

/**
 * The staging area: one preallocated file per upload under `DATA_DIR/staging/<id>`, written with
 * positional writes while chunks arrive and read once when the upload is finished. It is always on
 * local disk, whatever the destination store; paths come from the upload id only (a UUID checked by
 * the caller), never from a client's file name.
 */
export class StagingArea {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'staging');
  }

  async init(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
  }

  pathOf(id: string): string {
    return path.join(this.dir, id);
  }

  /**
   * Creates the staging file with its final length. `ftruncate` gives a sparse file on Linux
   * filesystems; the space itself is accounted for by the ledger's reservations. The file and its
   * directory entry are fsynced so that a crash after the ledger row is written finds the file.
   */
  async create(id: string, size: number): Promise<void> {
    await this.sizeDurably(id, size, fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR);
    await syncDir(this.dir);
  }

  /** Sets the staging file's length once a deferred length is known (bytes already there stay). */
  async resize(id: string, size: number): Promise<void> {
    await this.sizeDurably(id, size, fsc.O_RDWR);
  }

  private async sizeDurably(id: string, size: number, flags: number): Promise<void> {
    const fh = await fs.open(this.pathOf(id), flags, 0o600);
    try {
      await fh.truncate(size);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Opens the staging file for positional writes; the caller closes the handle. */
  openForWrite(id: string): Promise<FileHandle> {
    return fs.open(this.pathOf(id), fsc.O_RDWR);
  }

  openForRead(id: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.pathOf(id), { highWaterMark: 1024 * 1024, ...range });
  }

  async exists(id: string): Promise<boolean> {
    try {
      await fs.access(this.pathOf(id));
      return true;
    } catch {
      return false;
    }
  }

  /** Removes the staging file; a file that is already gone is not an error. */
  async remove(id: string): Promise<void> {
    await fs.rm(this.pathOf(id), { force: true });
  }

  /** Names of every file in the staging directory (for start-up reconciliation). */
  async list(): Promise<string[]> {
    return fs.readdir(this.dir);
  }
}

/** fsyncs a directory so that a create, rename or unlink inside it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
