import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig } from './config.js';
import { StartupError, openCore } from './core.js';
import { formatBytes } from './lib/units.js';

/**
 * `npm run cleanup [-- --dry-run]`: one pass of the expiry sweeper, for cron. Expires every upload
 * whose time is up and removes its staging bytes; with --dry-run, only lists them.
 */
async function main(): Promise<number> {
  const { values } = parseArgs({ options: { 'dry-run': { type: 'boolean', default: false } }, allowPositionals: false });
  const config = loadConfig(process.env);
  const log = pino({ level: config.logLevel }, pino.destination(2));
  const { service, ledger } = await openCore(config, log);
  try {
    if (values['dry-run']) {
      const due = await ledger.dueForExpiry(Date.now(), Number.MAX_SAFE_INTEGER);
      let bytes = 0;
      for (const id of due) {
        const u = await ledger.get(id);
        if (!u) continue;
        bytes += u.size;
        process.stdout.write(`would expire ${id}\t${formatBytes(u.size)}\texpired ${new Date(u.expiresAt).toISOString()}\t${JSON.stringify(u.fileName)}\n`);
      }
      process.stdout.write(`${due.length} upload(s) would be expired, ${formatBytes(bytes)} of staging space freed\n`);
    } else {
      const n = await service.expireDue();
      process.stdout.write(`${n} upload(s) expired\n`);
    }
    return 0;
  } finally {
    await service.close();
    await ledger.close();
  }
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(
      `sluice cleanup: ${err instanceof ConfigError || err instanceof StartupError || err instanceof TypeError ? err.message : String(err)}\n`,
    );
    process.exitCode = 2;
  },
);
