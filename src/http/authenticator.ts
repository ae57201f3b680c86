import { createHash, timingSafeEqual } from 'node:crypto';
import type { JWTVerifyGetKey } from 'jose';
import type { AuthConfig } from '../config.js';
import { Introspection } from './introspection.js';

/**
 * Turns a bearer token into a user name: static tokens (AUTH_TOKENS / AUTH_TOKENS_FILE) first, then
 * a JWT (JWT_SECRET for HS256, or JWT_JWKS_URL for RS256/ES256 with the keys cached by jose),
 * whose `sub` is the user, or an opaque token asked about by introspection (AUTH_INTROSPECTION_URL).
 * Returns why a token that is not valid is refused.
 */
export class Authenticator {
  /** SHA-256 of each static token, so that every comparison has the same length. */
  private readonly tokens: { digest: Buffer; user: string }[];
  private jwtKey: Uint8Array | JWTVerifyGetKey | undefined;
  private readonly jwtAlgorithms: string[];
  private jose: typeof import('jose') | undefined;
  private readonly introspection: Introspection | undefined;

  constructor(
    private readonly config: AuthConfig,
    now: () => number = Date.now,
  ) {
    this.tokens = [...config.tokens].map(([token, user]) => ({ digest: digest(token), user }));
    this.introspection = config.introspection ? new Introspection({ ...config.introspection, now }) : undefined;
    this.jwtAlgorithms = config.jwt?.secret ? ['HS256'] : config.jwt?.jwksUrl ? ['RS256', 'ES256'] : [];
  }

  /** No authentication configured: everyone is the one anonymous user. */
  get anonymous(): boolean {
    return this.tokens.length === 0 && this.config.jwt === undefined && this.introspection === undefined;
  }

  /** Loads jose only when JWTs are configured: it is a sizeable part of an idle server's memory. */
  private async verifier(): Promise<typeof import('jose')> {
    if (!this.jose) {
      this.jose = await import('jose');
      const jwt = this.config.jwt;
      if (jwt?.secret) this.jwtKey = new TextEncoder().encode(jwt.secret);
      else if (jwt?.jwksUrl) this.jwtKey = this.jose.createRemoteJWKSet(new URL(jwt.jwksUrl), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000 });
    }
    return this.jose;
  }

  /** The user a bearer token stands for, or why it is refused. */
  async userFor(token: string): Promise<{ user: string } | { refused: string }> {
    const given = digest(token);
    let user: string | undefined;
    // Compare against every token, match or not: the time taken does not depend on which matched.
    for (const entry of this.tokens) {
      if (timingSafeEqual(entry.digest, given) && user === undefined) user = entry.user;
    }
    if (user !== undefined) return { user };
    // A JWT (three dot-separated parts) is verified here; any other token is asked about (RFC 7662).
    const looksLikeJwt = /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token);
    if (this.introspection && (this.config.jwt === undefined || !looksLikeJwt)) return this.introspection.userFor(token);
    if (this.config.jwt === undefined) return { refused: 'the bearer token is not valid' };
    const { jwtVerify } = await this.verifier();
    try {
      const options = {
        algorithms: this.jwtAlgorithms,
        ...(this.config.jwt?.issuer && { issuer: this.config.jwt.issuer }),
        ...(this.config.jwt?.audience && { audience: this.config.jwt.audience }),
        ...(this.config.jwt?.requireExp && { requiredClaims: ['exp'] }),
      };
      // jose enforces exp and nbf (and iss/aud when given).
      const key = this.jwtKey as Uint8Array | JWTVerifyGetKey;
      const { payload } = key instanceof Uint8Array ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: a subject with control characters is refused
      if (typeof payload.sub === 'string' && /^[^\u0000-\u001f]{1,256}$/.test(payload.sub)) return { user: payload.sub };
      return { refused: 'the JWT has no usable "sub" claim' };
    } catch (err) {
      // jose names the claim it missed: a token without an expiry is told so (JWT_REQUIRE_EXP).
      const e = err as { code?: string; claim?: string };
      if (e.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && e.claim === 'exp')
        return { refused: 'the JWT has no "exp" claim; tokens must expire (JWT_REQUIRE_EXP)' };
      if (e.code === 'ERR_JWT_EXPIRED') return { refused: 'the JWT has expired' };
      return { refused: 'the bearer token is not valid' };
    }
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
