import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The user the request acts for; every upload belongs to exactly one owner. */
    owner: string;
  }
}

/** The user everyone is when no authentication is configured. */
export const ANONYMOUS = 'anonymous';

/**
 * Establishes who is asking. Without configured authentication every request acts as the one
 * anonymous user.
 */
export function registerIdentity(app: FastifyInstance): void {
  app.decorateRequest('owner', ANONYMOUS);
}
