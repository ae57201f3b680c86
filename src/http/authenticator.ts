import { createHash, timingSafeEqual } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { AuthConfig } from '../config.js';

/**
 * Turns a bearer token into a user name: static tokens (AUTH_TOKENS / AUTH_TOKENS_FILE) first, then
 * a JWT (JWT_SECRET for HS256, or JWT_JWKS_URL for RS256/ES256 with the keys cached by jose),
 * whose `sub` is the user. Returns undefined for a token that is not valid.
 */
export class Authenticator {
  /** SHA-256 of each static token, so that every comparison has the same length. */
  private readonly tokens: { digest: Buffer; user: string }[];
  private readonly jwtKey: Uint8Array | JWTVerifyGetKey | undefined;
  private readonly jwtAlgorithms: string[];

  constructor(private readonly config: AuthConfig) {
    this.tokens = [...config.tokens].map(([token, user]) => ({ digest: digest(token), user }));
    if (config.jwt?.secret) {
      this.jwtKey = new TextEncoder().encode(config.jwt.secret);
      this.jwtAlgorithms = ['HS256'];
    } else if (config.jwt?.jwksUrl) {
      this.jwtKey = createRemoteJWKSet(new URL(config.jwt.jwksUrl), { cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000 });
      this.jwtAlgorithms = ['RS256', 'ES256'];
    } else {
      this.jwtAlgorithms = [];
    }
  }

  /** No authentication configured: everyone is the one anonymous user. */
  get anonymous(): boolean {
    return this.tokens.length === 0 && this.jwtKey === undefined;
  }

  async userFor(token: string): Promise<string | undefined> {
    const given = digest(token);
    let user: string | undefined;
    // Compare against every token, match or not: the time taken does not depend on which matched.
    for (const entry of this.tokens) {
      if (timingSafeEqual(entry.digest, given) && user === undefined) user = entry.user;
    }
    if (user !== undefined || this.jwtKey === undefined) return user;
    try {
      const options = {
        algorithms: this.jwtAlgorithms,
        ...(this.config.jwt?.issuer && { issuer: this.config.jwt.issuer }),
        ...(this.config.jwt?.audience && { audience: this.config.jwt.audience }),
      };
      // jose enforces exp and nbf (and iss/aud when given).
      const { payload } = this.jwtKey instanceof Uint8Array ? await jwtVerify(token, this.jwtKey, options) : await jwtVerify(token, this.jwtKey, options);
      return typeof payload.sub === 'string' && /^[^\u0000-\u001f]{1,256}$/.test(payload.sub) ? payload.sub : undefined;
    } catch {
      return undefined;
    }
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
