import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Ledger } from '../ledger/ledger.js';
import type { ServiceEvent } from '../service/upload-types.js';

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * Prometheus metrics, prefixed `sluice_`: what the upload service reports as it happens (counters
 * and durations), plus gauges read from the ledger (one query) when scraped. Each app has its own registry.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly created = new Counter({
    name: 'sluice_uploads_created_total',
    help: 'Uploads created',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  private readonly completed = new Counter({
    name: 'sluice_uploads_completed_total',
    help: 'Uploads verified and stored',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  private readonly failed = new Counter({
    name: 'sluice_uploads_failed_total',
    help: 'Uploads failed (wrong digest, refused type)',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  private readonly expired = new Counter({ name: 'sluice_uploads_expired_total', help: 'Uploads expired unfinished', registers: [this.registry] });
  private readonly aborted = new Counter({ name: 'sluice_uploads_aborted_total', help: 'Uploads aborted or terminated', registers: [this.registry] });
  private readonly bytes = new Counter({
    name: 'sluice_bytes_received_total',
    help: 'Bytes received, durable and recorded',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  private readonly clientAborts = new Counter({
    name: 'sluice_client_aborted_total',
    help: 'Requests whose client went away before they ended (logged at info, not as errors)',
    registers: [this.registry],
  });
  private readonly storageErrors = new Counter({
    name: 'sluice_storage_errors_total',
    help: 'Failures of the storage backend while publishing',
    registers: [this.registry],
  });
  private readonly chunkSeconds = new Histogram({
    name: 'sluice_chunk_duration_seconds',
    help: 'Time to receive, sync and record a chunk or PATCH',
    labelNames: ['protocol'],
    buckets: SECONDS,
    registers: [this.registry],
  });
  private readonly finishSeconds = new Histogram({
    name: 'sluice_finish_duration_seconds',
    help: 'Time to verify and store a finished upload',
    labelNames: ['protocol'],
    buckets: SECONDS,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'sluice_' });
  }

  private readonly active = new Gauge({ name: 'sluice_active_uploads', help: 'Uploads being uploaded or finished', registers: [this.registry] });
  private readonly staged = new Gauge({ name: 'sluice_staging_bytes', help: 'Bytes received and held in staging files', registers: [this.registry] });
  private readonly commits = new Counter({
    name: 'sluice_ledger_commits_total',
    help: 'Ledger transactions that recorded chunks or appended bytes',
    registers: [this.registry],
  });
  private readonly commitWrites = new Counter({
    name: 'sluice_ledger_commit_writes_total',
    help: 'Chunks and appends recorded by those transactions (several share one commit under load)',
    registers: [this.registry],
  });

  private readonly webhooks = new Counter({
    name: 'sluice_webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome: delivered (2xx), failed (tried again), dead (given up, or 410 Gone)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  private readonly webhookPending = new Gauge({
    name: 'sluice_webhook_pending',
    help: 'Webhook deliveries not delivered yet',
    registers: [this.registry],
  });
  private readonly webhookOldest = new Gauge({
    name: 'sluice_webhook_oldest_pending_seconds',
    help: 'Age of the event of the oldest webhook delivery still pending (0: none)',
    registers: [this.registry],
  });

  readonly webhookAttempt = (outcome: 'delivered' | 'failed' | 'dead'): void => {
    this.webhooks.inc({ outcome });
  };

  clientAborted(): void {
    this.clientAborts.inc();
  }

  /** The text exposition, with the ledger gauges read once for this scrape. */
  async render(ledger: Ledger): Promise<string> {
    const stats = await ledger.activeStats();
    this.active.set(stats.active);
    const deliveries = await ledger.events.stats();
    this.webhookPending.set(deliveries.pending);
    this.webhookOldest.set(deliveries.oldestPendingAt === undefined ? 0 : Math.max(0, (Date.now() - deliveries.oldestPendingAt) / 1000));
    this.staged.set(stats.stagedBytes);
    // The ledger counts its commits itself; counters cannot be set, so they are re-filled.
    const commits = ledger.commitStats();
    this.commits.reset();
    this.commits.inc(commits.commits);
    this.commitWrites.reset();
    this.commitWrites.inc(commits.writes);
    return this.registry.metrics();
  }

  readonly record = (event: ServiceEvent): void => {
    switch (event.type) {
      case 'created':
        this.created.inc({ protocol: event.protocol });
        break;
      case 'received':
        this.bytes.inc({ protocol: event.protocol }, event.bytes);
        this.chunkSeconds.observe({ protocol: event.protocol }, event.seconds);
        break;
      case 'completed':
        this.completed.inc({ protocol: event.protocol });
        this.finishSeconds.observe({ protocol: event.protocol }, event.seconds);
        break;
      case 'failed':
        this.failed.inc({ protocol: event.protocol });
        break;
      case 'storage_error':
        this.storageErrors.inc();
        break;
      case 'expired':
        this.expired.inc();
        break;
      case 'aborted':
        this.aborted.inc();
        break;
    }
  };
}

/** `GET /metrics` in the Prometheus text format. */
export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics; ledger: Ledger }> = async (app, { metrics, ledger }) => {
  app.get('/metrics', { config: { public: true }, schema: { tags: ['operations'], summary: 'Prometheus metrics' } }, async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.render(ledger));
  });
};
