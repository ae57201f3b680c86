import type { FastifyBaseLogger as Logger } from 'fastify';
import type { Delivery, EndpointSpec, EventLedger, LedgerEvent } from '../ledger/ledger.js';
import { describeFailure, type SignedPoster } from './signed-post.js';

/** Longest wait between two tries of one delivery, whatever the backoff has reached. */
const MAX_BACKOFF_MS = 3600_000;

/** Deliveries in flight per endpoint (each for a different upload). */
const IN_FLIGHT = 8;

/** How often the outbox is looked at without being told (notifications can be lost). */
const POLL_MS = 5000;

/** How much longer than WEBHOOK_TIMEOUT a claimed delivery stays with the node that claimed it. */
const CLAIM_MARGIN_MS = 5000;

export interface DispatcherOptions {
  events: EventLedger;
  endpoints: readonly EndpointSpec[];
  poster: SignedPoster;
  log: Logger;
  timeoutMs: number;
  /** A delivery is tried until this long after its event was written, then given up. */
  retryForMs: number;
  /** The first retry's delay; each next one doubles, to at most an hour, with jitter. */
  retryMinMs: number;
  now?: () => number;
  random?: () => number;
  /** Adds what the HTTP side knows (signed links) to an event's data before it is sent. */
  enrich?: (event: LedgerEvent) => Record<string, unknown>;
  /** Told of each attempt's outcome (metrics). */
  onAttempt?: (outcome: 'delivered' | 'failed' | 'dead') => void;
}

/**
 * "Exponential backoff with jitter": the n-th retry waits between half and all of
 * min(retryMin x 2^(n-1), 1 h), so that many failed deliveries do not come back at the same instant.
 */
