import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { SluiceError } from '../errors.js';
import { packageRoot } from '../lib/package-root.js';
import { inSea, seaAsset } from '../lib/sea.js';

const PAGE_FILES = {
  '/': { name: 'index.html', from: 'web', type: 'text/html; charset=utf-8' },
  '/app.js': { name: 'app.js', from: 'dist/web', type: 'text/javascript; charset=utf-8' },
  '/app.css': { name: 'app.css', from: 'dist/web', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { name: 'favicon.svg', from: 'web', type: 'image/svg+xml' },
  // Browsers ask for /favicon.ico on their own; an SVG answers it (every current browser takes it).
  '/favicon.ico': { name: 'favicon.svg', from: 'web', type: 'image/svg+xml' },
} as const;

/**
 * `GET /`: the uploader page (web/index.html) and its bundle (dist/web, built from web/src with
 * Uppy by scripts/build-web.mjs). The files are read once at start-up; in the single executable
 * they are assets of the binary. No credentials needed: the page asks for a token itself.
 */
export const webRoutes: FastifyPluginAsync = async (app) => {
  const read = (name: string, from: string): Buffer | undefined => {
    try {
      return inSea() ? seaAsset(name) : readFileSync(path.join(packageRoot ?? '.', from, name));
    } catch {
      return undefined;
    }
  };
  for (const [url, file] of Object.entries(PAGE_FILES)) {
    const body = read(file.name, file.from);
    if (!body) app.log.warn({ file: `${file.from}/${file.name}`, event: 'page_not_built' }, 'the uploader page is not built: run npm run build');
    app.get(url, { config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
      if (!body) throw new SluiceError('not_found', `${file.name} is not built (npm run build)`);
      return reply
        .type(file.type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src *")
        .send(body);
    });
  }
};
