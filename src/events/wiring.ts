import type { AddressInfo } from 'node:net';
import type { FastifyBaseLogger as Logger } from 'fastify';
import type { Config } from '../config.js';
import type { EndpointSpec, EventLedger, LedgerEvent } from '../ledger/ledger.js';
import type { UrlSigner } from '../http/signed-url.js';
import { HookClient, StagedReads } from './hook-client.js';
import { SignedPoster } from './signed-post.js';
import { WebhookDispatcher } from './webhook-dispatcher.js';

/** How long a pre-publish hook's staged_url is valid (it is only served while the hook is asked). */
const STAGED_URL_TTL_MS = 15 * 60_000;

/** This server's own base URL for links sent outside a request: PUBLIC_URL, or where it listens. */
export function ownBaseUrl(publicUrl: string | undefined, address: AddressInfo | string | null): string {
  if (publicUrl) return publicUrl;
  if (address === null || typeof address === 'string') return 'http://127.0.0.1';
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

export interface EventsWiring {
  hooks: HookClient | undefined;
  staged: StagedReads;
  /** Starts sending the outbox (after start-up reconciliation); undefined when nothing is configured. */
  dispatcher(events: EventLedger, onAttempt: (o: 'delivered' | 'failed' | 'dead') => void): WebhookDispatcher | undefined;
}

/**
 * Builds the parts that talk to the application (config.events): the signed poster, the blocking
 * hooks and the webhook dispatcher, whose endpoints are WEBHOOK_URLS (every event) and
 * POST_PROCESS_URL (`upload.processing` only). Links in what they send (staged bytes, downloads,
 * the processing answer) are signed and absolute.
 */
export function wireEvents(config: Config, log: Logger, base: () => string, signer: () => UrlSigner): EventsWiring {
  const ev = config.events;
  const staged = new StagedReads();
  const poster = ev.secret ? new SignedPoster(ev.secret, `sluice/${config.version}`) : undefined;
  const hooks =
    poster && (ev.hooks.preCreateUrl || ev.hooks.prePublishUrl)
      ? new HookClient({
          ...ev.hooks,
          poster,
          log,
          staged,
          stagedUrl: (id) => {
            const expiresAt = Date.now() + STAGED_URL_TTL_MS;
            const seconds = Math.floor(expiresAt / 1000);
            // Served only by the node asking the hook: its own address, not a balancer's.
            const here = config.node?.url ?? base();
            return { url: `${here}/v1/uploads/${id}/staged?${signer().query(id, seconds, 'staged')}`, expiresAt: seconds * 1000 };
          },
        })
      : undefined;
  const endpoints: EndpointSpec[] = ev.webhookUrls.map((url) => ({ url }));
  if (ev.postProcessUrl) endpoints.push({ url: ev.postProcessUrl, types: ['upload.processing'] });
  const enrich = (event: LedgerEvent): Record<string, unknown> => {
    const data = event.data;
    if ((data.status !== 'completed' && data.status !== 'processing') || data.part === true) return data;
    const seconds = Math.floor((Date.now() + Math.max(config.auth.signedUrlTtlMs, 3600_000)) / 1000);
    const links: Record<string, string> = {
      download_url: `${base()}/v1/uploads/${event.uploadId}/content?${signer().query(event.uploadId, seconds, 'download')}`,
    };
    if (event.type === 'upload.processing') links.processing_url = `${base()}/v1/uploads/${event.uploadId}/processing`;
    return { ...data, ...links };
  };
  return {
    hooks,
    staged,
    dispatcher: (events, onAttempt) => {
      if (!poster || endpoints.length === 0) return undefined;
      return new WebhookDispatcher({
        events,
        endpoints,
        poster,
        log,
        timeoutMs: ev.timeoutMs,
        retryForMs: ev.retryForMs,
        retryMinMs: ev.retryMinMs,
        enrich,
        onAttempt,
      });
    },
  };
}
