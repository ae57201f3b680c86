/**
 * The event outbox: every change an application may want to hear of is written as an event in the
 * ledger transaction that makes the change, so an event is never lost and never sent for a change
 * that did not commit. Webhook endpoints read the outbox through a cursor of their own and keep a
 * delivery row per event they take (attempts, next try), so that delivery survives restarts.
 */

export type EventType =
  | 'upload.created'
  | 'upload.progress'
  | 'upload.processing'
  | 'upload.completed'
  | 'upload.failed'
  | 'upload.aborted'
  | 'upload.expired'
  | 'file.updated'
  | 'file.deleted';

export const EVENT_TYPES: readonly EventType[] = [
  'upload.created',
  'upload.progress',
  'upload.processing',
  'upload.completed',
  'upload.failed',
  'upload.aborted',
  'upload.expired',
  'file.updated',
  'file.deleted',
];

export interface LedgerEvent {
  /** Ascending in commit order; the same id in GET /v1/events and in a webhook's `webhook-id`. */
  id: number;
  type: EventType;
  owner: string;
  uploadId: string;
  /** The upload as the change left it (see eventData in sqlite-events.ts). */
  data: Record<string, unknown>;
  createdAt: number;
}

/** One event on its way to one endpoint. */
export interface Delivery {
  endpoint: string;
  event: LedgerEvent;
  /** Attempts made so far. */
  attempts: number;
}

export interface EndpointSpec {
  url: string;
  /** Only these event types go to it; undefined: all. */
  types?: readonly EventType[] | undefined;
}

export interface DeliveryStats {
  pending: number;
  /** When the oldest pending delivery's event was written (undefined: none pending). */
  oldestPendingAt: number | undefined;
}

export interface EventLedger {
  /** Told soon after a commit that wrote events (a dispatcher then looks for work); returns an unsubscribe. */
  onWritten(listener: () => void): () => void;
  /** The owner's events after `after`, ascending, at most `limit`. */
  list(owner: string, after: number, limit: number): Promise<LedgerEvent[]>;
  /**
   * Makes the configured endpoints the ones that exist: a new one starts after the newest event
   * (it is not sent what happened before it was configured); one no longer configured is forgotten
   * with its deliveries. Returns the urls of endpoints stopped by a 410 earlier.
   */
  syncEndpoints(specs: readonly EndpointSpec[]): Promise<string[]>;
  /**
   * Claims the deliveries due at `now` for an endpoint, oldest first, at most `limit`: events past
   * its cursor become pending deliveries first (in one transaction with the cursor's move). Only an
   * upload's oldest pending delivery is due, so that each upload's events arrive in order. A claimed
   * delivery is not due again for `leaseMs` (another node, or this one after a crash, then tries
   * it), unless its attempt is recorded first.
   */
  due(endpoint: string, now: number, limit: number, leaseMs: number): Promise<Delivery[]>;
  /** When the endpoint's next pending delivery is due (undefined: none pending). */
  nextDue(endpoint: string): Promise<number | undefined>;
  delivered(endpoint: string, eventId: number, now: number): Promise<void>;
  /** A failed attempt: tried again at `retryAt`, or given up (`retryAt` null). */
  failed(endpoint: string, eventId: number, error: string, retryAt: number | null, now: number): Promise<void>;
  /** The endpoint answered 410 Gone: nothing more is sent to it, and its pending deliveries end. */
  stop(endpoint: string, note: string, now: number): Promise<void>;
  stats(): Promise<DeliveryStats>;
  /** Drops events written before `before` that no delivery waits for, and finished deliveries of them. */
  prune(before: number): Promise<number>;
}
