import { Webhook } from 'standardwebhooks';
import type { EventsConfig } from './config-types.js';

/** Reads one setting (see loadConfig): the fallback when unset, a problem when not understood. */
type Read = <T>(name: string, fallback: T, parse: (raw: string) => T | undefined, hint: string) => T;

const httpUrl = (raw: string): string | undefined => {
  try {
    const u = new URL(raw.trim());
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.toString() : undefined;
  } catch {
    return undefined;
  }
};

/**
 * Events, webhooks, blocking hooks and post-processing (WEBHOOK_*, EVENT_*, HOOK_*, POST_PROCESS_URL,
 * PROCESSOR_TOKEN). Everything that leaves the server is signed with WEBHOOK_SECRET, as Standard
 * Webhooks describes, so the secret is required as soon as anything is sent.
 */
export function loadEventsConfig(
  env: Record<string, string | undefined>,
  read: Read,
  duration: (raw: string) => number | undefined,
  problems: string[],
): EventsConfig {
  const flag = (r: string) => (/^(1|true|yes)$/i.test(r) ? true : /^(0|false|no)$/i.test(r) ? false : undefined);
  const durationOrZero = (r: string) => (r.trim() === '0' ? 0 : duration(r));
  const webhookUrls = read<string[]>(
    'WEBHOOK_URLS',
    [],
    (r) => {
      const list = r
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean)
        .map(httpUrl);
      return list.length > 0 && list.every((u) => u !== undefined) ? [...new Set(list as string[])] : undefined;
    },
    'a comma-separated list of http(s) URLs',
  );
  const secret = env.WEBHOOK_SECRET?.trim() || undefined;
  if (secret !== undefined) {
    try {
      if (!secret.startsWith('whsec_')) throw new Error('no prefix');
      new Webhook(secret);
      if (Buffer.from(secret.slice(6), 'base64').length < 24) throw new Error('short');
    } catch {
      problems.push('WEBHOOK_SECRET must be "whsec_" followed by at least 24 bytes in base64 (Standard Webhooks)');
    }
  }
  const preCreateUrl = read<string | undefined>('HOOK_PRE_CREATE_URL', undefined, httpUrl, 'an http(s) URL');
  const prePublishUrl = read<string | undefined>('HOOK_PRE_PUBLISH_URL', undefined, httpUrl, 'an http(s) URL');
  const postProcessUrl = read<string | undefined>('POST_PROCESS_URL', undefined, httpUrl, 'an http(s) URL');
  const processorToken = env.PROCESSOR_TOKEN?.trim() || undefined;
  if (postProcessUrl !== undefined && processorToken === undefined) problems.push('POST_PROCESS_URL needs PROCESSOR_TOKEN (the processor answers with it)');
  if (processorToken !== undefined && processorToken.length < 16) problems.push('PROCESSOR_TOKEN must be at least 16 characters');
  const sends = webhookUrls.length > 0 || preCreateUrl !== undefined || prePublishUrl !== undefined || postProcessUrl !== undefined;
  if (sends && secret === undefined) problems.push('WEBHOOK_SECRET is required with WEBHOOK_URLS, HOOK_* or POST_PROCESS_URL (every request sent is signed)');
  return {
    webhookUrls,
    secret,
    retryForMs: read('WEBHOOK_RETRY_FOR', 24 * 3600_000, duration, 'a duration (e.g. 24h)'),
    retryMinMs: read('WEBHOOK_RETRY_MIN', 1000, duration, 'a duration (e.g. 1s)'),
    timeoutMs: read('WEBHOOK_TIMEOUT', 10_000, duration, 'a duration (e.g. 10s)'),
    retentionMs: read('EVENT_RETENTION', 7 * 24 * 3600_000, duration, 'a duration (e.g. 7d)'),
    progressIntervalMs: read('EVENT_PROGRESS_INTERVAL', 0, durationOrZero, 'a duration (e.g. 5s) or 0'),
    hooks: {
      preCreateUrl,
      prePublishUrl,
      timeoutMs: read('HOOK_TIMEOUT', 10_000, duration, 'a duration (e.g. 10s)'),
      failOpen: read('HOOK_FAIL_OPEN', false, flag, 'true or false'),
    },
    postProcessUrl,
    processorToken,
  };
}