export function backoffMs(attempts: number, retryMinMs: number, random: () => number): number {
  const ceiling = Math.min(retryMinMs * 2 ** Math.max(0, attempts - 1), MAX_BACKOFF_MS);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** The JSON body of a webhook (Standard Webhooks' recommended shape). */
export function webhookBody(event: LedgerEvent, data: Record<string, unknown>): { type: string; timestamp: string; data: Record<string, unknown> } {
  return { type: event.type, timestamp: new Date(event.createdAt).toISOString(), data };
}

/**
 * Sends the outbox to the configured endpoints: at least once (an event is marked delivered only
 * after a 2xx), in order per upload (an upload's next event waits until the one before is
 * delivered or given up), retried with backoff for `retryForMs`; 410 Gone stops the endpoint.
 * Runs beside the uploads and never holds one up: a slow receiver only delays its own deliveries.
 * Its state is the ledger's delivery rows, so a restart (or a SIGKILL) picks up where it stopped.
 */
export class WebhookDispatcher {
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly inFlight = new Map<string, Set<number>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<string>();
  private readonly again = new Set<string>();
  private stopped = false;
  private unsubscribe: (() => void) | undefined;
  private poll: NodeJS.Timeout | undefined;
  private readonly work = new Set<Promise<void>>();
  /** Aborts the requests in flight at shutdown (their deliveries stay pending, sent after a restart). */
  private readonly halt = new AbortController();

  constructor(private readonly o: DispatcherOptions) {
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
  }

  get endpoints(): readonly EndpointSpec[] {
    return this.o.endpoints;
  }

  async start(): Promise<void> {
    const stopped = await this.o.events.syncEndpoints(this.o.endpoints);
    for (const url of stopped)
      this.o.log.warn(
        { endpoint: url, event: 'webhook_endpoint_stopped' },
        'a webhook endpoint answered 410 Gone earlier: nothing is sent to it until it is removed from the configuration and added again',
      );
    if (this.o.endpoints.length === 0) return;
    this.unsubscribe = this.o.events.onWritten(() => this.kickAll());
    // A safety net beside the notifications (another node's commit, a lost LISTEN connection).
    this.poll = setInterval(() => this.kickAll(), POLL_MS);
    this.poll.unref();
    this.kickAll();
  }

  /** Stops sending; attempts in flight are left to finish (or time out) on their own. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.halt.abort();
    if (this.poll) clearInterval(this.poll);
    this.unsubscribe?.();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.work]);
  }

  kickAll(): void {
    for (const { url } of this.o.endpoints) this.kick(url);
  }

  private kick(endpoint: string): void {
    if (this.stopped) return;
    if (this.running.has(endpoint)) {
      this.again.add(endpoint);
      return;
    }
    this.running.add(endpoint);
    const job = this.pump(endpoint)
      .catch((err: unknown) => this.o.log.error({ err, endpoint, event: 'webhook_dispatch_failed' }, 'reading the event outbox failed'))
      .finally(() => {
        this.running.delete(endpoint);
        this.work.delete(job);
        if (this.again.delete(endpoint)) this.kick(endpoint);
      });
    this.work.add(job);
  }

  /** Starts every due delivery there is room for, then sets a timer for the next one due. */
  private async pump(endpoint: string): Promise<void> {
    const flying = this.inFlight.get(endpoint) ?? new Set<number>();
    this.inFlight.set(endpoint, flying);
    const room = IN_FLIGHT - flying.size;
    if (room > 0) {
      // Claimed for longer than an attempt can take: a node that dies mid-attempt leaves it to others.
      const due = await this.o.events.due(endpoint, this.now(), room, this.o.timeoutMs + CLAIM_MARGIN_MS);
      for (const delivery of due) {
        flying.add(delivery.event.id);
        const attempt = this.attempt(delivery)
          .catch((err: unknown) => this.o.log.error({ err, endpoint, event: 'webhook_dispatch_failed' }, 'recording a webhook attempt failed'))
          .finally(() => {
            flying.delete(delivery.event.id);
            this.work.delete(attempt);
            this.kick(endpoint);
          });
        this.work.add(attempt);
      }
    }
    const next = await this.o.events.nextDue(endpoint);
    const old = this.timers.get(endpoint);
    if (old) clearTimeout(old);
    this.timers.delete(endpoint);
    if (next !== undefined && !this.stopped) {
      const timer = setTimeout(() => this.kick(endpoint), Math.max(10, next - this.now()));
      timer.unref();
      this.timers.set(endpoint, timer);
    }
  }

  private async attempt(d: Delivery): Promise<void> {
    const { endpoint, event } = d;
    const data = this.o.enrich ? this.o.enrich(event) : event.data;
    let outcome: string;
    try {
      const answer = await this.o.poster.post(endpoint, `evt_${event.id}`, webhookBody(event, data), this.o.timeoutMs, this.halt.signal);
      if (answer.status >= 200 && answer.status < 300) {
        await this.o.events.delivered(endpoint, event.id, this.now());
        this.o.onAttempt?.('delivered');
        return;
      }
      if (answer.status === 410) {
        // "410 Gone": the receiver asks for nothing more to be sent (Standard Webhooks).
        await this.o.events.stop(endpoint, 'the endpoint answered 410 Gone', this.now());
        this.o.log.warn({ endpoint, event: 'webhook_endpoint_stopped' }, 'a webhook endpoint answered 410 Gone: nothing more is sent to it');
        this.o.onAttempt?.('dead');
        return;
      }
      outcome = `HTTP ${answer.status}`;
    } catch (err) {
      // Cut short by shutdown: not an attempt the receiver failed; it stays due.
      if (this.stopped) return;
      outcome = describeFailure(err);
    }
    const now = this.now();
    const retryAt = now + backoffMs(d.attempts + 1, this.o.retryMinMs, this.random);
    const giveUp = retryAt > event.createdAt + this.o.retryForMs;
    await this.o.events.failed(endpoint, event.id, outcome, giveUp ? null : retryAt, now);
    this.o.onAttempt?.(giveUp ? 'dead' : 'failed');
    const fields = { endpoint, eventId: event.id, uploadId: event.uploadId, attempts: d.attempts + 1, outcome };
    if (giveUp) this.o.log.error({ ...fields, event: 'webhook_given_up' }, 'a webhook was not delivered in WEBHOOK_RETRY_FOR; it is given up');
    else this.o.log.warn({ ...fields, retryInMs: retryAt - now, event: 'webhook_failed' }, 'a webhook delivery failed; it is tried again');
  }
}
