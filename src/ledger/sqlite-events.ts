import type { Statement } from 'better-sqlite3';
import type { Db } from './database.js';
import type { Delivery, DeliveryStats, EndpointSpec, EventLedger, EventType, LedgerEvent } from './ledger-events.js';
import { type EventRow, eventData, toEvent } from './event-data.js';
import type { Upload } from './ledger.js';

const SQL = {
  insert: 'INSERT INTO events (type, owner, upload_id, data, created_at) VALUES (?, ?, ?, ?, ?)',
  // At most one progress event per interval: the guard moves progress_at in the same statement.
  progressDue: `
    UPDATE uploads SET progress_at = @now
    WHERE id = @id AND status = 'uploading' AND COALESCE(progress_at, created_at) <= @now - @interval RETURNING id`,
  list: 'SELECT * FROM events WHERE owner = ? AND id > ? ORDER BY id LIMIT ?',
  newest: 'SELECT COALESCE(MAX(id), 0) AS id FROM events',
  endpoints: 'SELECT url, types, stopped_at FROM webhook_endpoints',
  addEndpoint: 'INSERT INTO webhook_endpoints (url, cursor, types) VALUES (?, ?, ?)',
  setTypes: 'UPDATE webhook_endpoints SET types = ? WHERE url = ?',
  dropEndpoint: 'DELETE FROM webhook_endpoints WHERE url = ?',
  endpoint: 'SELECT cursor, types, stopped_at FROM webhook_endpoints WHERE url = ?',
  after: 'SELECT id, type, upload_id, created_at FROM events WHERE id > ? ORDER BY id LIMIT 500',
  moveCursor: 'UPDATE webhook_endpoints SET cursor = ? WHERE url = ?',
  addDelivery: `
    INSERT OR IGNORE INTO webhook_deliveries (endpoint, event_id, upload_id, state, next_at, created_at)
    VALUES (?, ?, ?, 'pending', ?, ?)`,
  // An upload's oldest pending delivery only: its later events wait for it (order per upload).
  due: `
    SELECT d.event_id, d.attempts, e.* FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
    WHERE d.endpoint = @endpoint AND d.state = 'pending' AND d.next_at <= @now
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.endpoint = d.endpoint AND o.upload_id = d.upload_id
                      AND o.state = 'pending' AND o.event_id < d.event_id)
    ORDER BY d.event_id LIMIT @limit`,
  // Among each upload's oldest pending delivery only: the later ones are not due before it is done.
  claim: `UPDATE webhook_deliveries SET next_at = ? WHERE endpoint = ? AND event_id = ? AND state = 'pending'`,
  nextDue: `
    SELECT MIN(d.next_at) AS at FROM webhook_deliveries d WHERE d.endpoint = ? AND d.state = 'pending'
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.endpoint = d.endpoint AND o.upload_id = d.upload_id
                      AND o.state = 'pending' AND o.event_id < d.event_id)`,
  delivered: `UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, done_at = ?, last_error = NULL
              WHERE endpoint = ? AND event_id = ? AND state = 'pending'`,
  retry: `UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = ?, last_error = ?
          WHERE endpoint = ? AND event_id = ? AND state = 'pending'`,
  dead: `UPDATE webhook_deliveries SET state = 'dead', attempts = attempts + 1, done_at = ?, last_error = ?
         WHERE endpoint = ? AND event_id = ? AND state = 'pending'`,
  stop: 'UPDATE webhook_endpoints SET stopped_at = ?, stop_note = ? WHERE url = ?',
  stopPending: `UPDATE webhook_deliveries SET state = 'dead', done_at = ?, last_error = ? WHERE endpoint = ? AND state = 'pending'`,
  stats: `SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM webhook_deliveries WHERE state = 'pending'`,
  pruneDeliveries: `
    DELETE FROM webhook_deliveries WHERE state <> 'pending' AND event_id IN (SELECT id FROM events WHERE created_at < ?)`,
  pruneEvents: `
    DELETE FROM events WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id)`,
} as const;

type Stmts = { [K in keyof typeof SQL]: Statement };

/**
 * The SQLite outbox. `note` and `progress` are called inside the ledger's own transactions (the
 * event commits with the change, or not at all); the rest serves the webhook dispatcher.
 */
export class SqliteEvents implements EventLedger {
  private readonly s: Stmts;
  private readonly listeners = new Set<() => void>();
  private wake = false;

  constructor(
    private readonly db: Db,
    private readonly opts: { progressIntervalMs: number },
  ) {
    this.s = Object.fromEntries(Object.entries(SQL).map(([k, sql]) => [k, db.prepare(sql)])) as Stmts;
  }

