import { NODE_GONE_AFTER_MS, type Context } from './context.js';
import { discard } from './discard.js';

/** Expires one upload if it is still uploading; removes its staging bytes. */
export async function expire(c: Context, id: string): Promise<boolean> {
  if (!(await discard(c, id, { from: 'uploading', to: 'expired', now: c.now() }))) return false;
  c.log.info({ uploadId: id, event: 'upload_expired' }, 'upload expired');
  c.emit({ type: 'expired' });
  return true;
}

/** Expires every upload whose time is up; returns how many. Used by the sweeper and `npm run cleanup`. */
export async function expireDue(c: Context): Promise<number> {
  let count = 0;
  for (;;) {
    // On a shared ledger: this node's, those staged in the store, and those of nodes gone silent.
    const me = c.config.node?.id;
    const ids = await c.ledger.dueForExpiry(c.now(), 100, me === undefined ? undefined : { id: me, deadBefore: c.now() - NODE_GONE_AFTER_MS });
    if (ids.length === 0) return count;
    for (const id of ids) if (await expire(c, id)) count++;
  }
}
