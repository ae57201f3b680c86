import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SluiceError } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Authenticator } from './authenticator.js';
import { EXPIRES_PARAM, SIGNATURE_PARAM, type UrlScope, type UrlSigner } from './signed-url.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The user the request acts for; every upload belongs to exactly one owner. */
    owner: string;
    /** The request was let in by a signed upload URL (not by a token). */
    viaSignedUrl: boolean;
  }
  interface FastifyContextConfig {
    /** No credentials needed (health checks, documentation). */
    public?: boolean;
    /** A signed upload URL may stand in for a token (chunk PUTs and status). */
    /** A signed URL of this scope may stand in for a token (`true`: an upload URL). */
    signedUrl?: boolean | UrlScope;
  }
}

/** The user everyone is when no authentication is configured. */
export const ANONYMOUS = 'anonymous';

const BEARER = /^Bearer ([\x21-\x7e]{1,8192})$/i;

export interface IdentityDeps {
  authenticator: Authenticator;
  signer: UrlSigner;
  ledger: Ledger;
  now: () => number;
}

function unauthorized(detail: string, error?: 'invalid_token' | 'invalid_request'): SluiceError {
  // RFC 6750 §3: the challenge, with the reason when a token was presented.
  const challenge = error ? `Bearer realm="sluice", error="${error}"` : 'Bearer realm="sluice"';
  return new SluiceError('unauthorized', detail, {}, { headers: { 'www-authenticate': challenge } });
}

/**
 * Establishes who is asking, for every protocol alike: a bearer token (static or JWT), or - only
 * on routes that allow it - a signed upload URL, which acts for the owner of the upload it names.
 * With no authentication configured, everyone is the anonymous user.
 */
export function registerIdentity(app: FastifyInstance, { authenticator, signer, ledger, now }: IdentityDeps): void {
  app.decorateRequest('owner', ANONYMOUS);
  app.decorateRequest('viaSignedUrl', false);

  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    // CORS preflights and tus discovery carry no credentials.
    if (config.public || request.method === 'OPTIONS') return;

    const header = request.headers.authorization;
    if (header !== undefined) {
      const m = BEARER.exec(header);
      if (!m) throw unauthorized('Authorization must be "Bearer <token>"', 'invalid_request');
      if (authenticator.anonymous) return;
      const found = await authenticator.userFor(m[1] as string);
      if ('refused' in found) throw unauthorized(found.refused, 'invalid_token');
      request.owner = found.user;
      return;
    }

    const query = request.query as Record<string, unknown>;
    if (query[SIGNATURE_PARAM] !== undefined || query[EXPIRES_PARAM] !== undefined) {
      if (!config.signedUrl) throw unauthorized('a signed upload URL only sends chunks and reads status; a download link only downloads');
      const owner = await signedUrlOwner(request, signer, ledger, now, config.signedUrl === true ? 'upload' : config.signedUrl);
      request.owner = owner;
      request.viaSignedUrl = true;
      return;
    }
    if (!authenticator.anonymous) throw unauthorized('this server needs "Authorization: Bearer <token>"');
  });
}

async function signedUrlOwner(request: FastifyRequest, signer: UrlSigner, ledger: Ledger, now: () => number, scope: UrlScope): Promise<string> {
  const query = request.query as Record<string, unknown>;
  const id = (request.params as { id?: unknown }).id;
  const expires = query[EXPIRES_PARAM];
  const signature = query[SIGNATURE_PARAM];
  if (
    typeof id !== 'string' ||
    typeof expires !== 'string' ||
    typeof signature !== 'string' ||
    !signer.verify(id, expires, signature, Math.floor(now() / 1000), scope)
  ) {
    throw new SluiceError('invalid_signature', 'the signed URL was altered, belongs to another upload, or has expired');
  }
  const upload = await ledger.get(id);
  if (!upload) throw new SluiceError('not_found', `no upload ${id}`);
  return upload.owner;
}