  /** Told (soon after the commit) that events were written; a dispatcher then looks for work. */
  onWritten(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Writes an event for `upload` as it is now; inside the caller's transaction. */
  note(type: EventType, upload: Upload, now: number): void {
    this.s.insert.run(type, upload.owner, upload.id, JSON.stringify(eventData(upload)), now);
    if (this.wake || this.listeners.size === 0) return;
    this.wake = true;
    // After the transaction that wrote it has committed (better-sqlite3 is synchronous).
    setImmediate(() => {
      this.wake = false;
      for (const listener of this.listeners) listener();
    });
  }

  /** Whether an `upload.progress` event is due now (and, if so, the interval starts again). */
  progressDue(id: string, now: number): boolean {
    if (this.opts.progressIntervalMs <= 0) return false;
    return this.s.progressDue.get({ id, now, interval: this.opts.progressIntervalMs }) !== undefined;
  }

  async list(owner: string, after: number, limit: number): Promise<LedgerEvent[]> {
    return (this.s.list.all(owner, after, limit) as EventRow[]).map(toEvent);
  }

  async syncEndpoints(specs: readonly EndpointSpec[]): Promise<string[]> {
    return this.db
      .transaction(() => {
        const existing = new Map((this.s.endpoints.all() as { url: string; stopped_at: number | null }[]).map((r) => [r.url, r.stopped_at]));
        const newest = (this.s.newest.get() as { id: number }).id;
        for (const spec of specs) {
          const types = spec.types ? JSON.stringify(spec.types) : null;
          if (existing.has(spec.url)) this.s.setTypes.run(types, spec.url);
          else this.s.addEndpoint.run(spec.url, newest, types);
        }
        const configured = new Set(specs.map((s) => s.url));
        for (const url of existing.keys()) if (!configured.has(url)) this.s.dropEndpoint.run(url);
        return [...existing].filter(([url, stopped]) => stopped !== null && configured.has(url)).map(([url]) => url);
      })
      .immediate();
  }

  /** Turns the events past the endpoint's cursor into pending deliveries (one transaction). */
  private fanOut(endpoint: string, now: number): void {
    this.db
      .transaction(() => {
        const ep = this.s.endpoint.get(endpoint) as { cursor: number; types: string | null; stopped_at: number | null } | undefined;
        if (!ep || ep.stopped_at !== null) return;
        const types = ep.types === null ? undefined : new Set(JSON.parse(ep.types) as string[]);
        let cursor = ep.cursor;
        for (;;) {
          const rows = this.s.after.all(cursor) as { id: number; type: string; upload_id: string; created_at: number }[];
          for (const row of rows) {
            if (!types || types.has(row.type)) this.s.addDelivery.run(endpoint, row.id, row.upload_id, now, row.created_at);
            cursor = row.id;
          }
          if (rows.length < 500) break;
        }
        if (cursor !== ep.cursor) this.s.moveCursor.run(cursor, endpoint);
      })
      .immediate();
  }

  async due(endpoint: string, now: number, limit: number, leaseMs: number): Promise<Delivery[]> {
    this.fanOut(endpoint, now);
    return this.db.transaction(() => {
      const rows = this.s.due.all({ endpoint, now, limit }) as (EventRow & { attempts: number })[];
      for (const row of rows) this.s.claim.run(now + leaseMs, endpoint, row.id);
      return rows.map((row) => ({ endpoint, attempts: row.attempts, event: toEvent(row) }));
    })();
  }

  async nextDue(endpoint: string): Promise<number | undefined> {
    return (this.s.nextDue.get(endpoint) as { at: number | null }).at ?? undefined;
  }

  async delivered(endpoint: string, eventId: number, now: number): Promise<void> {
    this.s.delivered.run(now, endpoint, eventId);
  }

  async failed(endpoint: string, eventId: number, error: string, retryAt: number | null, now: number): Promise<void> {
    if (retryAt === null) this.s.dead.run(now, error, endpoint, eventId);
    else this.s.retry.run(retryAt, error, endpoint, eventId);
  }

  async stop(endpoint: string, note: string, now: number): Promise<void> {
    this.db.transaction(() => {
      this.s.stop.run(now, note, endpoint);
      this.s.stopPending.run(now, note, endpoint);
    })();
  }

  async stats(): Promise<DeliveryStats> {
    const row = this.s.stats.get() as { pending: number; oldest: number | null };
    return { pending: row.pending, oldestPendingAt: row.oldest ?? undefined };
  }

  async prune(before: number): Promise<number> {
    return this.db.transaction(() => {
      this.s.pruneDeliveries.run(before);
      return this.s.pruneEvents.run(before).changes;
    })();
  }
}
