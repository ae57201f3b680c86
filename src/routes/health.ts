import fs from 'node:fs/promises';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Ledger } from '../ledger/ledger.js';
import type { FileStore } from '../storage/file-store.js';

const Check = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) });
const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Object({ database: Check, data_dir: Check, storage: Check }),
});

/** `GET /healthz`: 200 when the database, the data directory and the store are usable, else 503. */
export const healthRoutes: FastifyPluginAsyncTypebox<{ ledger: Ledger; dataDir: string; store: FileStore }> = async (app, { ledger, dataDir, store }) => {
  app.get(
    '/healthz',
    { config: { public: true }, schema: { tags: ['operations'], summary: 'Health check', response: { 200: Health, 503: Health } } },
    async (request, reply) => {
      const run = async (what: string, fn: () => unknown) => {
        try {
          await fn();
          return { ok: true };
        } catch (err) {
          request.log.warn({ err, check: what }, 'health check failed');
          return { ok: false, error: `${what} unavailable` };
        }
      };
      const checks = {
        database: await run('database', () => ledger.ping()),
        data_dir: await run('data directory', () => fs.access(dataDir, fs.constants.R_OK | fs.constants.W_OK)),
        storage: await run('storage', () => store.check()),
      };
      const ok = Object.values(checks).every((c) => c.ok);
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks });
    },
  );
};
