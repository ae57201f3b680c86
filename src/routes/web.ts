import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { packageRoot } from '../lib/package-root.js';
import { inSea, seaAsset } from '../lib/sea.js';

/**
 * `GET /`: the uploader page (plain HTML and an ES module, no build step), and the tus-js-client
 * browser bundle it uses. The files are small and read once at start-up. No credentials needed:
 * the page asks for a token itself.
 */
export const webRoutes: FastifyPluginAsync = async (app) => {
  // In the single executable the same files are assets of the binary.
  const read = inSea()
    ? (name: string) => seaAsset(name)
    : (name: string) =>
        name === 'tus.min.js'
          ? readFileSync(createRequire(import.meta.url).resolve('tus-js-client/dist/tus.min.js'))
          : readFileSync(path.join(packageRoot ?? '.', 'web', name));
  const files: Record<string, { body: Buffer; type: string }> = {
    '/': { body: read('index.html'), type: 'text/html; charset=utf-8' },
    '/app.js': { body: read('app.js'), type: 'text/javascript; charset=utf-8' },
    '/vendor/tus.min.js': { body: read('tus.min.js'), type: 'text/javascript; charset=utf-8' },
  };
  for (const [url, file] of Object.entries(files)) {
    app.get(url, { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
      reply
        .type(file.type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
        .send(file.body),
    );
  }
};
