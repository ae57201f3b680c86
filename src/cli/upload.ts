import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ApiError, type Api, type GridUpload, isGrid } from './api.js';
import { Progress, type OutputMode } from './progress.js';
import { ResumeState } from './resume-state.js';
import { formatBytes } from '../lib/units.js';

export interface UploadOptions {
  chunkSize: number | undefined;
  parallel: number;
  mode: OutputMode;
  /** Attempts per chunk before giving up (network errors, 5xx, 429, chunk_in_progress). */
  attempts?: number;
  /** Send the parts straight to the store (a direct upload), not through the server. */
  direct?: boolean;
  state?: ResumeState;
}

export interface UploadResult {
  file: string;
  id: string;
  sha256: string;
  size: number;
  location: unknown;
  resumed: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function retryable(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  return err.status === 0 || err.status >= 500 || err.status === 429 || err.code === 'chunk_in_progress';
}

/** Exponential backoff with jitter before the next attempt, or what the server asked for (Retry-After). */
function pause(err: unknown, attempt: number): Promise<void> {
  const backoff = Math.min(15_000, 250 * 2 ** (attempt - 1)) * (0.5 + Math.random());
  return sleep((err as ApiError).retryAfterMs ?? backoff);
}

/**
 * Calls the server again after what a load balancer or a restarting node answers (502-504, 429,
 * a refused connection), with backoff; `safe` calls (reads, finish - which a second call joins)
 * also after any network error. A create is not repeated after a connection that broke midway: it
 * may have been made.
 */
async function again<T>(call: () => Promise<T>, safe: boolean, attempts = 8): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const e = err as ApiError;
      const refused = e instanceof ApiError && e.status === 0 && /ECONNREFUSED/.test(e.message);
      const busy = e instanceof ApiError && (e.status === 502 || e.status === 503 || e.status === 504 || e.status === 429);
      if (attempt >= attempts || !(refused || busy || (safe && retryable(err)))) throw err;
      await pause(err, attempt);
    }
  }
}

/** Runs tasks with at most `limit` at once; `run` resolves when the task has a slot (so callers pace themselves). */
class Pool {
  private readonly running = new Set<Promise<void>>();
  private failure: unknown;

  constructor(private readonly limit: number) {}

