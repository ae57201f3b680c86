import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { http, startServer } from '../helpers/server.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/introspection-server.mjs');

/** The introspection endpoint, a real process on 127.0.0.1. */
async function endpoint(t: Parameters<typeof startServer>[0]): Promise<string> {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const port = await new Promise<number>((resolve) => {
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
  });
  return `http://127.0.0.1:${port}`;
}

t.test('RFC 7662 introspection: an active token is its sub; answers are cached, never past exp; a down endpoint is a 503', async (t) => {
  const url = await endpoint(t);
  let clock = Date.now();
  const s = await startServer(t, {
    env: {
      AUTH_INTROSPECTION_URL: `${url}/`,
      AUTH_INTROSPECTION_CLIENT_ID: 'sluice',
      AUTH_INTROSPECTION_CLIENT_SECRET: 'sluice-secret',
      AUTH_INTROSPECTION_CACHE: '60s',
    },
    overrides: { now: () => clock },
  });
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  const count = async () => Number(await (await fetch(`${url}/count`)).text());

  const created = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size: 3 }, headers: as('good-carol') });
  t.equal(created.status, 201);
  const listed = await http('GET', `${s.url}/v1/uploads`, { headers: as('good-carol') });
  t.same(
    listed.body.uploads.map((u: { id: string }) => u.id),
    [created.body.id],
    'the token is carol: she sees her upload',
  );
  t.equal(await count(), 1, 'asked once; the second request used the cached answer');
  const other = await http('GET', `${s.url}/v1/uploads`, { headers: as('short-dave') });
  t.same(other.body.uploads, [], "dave does not see carol's upload");
  t.equal(await count(), 2);

  const revoked = await http('GET', `${s.url}/v1/uploads`, { headers: as('revoked') });
  t.same([revoked.status, revoked.body.code, revoked.body.detail], [401, 'unauthorized', 'the bearer token is not active']);
  t.match(revoked.headers['www-authenticate'], /error="invalid_token"/);

  // dave's token expires in 30 s: its answer is not kept past that, carol's is kept for the cache time.
  clock += 31_000;
  await http('GET', `${s.url}/v1/uploads`, { headers: as('good-carol') });
  t.equal(await count(), 3, 'revoked was asked; carol still cached');
  const expired = await http('GET', `${s.url}/v1/uploads`, { headers: as('short-dave') });
  t.same([expired.status, expired.body.detail], [401, 'the bearer token has expired'], 'asked again after its exp, and refused');
  t.equal(await count(), 4);
  clock += 60_000;
  await fetch(`${url}/down`);
  const down = await http('GET', `${s.url}/v1/uploads`, { headers: as('good-carol') });
  t.same(
    [down.status, down.body.code, down.headers['retry-after']],
    [503, 'auth_unavailable', '5'],
    'the cache ran out and the endpoint is down: retry later, never let through',
  );
  const none = await http('GET', `${s.url}/v1/uploads`);
  t.equal(none.status, 401, 'no token: refused');
});
