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

/**
 * Several nodes: an upload staged in the store that a node left `finishing` when it stopped (and
 * has not come back to, in NODE_GONE_AFTER_MS) can be finished again through any node. Returns how many.
 */
export async function reopenAbandoned(c: Context): Promise<number> {
  if (!c.config.node) return 0;
  let count = 0;
  for (const id of await c.ledger.abandonedFinishing(c.now() - NODE_GONE_AFTER_MS)) {
    if (await c.ledger.transition(id, 'finishing', 'uploading', c.now(), 'the node finishing it stopped; finish again')) {
      c.log.warn({ uploadId: id, event: 'finish_taken_over' }, 'an upload a stopped node was finishing can be finished again');
      count++;
    }
  }
  return count;
}
