import { createHash } from 'node:crypto';
import { SluiceError } from '../errors.js';

export interface IntrospectionOptions {
  url: string;
  clientId: string;
  clientSecret: string;
  cacheMs: number;
  now: () => number;
}

type Answer = { user: string } | { refused: string };

/** Answers kept at most; the oldest go first beyond it. */
const MAX_CACHED = 10_000;

/**
 * OAuth 2 token introspection (RFC 7662): "The protected resource calls the introspection endpoint
 * using an HTTP POST request with parameters sent as application/x-www-form-urlencoded", with its
 * own client credentials (HTTP Basic, RFC 6749 section 2.3.1). An answer with `"active": true` and
 * a usable `sub` makes the token that user's. Answers are cached by the token's SHA-256 for
 * `cacheMs`, and an active token's never past its `exp`. An endpoint that cannot answer is a
 * retryable 503, never a pass.
 */
export class Introspection {
  private readonly cache = new Map<string, { answer: Answer; until: number }>();
  private readonly basic: string;

  constructor(private readonly o: IntrospectionOptions) {
    // "The client identifier is encoded using the application/x-www-form-urlencoded encoding".
    const enc = (v: string) => encodeURIComponent(v).replace(/%20/g, '+');
    this.basic = Buffer.from(`${enc(o.clientId)}:${enc(o.clientSecret)}`).toString('base64');
  }

  async userFor(token: string): Promise<Answer> {
    const key = createHash('sha256').update(token).digest('base64url');
    const now = this.o.now();
    const cached = this.cache.get(key);
    if (cached && cached.until > now) return cached.answer;
    this.cache.delete(key);
    const { answer, exp } = await this.ask(token);
    const until = Math.min(now + this.o.cacheMs, exp === undefined ? Number.POSITIVE_INFINITY : exp * 1000);
    if (this.o.cacheMs > 0 && until > now) {
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, { answer, until });
    }
    return answer;
  }

  private async ask(token: string): Promise<{ answer: Answer; exp: number | undefined }> {
    let response: Response;
    try {
      response = await fetch(this.o.url, {
        method: 'POST',
        headers: { authorization: `Basic ${this.basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        signal: AbortSignal.timeout(10_000),
      });
    } catch {
      throw unavailable('the introspection endpoint cannot be reached');
    }
    if (!response.ok) throw unavailable(`the introspection endpoint answered ${response.status}`);
    let body: { active?: unknown; sub?: unknown; exp?: unknown };
    try {
      body = (await response.json()) as typeof body;
    } catch {
      throw unavailable('the introspection endpoint did not answer JSON');
    }
    const exp = typeof body.exp === 'number' ? body.exp : undefined;
    if (body.active !== true) return { answer: { refused: 'the bearer token is not active' }, exp: undefined };
    if (exp !== undefined && exp * 1000 <= this.o.now()) return { answer: { refused: 'the bearer token has expired' }, exp: undefined };
    // biome-ignore lint/suspicious/noControlCharactersInRegex: a subject with control characters is refused
    if (typeof body.sub !== 'string' || !/^[^\u0000-\u001f]{1,256}$/.test(body.sub))
      return { answer: { refused: 'the active token has no usable "sub"' }, exp };
    return { answer: { user: body.sub }, exp };
  }
}

function unavailable(detail: string): SluiceError {
  return new SluiceError('auth_unavailable', `${detail}; try again shortly`, {}, { headers: { 'retry-after': '5' } });
}
