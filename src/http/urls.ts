import type { FastifyRequest } from 'fastify';
import parseForwarded from 'forwarded-parse';

/**
 * An absolute URL for `path` as the client reached us: PUBLIC_URL when configured; otherwise, behind
 * a trusted proxy, the first hop of `Forwarded` (RFC 7239) or X-Forwarded-Proto/Host (which
 * Fastify applies when trustProxy is on); otherwise the request's own scheme and Host.
 */
export interface UrlOptions {
  publicUrl: string | undefined;
  trustProxy: boolean | string[];
}

export function absoluteUrl(request: FastifyRequest, { publicUrl, trustProxy }: UrlOptions, path: string): string {
  if (publicUrl) return `${publicUrl}${path}`;
  let proto = request.protocol;
  let host = request.host;
  const forwarded = request.headers.forwarded;
  if (forwarded && trustProxy !== false) {
    try {
      const first = parseForwarded(forwarded)[0];
      if (first?.proto && /^https?$/i.test(first.proto)) proto = first.proto.toLowerCase() as 'http' | 'https';
      if (first?.host && /^[\w.:[\]-]+$/.test(first.host)) host = first.host;
    } catch {
      // A malformed Forwarded header is ignored, as if it were absent.
    }
  }
  return `${proto}://${host}${path}`;
}
