import { Webhook } from 'standardwebhooks';

/** What the receiver answered: its status and (at most 64 KiB of) its body. */
export interface PostAnswer {
  status: number;
  body: string;
}

/** Longest answer body read: a hook's JSON is small, and a receiver must not make us buffer much. */
const MAX_ANSWER = 64 * 1024;

/**
 * Signs and sends one JSON message as Standard Webhooks describes: `webhook-id` (the same on
 * every retry, so that receivers can drop duplicates), `webhook-timestamp` (seconds) and
 * `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`). Any Standard Webhooks
 * library verifies it. Throws when there is no answer within `timeoutMs` or no connection.
 */
export class SignedPoster {
  private readonly signer: Webhook;

  constructor(
    secret: string,
    private readonly userAgent: string,
  ) {
    this.signer = new Webhook(secret);
  }

  async post(url: string, id: string, payload: unknown, timeoutMs: number, cancel?: AbortSignal): Promise<PostAnswer> {
    const now = new Date();
    const body = JSON.stringify(payload);
    const signature = this.signer.sign(id, now, body);
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': this.userAgent,
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signature,
      },
      body,
      redirect: 'manual',
      signal: cancel ? AbortSignal.any([AbortSignal.timeout(timeoutMs), cancel]) : AbortSignal.timeout(timeoutMs),
    });
    return { status: response.status, body: await readCapped(response, MAX_ANSWER) };
  }
}

async function readCapped(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    size += value.length;
    if (size >= limit) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(parts).subarray(0, limit).toString('utf8');
}

/** Why an attempt failed, in a few words for logs and the delivery row (never the body in full). */
export function describeFailure(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}
