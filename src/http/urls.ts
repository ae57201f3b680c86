import type { FastifyRequest } from 'fastify';

/**
 * An absolute URL for `path` as the client reached us: PUBLIC_URL when configured, otherwise the
 * request's own scheme and Host (Fastify applies X-Forwarded-* only when trustProxy is on).
 */
export function absoluteUrl(request: FastifyRequest, publicUrl: string | undefined, path: string): string {
  const base = publicUrl ?? `${request.protocol}://${request.host}`;
  return `${base}${path}`;
}
