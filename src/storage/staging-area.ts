import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createReadStream } from 'node:fs';
import { StagingHandle, nodeIo, type StagingIo } from './staging-handle.js';

/** How long a staging file stays open after the last request writing it is done. */
const HANDLE_IDLE_MS = 2000;
/** Idle open staging files kept at most; beyond that a released handle closes at once. */
const MAX_IDLE_HANDLES = 64;

/** A staging file open for writing, shared; `release()` once done with it (more calls do nothing). */
export interface StagingLease {
  handle: StagingHandle;
  release: () => void;
}

/**
 * The staging area: one preallocated file per upload under `DATA_DIR/staging/<id>`, written with
 * positional writes while chunks arrive and read once when the upload is finished. It is always on
 * local disk, whatever the destination store; paths come from the upload id only (a UUID checked by
 * the caller), never from a client's file name.
 */
export class StagingArea {
  readonly dir: string;
  private readonly handles = new Map<string, { opening: Promise<StagingHandle>; handle: StagingHandle | null }>();
  private idleHandles = 0;
  private closed = false;

  private readonly idleMs: number;
  private readonly maxIdle: number;

  private readonly io: StagingIo;

  /**
   * `handles` tunes how long (and how many) released write handles stay open; tests shorten it,
   * and inject `io` to fail writes and flushes as a failing disk would.
   */
  constructor(dataDir: string, handles: { idleMs?: number; maxIdle?: number; io?: StagingIo } = {}) {
    this.dir = path.join(dataDir, 'staging');
    this.idleMs = handles.idleMs ?? HANDLE_IDLE_MS;
    this.maxIdle = handles.maxIdle ?? MAX_IDLE_HANDLES;
    this.io = handles.io ?? nodeIo;
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

  /**
   * A handle on the staging file for positional writes; give it back with `release()`. Requests
   * writing the same upload share one open file, and it stays open for a moment after the last of
   * them, so that a client sending chunk after chunk does not pay an open and a close per chunk
   * (with 64 KiB chunks that was a tenth of the request rate; BENCHMARKS.md item 14). A handle that
   * saw an I/O error is never handed out again: the next writer gets a fresh descriptor.
   */
  async openForWrite(id: string): Promise<StagingLease> {
    let entry = this.handles.get(id);
    if (entry?.handle?.poisoned) {
      this.handles.delete(id);
      if (entry.handle.users === 0) this.closeHandle(entry.handle);
      entry = undefined;
    }
    if (entry === undefined) {
      const opening = fs.open(this.pathOf(id), fsc.O_RDWR).then((fh) => new StagingHandle(fh, this.io));
      const created = { opening, handle: null as StagingHandle | null };
      this.handles.set(id, created);
      entry = created;
      // A file that cannot be opened is not kept: the next request tries again.
      opening.then(
        (h) => {
          created.handle = h;
        },
        () => {
          if (this.handles.get(id) === created) this.handles.delete(id);
        },
      );
    }
    const handle = await entry.opening;
    this.wake(handle);
    handle.users++;
    let released = false;
    return {
      handle,
      release: () => {
        if (released) return;
        released = true;
        if (--handle.users > 0) return;
        const current = this.handles.get(id)?.handle === handle;
        if (!current || handle.removed || handle.poisoned || this.closed || this.idleHandles >= this.maxIdle) {
          if (current) this.handles.delete(id);
          this.closeHandle(handle);
          return;
        }
        this.idleHandles++;
        handle.idle = setTimeout(() => {
          this.wake(handle);
          if (this.handles.get(id)?.handle === handle) this.handles.delete(id);
          this.closeHandle(handle);
        }, this.idleMs);
        handle.idle.unref();
      },
    };
  }

  /** Stops an idle handle's countdown to closing (it is in use again, or closing now). */
  private wake(handle: StagingHandle): void {
    if (handle.idle === null) return;
    clearTimeout(handle.idle);
    handle.idle = null;
    this.idleHandles--;
  }

  private closeHandle(handle: StagingHandle): void {
    handle.fh.close().catch(() => {});
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

  /**
   * Removes the staging file; a file that is already gone is not an error. Its shared handle is
   * closed now, or by the last request still holding it (whose writes go nowhere, as they would
   * with a handle of its own).
   */
  async remove(id: string): Promise<void> {
    const entry = this.handles.get(id);
    if (entry) {
      this.handles.delete(id);
      entry.opening.then(
        (handle) => {
          handle.removed = true;
          this.wake(handle);
          if (handle.users === 0) this.closeHandle(handle);
        },
        () => {},
      );
    }
    await fs.rm(this.pathOf(id), { force: true });
  }

  /** Closes the handles no request holds; the rest close as their requests end. */
  close(): void {
    this.closed = true;
    for (const [id, entry] of this.handles) {
      const handle = entry.handle;
      if (!handle || handle.users > 0) continue;
      this.wake(handle);
      this.handles.delete(id);
      this.closeHandle(handle);
    }
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
