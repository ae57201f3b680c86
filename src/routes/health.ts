import fs from 'node:fs/promises';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Ledger } from '../ledger/ledger.js';
import type { MemoryPressure } from '../http/memory-pressure.js';
import type { FileStore } from '../storage/file-store.js';

const Check = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) });
const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Object({ database: Check, data_dir: Check, storage: Check, memory: Check }),
});

/**
 * `GET /healthz`: 200 when the database, the data directory and the store are usable and the server
 * is not shedding for memory, else 503; always a JSON body (it is never shed itself).
 */
export const healthRoutes: FastifyPluginAsyncTypebox<{
  ledger: Ledger;
  dataDir: string;
  store: FileStore;
  memory: MemoryPressure;
}> = async (app, { ledger, dataDir, store, memory }) => {
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
        // Shedding for memory (OVERLOAD_MAX_RSS): a load balancer sends new work elsewhere meanwhile.
        memory: memory.shedding ? { ok: false, error: 'memory over OVERLOAD_MAX_RSS: new work is refused' } : { ok: true },
      };
      const ok = Object.values(checks).every((c) => c.ok);
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks });
    },
  );
};