  async run(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    if (this.failure) throw this.failure;
    const p: Promise<void> = task()
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async drain(): Promise<void> {
    await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }
}

/**
 * Uploads one file through the native API. The file is read once, in order: every chunk feeds the
 * whole-file SHA-256 and, if the server lacks it, is sent (with its own SHA-256) by a pool of
 * `parallel` senders - so memory stays at about parallel x chunk size. A re-run for the same file
 * (same server, path, size and mtime) resumes the same upload and sends only what is missing.
 */
export async function uploadFile(api: Api, file: string, opts: UploadOptions): Promise<UploadResult> {
  const absolute = path.resolve(file);
  const stat = await fs.stat(absolute);
  if (!stat.isFile()) throw new Error(`${file} is not a regular file`);
  const state = opts.state ?? new ResumeState();
  const key = ResumeState.key(api.server, absolute, stat.size, stat.mtimeMs);
  const label = path.basename(absolute);

  let upload: GridUpload | undefined;
  const known = await state.get(key);
  if (known) {
    try {
      const found = await again(() => api.status(known), true);
      const sameTransfer = (found.transfer === 'direct') === (opts.direct === true) || found.status === 'completed';
      if (isGrid(found) && sameTransfer && found.size === stat.size && (found.status === 'uploading' || found.status === 'completed')) upload = found;
    } catch (err) {
      if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 410)) throw err;
    }
  }
  const resumed = upload !== undefined;
  // Ctrl-C: say what is on the server and that running again resumes it; an upload this run
  // created and sent nothing to is aborted rather than left holding its reservation.
  let sent = 0;
  let createdHere: string | undefined;
  let creating: Promise<{ id: string }> | undefined;
  let progress: Progress | undefined;
  const onInterrupt = () => {
    progress?.stop();
    const id = upload?.id ?? createdHere;
    const exit = () => process.exit(130);
    // Interrupted while the server was creating it: it is aborted as soon as it exists.
    const toAbort = id !== undefined ? Promise.resolve(id) : creating?.then((c) => c.id);
    if (toAbort === undefined) return exit();
    if (!resumed && sent === 0) {
      void toAbort
        .then(async (created) => {
          await api.abort(created);
          process.stderr.write(`\n${label}: interrupted before any chunk was sent; upload ${created} was aborted\n`);
        })
        .then(() => process.stderr.write(`\n${label}: interrupted before any chunk was sent; upload ${id} was aborted\n`))
        .catch(() => process.stderr.write(`\n${label}: interrupted; the upload was created with nothing sent and could not be aborted\n`))
        .finally(exit);
      return;
    }
    const have = upload ? `${formatBytes(progress?.acknowledged ?? 0)} of ${formatBytes(stat.size)}` : 'nothing yet';
    process.stderr.write(`\n${label}: interrupted; ${have} is on the server as upload ${id}. Run the same command again to resume.\n`);
    exit();
  };
  process.once('SIGINT', onInterrupt);
  try {
    return await send();
  } finally {
    process.removeListener('SIGINT', onInterrupt);
  }

  async function send(): Promise<UploadResult> {
    if (!upload) {
      const request = again(
        () =>
          api.create({
            file_name: label,
            size: stat.size,
            ...(opts.chunkSize && { chunk_size: opts.chunkSize }),
            ...(opts.direct && { transfer: 'direct' as const }),
          }),
        false,
      );
      creating = request;
      const created = await request;
      createdHere = created.id;
      if (!isGrid(created)) throw new Error(`the server created upload ${created.id} without a chunk grid`);
      // Remembered before any chunk goes out, so that an interrupted run can always be resumed.
      await state.set(key, created.id);
      upload = created;
    }
    const grid = upload;
    const missing = new Set(upload.status === 'completed' ? [] : await again(() => api.missingChunks(grid), true));
    let already = 0;
    for (let i = 0; i < upload.total_chunks; i++) if (!missing.has(i)) already += Math.min(upload.chunk_size, stat.size - i * upload.chunk_size);
    progress = new Progress(opts.mode, label, stat.size, already);
    try {
      if (resumed) {
        progress.note(`resuming upload ${upload.id}: ${upload.total_chunks - missing.size} of ${upload.total_chunks} chunks are already on the server`, {
          id: upload.id,
          missing: missing.size,
        });
      }
      const whole = createHash('sha256');
      const pool = new Pool(Math.max(1, opts.parallel));
      const fh = await fs.open(absolute, 'r');
      try {
        for (let i = 0; i < upload.total_chunks; i++) {
          const offset = i * upload.chunk_size;
          const length = Math.min(upload.chunk_size, stat.size - offset);
          const buf = Buffer.allocUnsafe(length);
          let read = 0;
          while (read < length) {
            const { bytesRead } = await fh.read(buf, read, length - read, offset + read);
            if (bytesRead === 0) throw new Error(`${file} changed while it was being uploaded`);
            read += bytesRead;
          }
          whole.update(buf);
          if (!missing.has(i)) continue;
          const id = upload.id;
          const shown = progress;
          await pool.run(async () => {
            if (opts.direct) await sendPart(api, id, i, buf, opts.attempts ?? 8);
            else await sendChunk(api, id, i, buf, opts.attempts ?? 8);
            sent++;
            shown.add(length);
          });
        }
        await pool.drain();
      } finally {
        await fh.close();
      }
      const sha256 = whole.digest('hex');
      const done =
        upload.status === 'completed'
          ? { id: upload.id, sha256: upload.sha256 as string, size: upload.size, location: upload.location }
          : await again(() => api.finish(grid.id, sha256), true);
      if (done.sha256 !== sha256) throw new Error(`the server stored ${done.sha256}, the file is ${sha256}`);
      await state.set(key, undefined);
      return { file, id: done.id, sha256, size: done.size, location: done.location, resumed };
    } finally {
      progress.stop();
    }
  }
}

/**
 * A direct upload's part: a URL that signs its SHA-256, the PUT to it, then the report of its
 * ETag. A refused URL (expired) is asked for again on the next attempt.
 */
async function sendPart(api: Api, id: string, index: number, bytes: Buffer, attempts: number): Promise<void> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  for (let attempt = 1; ; attempt++) {
    try {
      const target = await api.partUrl(id, index + 1, sha256);
      const etag = await api.putPart(target, bytes);
      await api.reportPart(id, index + 1, etag, sha256);
      return;
    } catch (err) {
      const refused = err instanceof ApiError && err.code === 'part_url_refused';
      if ((!retryable(err) && !refused) || attempt >= attempts) throw err;
      await pause(err, attempt);
    }
  }
}

/** A chunk: sent again after a network error, a 5xx, a 429 or chunk_in_progress (a PUT of the same bytes is idempotent). */
async function sendChunk(api: Api, id: string, index: number, bytes: Buffer, attempts: number): Promise<void> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await again(() => api.putChunk(id, index, bytes, sha256), true, attempts);
}
