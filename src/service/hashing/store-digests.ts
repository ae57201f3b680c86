import type { Hash } from 'node:crypto';

/**
 * The whole-file SHA-256 of uploads staged in the store (STAGING_BACKEND=s3), kept while their
 * bytes arrive in order, so that finishing needs no read-back of the assembled object. The store
 * cannot be read before its parts are assembled, so bytes that arrive out of order (a chunk past a
 * gap) leave the digest where it is, and finish then reads the object back once. Memory only: after
 * a restart, or on another node, finish reads back too.
 */
export class StoreDigests {
  private readonly entries = new Map<string, { hash: Hash; upTo: number }>();

  /** A copy of the digest when it covers exactly [0, offset), to go on with bytes from there. */
  from(id: string, offset: number, fresh: () => Hash): Hash | undefined {
    if (offset === 0) return fresh();
    const e = this.entries.get(id);
    return e?.upTo === offset ? e.hash.copy() : undefined;
  }

  /** Bytes [from, upTo) were recorded and `hash` covers [0, upTo). */
  advanced(id: string, from: number, hash: Hash, upTo: number): void {
    const e = this.entries.get(id);
    if (from === 0 || e?.upTo === from) this.entries.set(id, { hash, upTo });
  }

  /** The file's SHA-256 (hex) when the digest covers exactly `size` bytes. */
  sha256(id: string, size: number): string | undefined {
    const e = this.entries.get(id);
    return e?.upTo === size ? e.hash.copy().digest('hex') : undefined;
  }

  forget(id: string): void {
    this.entries.delete(id);
  }
}
