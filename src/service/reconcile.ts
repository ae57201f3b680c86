import type { FastifyBaseLogger as Logger } from 'fastify';
import type { Ledger, StoredLocation, Upload } from '../ledger/ledger.js';
import type { FileStore } from '../storage/file-store.js';
import type { StagingArea } from '../storage/staging-area.js';
import { hashStream } from './intake/body-writer.js';
import type { ReconcileReport } from './upload-types.js';

export interface ReconcileDeps {
  ledger: Ledger;
  staging: StagingArea;
  store: FileStore;
  log: Logger;
  now: () => number;
  /** On a shared ledger: this node; only its own uploads (and those of no node) are settled. */
  node?: string | undefined;
}

/**
 * Start-up reconciliation after any stop, clean or not. The ledger is the truth, but a crash can
 * leave it and the disk out of step; each case is settled explicitly and logged, and nothing is
 * ever marked completed without its published bytes being found:
 * - `finishing`: published already (the crash came between publishing and recording it) →
 *   completed, with the digest the store kept or one computed now; its bytes still staged →
 *   back to `uploading`, to be finished again; neither → failed.
 * - `uploading` with no staging file → failed (its bytes are gone); a direct upload has none (its
 *   parts are in the store) and goes on.
 * - staging files no unfinished upload owns → removed.
 * - leftovers of interrupted publishes (temporary files, S3 multipart uploads) → removed.
 */
export async function reconcile({ ledger, staging, store, log, now, node }: ReconcileDeps): Promise<ReconcileReport> {
  const report: ReconcileReport = { resumed: 0, completed: 0, failed: 0, orphansRemoved: 0, storeLeftoversRemoved: 0 };
  // (Another node's uploads are its own to settle: it may be finishing them right now.)
  for (const id of await ledger.idsWithStatus('finishing', node)) {
    const upload = (await ledger.get(id)) as Upload;
    const found = await store.locate(id, upload.fileName);
    if (found) {
      const sha256 = found.sha256 ?? upload.expectedSha256 ?? (await digestOf(store, found.location));
      await ledger.complete(id, sha256, found.location, now());
      await staging.remove(id);
      for (const part of upload.parts ?? []) await staging.remove(part);
      report.completed++;
      log.warn({ uploadId: id, event: 'recovered_completed' }, 'upload was published before the stop: recorded as completed');
    } else if (upload.multipart !== null || (await hasStagedBytes(staging, upload))) {
      // (Parts in the store - a direct upload, or chunks staged there - are assembled or reused again.)
      await ledger.transition(id, 'finishing', 'uploading', now());
      report.resumed++;
      log.warn({ uploadId: id, event: 'recovered_finishing' }, 'upload was finishing at the stop: it can be finished again');
    } else {
      await ledger.discard(id, { from: 'finishing', to: 'failed', now: now(), failure: 'its bytes were lost while finishing' });
      report.failed++;
      log.error({ uploadId: id, event: 'recovered_lost' }, 'upload was finishing at the stop and its bytes are gone');
    }
  }
  for (const id of await ledger.idsWithStatus('uploading', node)) {
    const upload = (await ledger.get(id)) as Upload;
    if (upload.multipart !== null || (await hasStagedBytes(staging, upload))) continue;
    await ledger.discard(id, { from: 'uploading', to: 'failed', now: now(), failure: 'its staging file was missing at start-up' });
    report.failed++;
    log.error({ uploadId: id, event: 'staging_missing' }, 'upload has no staging file: marked failed');
  }
  for (const name of await staging.list()) {
    const owner = await ledger.get(name);
    if (owner && (owner.status === 'uploading' || owner.status === 'finishing')) continue;
    await staging.remove(name);
    report.orphansRemoved++;
    log.warn({ file: name, event: 'orphan_staging_removed' }, 'staging file without an unfinished upload removed');
  }
  try {
    report.storeLeftoversRemoved = await store.cleanupIncomplete();
  } catch (err) {
    log.warn({ err, event: 'store_cleanup_unsupported' }, 'could not clean up interrupted publishes in the store');
  }
  return report;
}

async function hasStagedBytes(staging: StagingArea, upload: Upload): Promise<boolean> {
  if (!upload.parts) return staging.exists(upload.id);
  for (const part of upload.parts) if (!(await staging.exists(part))) return false;
  return true;
}

async function digestOf(store: FileStore, location: StoredLocation): Promise<string> {
  const download = await store.read(location);
  if (download.kind !== 'stream') throw new Error('a store that keeps no digest must be readable');
  return hashStream(download.stream);
}
