import type pg from 'pg';
import { type EventRow, eventData, toEvent } from './event-data.js';
import type { Delivery, DeliveryStats, EndpointSpec, EventLedger, EventType, LedgerEvent } from './ledger-events.js';
import type { Upload } from './ledger.js';
import { type Client, type Pool, type Queryable, inTransaction } from './pg-db.js';

/** The channel a commit that wrote events notifies, so that every node's dispatcher looks for work. */
const CHANNEL = 'sluice_events';

/** The advisory lock event writers hold until their commit ("slev" in ASCII). */
const EVENTS_LOCK = 0x736c6576;

/** An upload's oldest pending delivery on an endpoint: only it may be due (order per upload). */
const HEAD_OF_LINE = `NOT EXISTS (SELECT 1 FROM webhook_deliveries o WHERE o.endpoint = d.endpoint AND o.upload_id = d.upload_id
                                   AND o.state = 'pending' AND o.event_id < d.event_id)`;

/**
 * The PostgreSQL outbox (see EventLedger). `note` runs on the client of the ledger transaction
 * that makes the change; its NOTIFY is delivered only if that transaction commits. Claims use row
 * locks with SKIP LOCKED, so that nodes sending at once never take the same delivery.
 */
export class PgEvents implements EventLedger {
  private readonly listeners = new Set<() => void>();
  private listening: pg.PoolClient | undefined;
  private closed = false;

  constructor(
    private readonly pool: Pool,
    private readonly opts: { progressIntervalMs: number },
  ) {}

  onWritten(listener: () => void): () => void {
    this.listeners.add(listener);
    void this.listen().catch(() => {});
    return () => this.listeners.delete(listener);
  }

  /**
   * One client per process listens for every node's commits (this node's own among them). A lost
   * connection (PostgreSQL restarted) is replaced; the dispatchers also look for work on a timer,
   * so nothing waits on a notification alone.
   */
  private async listen(): Promise<void> {
    if (this.listening || this.closed) return;
    const client = await this.pool.connect();
    this.listening = client;
    client.on('notification', () => {
      for (const listener of this.listeners) listener();
    });
    const lost = () => {
      if (this.listening !== client) return;
      this.listening = undefined;
      client.release(true);
      setTimeout(() => void this.listen().catch(() => {}), 1000).unref();
    };
    client.once('error', lost);
    client.once('end', lost);
    await client.query(`LISTEN ${CHANNEL}`);
  }

  /**
   * Writes an event for `upload` as it is now, in the caller's transaction. An id is taken at
   * insert but seen at commit, so two transactions could show their ids out of order and an
   * endpoint's cursor skip the later-committed lower one: event writers take turns until their
   * commit (a transaction-level advisory lock), so ids become visible in order.
   */
  async note(q: Client, type: EventType, upload: Upload, now: number): Promise<void> {
    await q.query('SELECT pg_advisory_xact_lock($1)', [EVENTS_LOCK]);
    await q.query('INSERT INTO events (type, owner, upload_id, data, created_at) VALUES ($1, $2, $3, $4, $5)', [
      type,
      upload.owner,
      upload.id,
      JSON.stringify(eventData(upload)),
      now,
    ]);
    await q.query(`SELECT pg_notify('${CHANNEL}', '')`);
  }

