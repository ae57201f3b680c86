import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import { inSea, seaAsset } from '../lib/sea.js';

/** The `web/` directory of the package, found from this module (src/ or dist/src/). */
function webDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'web');
    if (existsSync(path.join(candidate, 'index.html'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('the web/ directory of sluice was not found');
}

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
          : readFileSync(path.join(webDir(), name));
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
