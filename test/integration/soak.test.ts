import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

// CI runs a short soak (the full one is `npm run soak`, about 2 minutes): every protocol's uploads
// and hostile requests against the built server, SIGKILLed and restarted, then every completed
// file and the ledger checked. Its findings fail it.
const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

t.test('a short soak: uploads of every protocol, hostile requests and SIGKILLs leave nothing wrong', async (t) => {
  const { stdout } = await run(path.join(ROOT, 'node_modules/.bin/tsx'), ['bench/soak.ts', '--seconds', '25', '--kill-every', '8'], {
    cwd: ROOT,
    timeout: 180_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  t.match(stdout, /soak: no finding/);
  const m = /(\d+) native, (\d+) tus, (\d+) IETF uploads completed and verified; (\d+) hostile requests; (\d+) SIGKILLs/.exec(stdout);
  t.ok(m, stdout);
  const [native, tus, ietf, hostile, kills] = (m ?? []).slice(1).map(Number);
  t.ok((native ?? 0) > 0 && (tus ?? 0) > 0 && (ietf ?? 0) > 0, 'uploads of every protocol completed');
  t.ok((hostile ?? 0) > 0, 'hostile requests were sent');
  t.ok((kills ?? 0) >= 2, 'the server was killed and restarted');
});