  /** Whether an `upload.progress` event is due now (the interval then starts again). */
  async progressDue(q: Client, id: string, now: number): Promise<boolean> {
    if (this.opts.progressIntervalMs <= 0) return false;
    const r = await q.query(
      `UPDATE uploads SET progress_at = $2 WHERE id = $1 AND status = 'uploading' AND COALESCE(progress_at, created_at) <= $2::bigint - $3::bigint RETURNING id`,
      [id, now, this.opts.progressIntervalMs],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async list(owner: string, after: number, limit: number): Promise<LedgerEvent[]> {
    const r = await this.pool.query<EventRow>('SELECT * FROM events WHERE owner = $1 AND id > $2 ORDER BY id LIMIT $3', [owner, after, limit]);
    return r.rows.map(toEvent);
  }

  async syncEndpoints(specs: readonly EndpointSpec[]): Promise<string[]> {
    return inTransaction(this.pool, async (q) => {
      // Nodes starting together agree on one set of endpoints.
      await q.query('LOCK TABLE webhook_endpoints IN SHARE ROW EXCLUSIVE MODE');
      const existing = new Map(
        (await q.query<{ url: string; stopped_at: number | null }>('SELECT url, stopped_at FROM webhook_endpoints')).rows.map((r) => [r.url, r.stopped_at]),
      );
      const newest = (await q.query<{ id: number }>('SELECT COALESCE(MAX(id), 0) AS id FROM events')).rows[0]?.id ?? 0;
      for (const spec of specs) {
        const types = spec.types ? JSON.stringify(spec.types) : null;
        if (existing.has(spec.url)) await q.query('UPDATE webhook_endpoints SET types = $1 WHERE url = $2', [types, spec.url]);
        else await q.query('INSERT INTO webhook_endpoints (url, cursor, types) VALUES ($1, $2, $3)', [spec.url, newest, types]);
      }
      const configured = new Set(specs.map((s) => s.url));
      for (const url of existing.keys()) if (!configured.has(url)) await q.query('DELETE FROM webhook_endpoints WHERE url = $1', [url]);
      return [...existing].filter(([url, stopped]) => stopped !== null && configured.has(url)).map(([url]) => url);
    });
  }

  /** Turns the events past the endpoint's cursor into pending deliveries, with the cursor's move. */
  private async fanOut(q: Queryable, endpoint: string, now: number): Promise<void> {
    const ep = (
      await q.query<{ cursor: number; types: string | null; stopped_at: number | null }>(
        'SELECT cursor, types, stopped_at FROM webhook_endpoints WHERE url = $1 FOR UPDATE',
        [endpoint],
      )
    ).rows[0];
    if (!ep || ep.stopped_at !== null) return;
    const types = ep.types === null ? null : (JSON.parse(ep.types) as string[]);
    // (Events commit in id order - see note - so nothing can appear behind the cursor later.)
    const moved = await q.query<{ id: number }>(
      `WITH visible AS (
         SELECT id, type, upload_id, created_at FROM events WHERE id > $1 ORDER BY id LIMIT 1000),
       added AS (
         INSERT INTO webhook_deliveries (endpoint, event_id, upload_id, state, next_at, created_at)
         SELECT $2, id, upload_id, 'pending', $3, created_at FROM visible WHERE $4::text[] IS NULL OR type = ANY($4::text[])
         ON CONFLICT DO NOTHING)
       SELECT COALESCE(MAX(id), $1) AS id FROM visible`,
      [ep.cursor, endpoint, now, types],
    );
    const cursor = moved.rows[0]?.id ?? ep.cursor;
    if (cursor !== ep.cursor) await q.query('UPDATE webhook_endpoints SET cursor = $1 WHERE url = $2', [cursor, endpoint]);
  }

  async due(endpoint: string, now: number, limit: number, leaseMs: number): Promise<Delivery[]> {
    return inTransaction(this.pool, async (q) => {
      await this.fanOut(q, endpoint, now);
      const r = await q.query<EventRow & { attempts: number }>(
        `WITH claimed AS (
           SELECT d.endpoint, d.event_id FROM webhook_deliveries d
           WHERE d.endpoint = $1 AND d.state = 'pending' AND d.next_at <= $2 AND ${HEAD_OF_LINE}
           ORDER BY d.event_id LIMIT $3 FOR UPDATE SKIP LOCKED),
         moved AS (
           UPDATE webhook_deliveries w SET next_at = $4 FROM claimed c
           WHERE w.endpoint = c.endpoint AND w.event_id = c.event_id RETURNING w.event_id, w.attempts)
         SELECT m.attempts, e.* FROM moved m JOIN events e ON e.id = m.event_id ORDER BY e.id`,
        [endpoint, now, limit, now + leaseMs],
      );
      return r.rows.map((row) => ({ endpoint, attempts: row.attempts, event: toEvent(row) }));
    });
  }

  async nextDue(endpoint: string): Promise<number | undefined> {
    const r = await this.pool.query<{ at: number | null }>(
      `SELECT MIN(d.next_at) AS at FROM webhook_deliveries d WHERE d.endpoint = $1 AND d.state = 'pending' AND ${HEAD_OF_LINE}`,
      [endpoint],
    );
    return r.rows[0]?.at ?? undefined;
  }

  async delivered(endpoint: string, eventId: number, now: number): Promise<void> {
    await this.pool.query(
      `UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, done_at = $1, last_error = NULL
       WHERE endpoint = $2 AND event_id = $3 AND state = 'pending'`,
      [now, endpoint, eventId],
    );
  }

  async failed(endpoint: string, eventId: number, error: string, retryAt: number | null, now: number): Promise<void> {
    if (retryAt === null) {
      await this.pool.query(
        `UPDATE webhook_deliveries SET state = 'dead', attempts = attempts + 1, done_at = $1, last_error = $2
         WHERE endpoint = $3 AND event_id = $4 AND state = 'pending'`,
        [now, error, endpoint, eventId],
      );
    } else {
      await this.pool.query(
        `UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = $1, last_error = $2 WHERE endpoint = $3 AND event_id = $4 AND state = 'pending'`,
        [retryAt, error, endpoint, eventId],
      );
    }
  }

  async stop(endpoint: string, note: string, now: number): Promise<void> {
    await inTransaction(this.pool, async (q) => {
      await q.query('UPDATE webhook_endpoints SET stopped_at = $1, stop_note = $2 WHERE url = $3', [now, note, endpoint]);
      await q.query(`UPDATE webhook_deliveries SET state = 'dead', done_at = $1, last_error = $2 WHERE endpoint = $3 AND state = 'pending'`, [
        now,
        note,
        endpoint,
      ]);
    });
  }

  async stats(): Promise<DeliveryStats> {
    const r = await this.pool.query<{ pending: number; oldest: number | null }>(
      `SELECT COUNT(*)::int AS pending, MIN(created_at) AS oldest FROM webhook_deliveries WHERE state = 'pending'`,
    );
    return { pending: r.rows[0]?.pending ?? 0, oldestPendingAt: r.rows[0]?.oldest ?? undefined };
  }

  async prune(before: number): Promise<number> {
    return inTransaction(this.pool, async (q) => {
      await q.query(`DELETE FROM webhook_deliveries WHERE state <> 'pending' AND event_id IN (SELECT id FROM events WHERE created_at < $1)`, [before]);
      const r = await q.query('DELETE FROM events WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = events.id)', [
        before,
      ]);
      return r.rowCount ?? 0;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.listening;
    this.listening = undefined;
    client?.release();
  }
}
