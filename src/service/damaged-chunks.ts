import type { Ledger, Upload } from '../ledger/ledger.js';
import type { StagingArea } from '../storage/staging-area.js';
import { hashStream } from './intake/body-writer.js';

/** Chunk rows read per ledger query while checking. */
const PAGE = 256;

/**
 * The chunks of a grid upload whose bytes in the staging file no longer hash to the SHA-256
 * recorded when they arrived (damaged at rest: a bad disk, a stray write). Reads the file once,
 * chunk by chunk, in bounded memory; used only after the whole file failed its digest.
 */
export async function damagedChunks(ledger: Ledger, staging: StagingArea, upload: Upload): Promise<number[]> {
  const damaged: number[] = [];
  for (let from = 0; ; ) {
    const page = await ledger.chunks(upload.id, from, PAGE);
    if (page.length === 0) return damaged;
    for (const chunk of page) {
      if (chunk.length === 0) continue;
      const now = await hashStream(staging.openForRead(upload.id, { start: chunk.offset, end: chunk.offset + chunk.length - 1 }));
      if (now !== chunk.sha256) damaged.push(chunk.index);
    }
    from = (page[page.length - 1] as { index: number }).index + 1;
  }
}
