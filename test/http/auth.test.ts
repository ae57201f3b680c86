import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import t from 'tap';
import { createUpload, http, sha256, sleep, startServer, tmpDir, type TestContext } from '../helpers/server.js';

const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-0123456789abcdef0000';
const TOKENS = { AUTH_TOKENS: `${ALICE}:alice,${BOB}:bob` };
const as = (token: string) => ({ authorization: `Bearer ${token}` });
const V = { 'tus-resumable': '1.0.0' };

async function withTokens(t: TestContext, env: Record<string, string> = {}) {
  return startServer(t, { env: { ...TOKENS, ...env } });
}

t.test('credentials: 401 with WWW-Authenticate when missing or wrong; health and discovery stay open', async (t) => {
  const s = await withTokens(t);
  const body = { file_name: 'a', size: 3 };
  const none = await http('POST', `${s.url}/v1/uploads`, { json: body });
  t.same([none.status, none.body.code, none.headers['www-authenticate']], [401, 'unauthorized', 'Bearer realm="sluice"']);
  const wrong = await http('POST', `${s.url}/v1/uploads`, { json: body, headers: as('not-a-real-token-at-all') });
  t.same([wrong.status, wrong.headers['www-authenticate']], [401, 'Bearer realm="sluice", error="invalid_token"']);
  const malformed = await http('POST', `${s.url}/v1/uploads`, { json: body, headers: { authorization: 'Basic YWxpY2U6cHc=' } });
  t.same([malformed.status, malformed.headers['www-authenticate']], [401, 'Bearer realm="sluice", error="invalid_request"']);
  t.equal((await http('POST', `${s.url}/v1/uploads`, { json: body, headers: as(ALICE) })).status, 201);
  const tus = await http('POST', `${s.url}/files`, { headers: { ...V, 'upload-length': '3' } });
  t.same(
    [tus.status, tus.headers['www-authenticate'], tus.headers['tus-resumable']],
    [401, 'Bearer realm="sluice"', '1.0.0'],
    'tus authenticates the same way',
  );
  t.equal((await http('POST', `${s.url}/files`, { headers: { ...V, ...as(BOB), 'upload-length': '3' } })).status, 201);
  t.equal((await http('GET', `${s.url}/healthz`)).status, 200, 'health needs no token');
  t.equal((await http('OPTIONS', `${s.url}/files`)).status, 204, 'tus discovery needs no token');
});

t.test("ownership: another user's upload is indistinguishable from a missing one, in both protocols", async (t) => {
  const s = await withTokens(t);
  const native = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'secret.pdf', size: 3, sha256: sha256('abc') }, headers: as(ALICE) });
  const id = native.body.id as string;
  const tus = await http('POST', `${s.url}/files`, { headers: { ...V, ...as(ALICE), 'upload-length': '3', 'upload-concat': 'partial' } });
  const tusUrl = tus.headers.location as string;
  const missing = '7f1d6a7e-0000-4000-8000-000000000000';
  const attempts: [string, string, Record<string, unknown>][] = [
    ['GET', `/v1/uploads/${id}`, {}],
    ['PUT', `/v1/uploads/${id}/chunks/0`, { body: 'abc', headers: { 'content-type': 'application/octet-stream' } }],
    ['PUT', `/v1/uploads/${id}`, { body: 'abc', headers: { 'content-type': 'application/octet-stream', 'content-range': 'bytes 0-2/3' } }],
    ['POST', `/v1/uploads/${id}/finish`, { json: {} }],
    ['DELETE', `/v1/uploads/${id}`, {}],
    ['GET', `/v1/uploads/${id}/content`, {}],
  ];
  for (const [method, url, opts] of attempts) {
    const theirs = await http(method, `${s.url}${url}`, { ...opts, headers: { ...(opts.headers as object), ...as(BOB) } });
    const none = await http(method, `${s.url}${url.replace(id, missing)}`, { ...opts, headers: { ...(opts.headers as object), ...as(BOB) } });
    t.same([theirs.status, theirs.body.code], [404, 'not_found'], `${method} ${url.replace(id, ':id')}`);
    t.same(theirs.body.detail.replace(id, 'X'), none.body.detail.replace(missing, 'X'), 'same answer as for a missing id');
  }
  for (const method of ['HEAD', 'PATCH', 'DELETE']) {
    const res = await http(method, tusUrl, {
      headers: { ...V, ...as(BOB), 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' },
      body: method === 'PATCH' ? 'abc' : undefined,
    });
    t.equal(res.status, 404, `tus ${method}`);
  }
  const final = await http('POST', `${s.url}/files`, { headers: { ...V, ...as(BOB), 'upload-concat': `final;${tusUrl}` } });
  t.equal(final.status, 400, "bob cannot concatenate alice's partial upload");
  const list = await http('GET', `${s.url}/v1/uploads`, { headers: as(BOB) });
  t.same(list.body.uploads, [], "bob's listing is empty");
  const mine = await http('GET', `${s.url}/v1/uploads`, { headers: as(ALICE) });
  t.equal(mine.body.uploads.length, 2);
  t.equal((await http('GET', `${s.url}/v1/uploads/${id}`, { headers: as(ALICE) })).body.status, 'uploading', "alice's upload is untouched");
});

t.test('AUTH_TOKENS_FILE: one "token user" per line', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'tokens');
  await fs.writeFile(file, `# team\n${ALICE} alice\n\n${BOB}   bob\n`);
  const s = await startServer(t, { env: { AUTH_TOKENS_FILE: file } });
  t.equal((await http('GET', `${s.url}/v1/uploads`, { headers: as(BOB) })).status, 200);
  t.equal((await http('GET', `${s.url}/v1/uploads`)).status, 401);
});

t.test('JWT (HS256): sub is the user; exp, nbf, iss and aud are enforced', async (t) => {
  const secret = 'a-very-long-shared-secret-of-32-chars!!';
  const s = await startServer(t, { env: { JWT_SECRET: secret, JWT_ISSUER: 'https://id.example', JWT_AUDIENCE: 'sluice' } });
  const key = new TextEncoder().encode(secret);
  const jwt = (claims: { sub?: string; iss?: string; aud?: string; exp?: number | string; nbf?: number | string }, signWith = key) => {
    let b = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
    if (claims.sub) b = b.setSubject(claims.sub);
    b = b
      .setIssuer(claims.iss ?? 'https://id.example')
      .setAudience(claims.aud ?? 'sluice')
      .setExpirationTime(claims.exp ?? '5m');
    if (claims.nbf !== undefined) b = b.setNotBefore(claims.nbf);
    return b.sign(signWith);
  };
  const ok = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size: 1 }, headers: as(await jwt({ sub: 'carol' })) });
  t.equal(ok.status, 201);
  t.equal((s.db.prepare('SELECT owner FROM uploads WHERE id = ?').get(ok.body.id) as { owner: string }).owner, 'carol');
  const now = Math.floor(Date.now() / 1000);
  const bad: [string, Promise<string>][] = [
    ['expired', jwt({ sub: 'carol', exp: now - 60 })],
    ['not yet valid', jwt({ sub: 'carol', nbf: now + 3600 })],
    ['wrong issuer', jwt({ sub: 'carol', iss: 'https://evil.example' })],
    ['wrong audience', jwt({ sub: 'carol', aud: 'other' })],
    ['wrong key', jwt({ sub: 'carol' }, new TextEncoder().encode('another-secret-that-is-32-chars-long!!'))],
    ['no sub', jwt({})],
    [
      'alg none',
      Promise.resolve(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(`{"sub":"carol","exp":${now + 60}}`).toString('base64url')}.`),
    ],
  ];
  for (const [name, token] of bad) {
    const res = await http('GET', `${s.url}/v1/uploads`, { headers: as(await token) });
    t.same([res.status, res.body.code], [401, 'unauthorized'], name);
  }
});

t.test('JWT without exp: refused with a clear 401 by default, accepted with JWT_REQUIRE_EXP=false', async (t) => {
  const secret = 'a-very-long-shared-secret-of-32-chars!!';
  const key = new TextEncoder().encode(secret);
  const forever = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('erin').setIssuedAt().sign(key);
  const strict = await startServer(t, { env: { JWT_SECRET: secret } });
  const refused = await http('GET', `${strict.url}/v1/uploads`, { headers: as(forever) });
  t.same([refused.status, refused.body.code], [401, 'unauthorized']);
  t.match(refused.body.detail, /no "exp" claim/, 'says why');
  t.match(String(refused.headers['www-authenticate']), /error="invalid_token"/);
  const expired = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('erin')
    .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
    .sign(key);
  t.match((await http('GET', `${strict.url}/v1/uploads`, { headers: as(expired) })).body.detail, /expired/);
  const lax = await startServer(t, { env: { JWT_SECRET: secret, JWT_REQUIRE_EXP: 'false' } });
  t.equal((await http('GET', `${lax.url}/v1/uploads`, { headers: as(forever) })).status, 200, 'accepted when turned off on purpose');
});

t.test('JWT from a JWKS URL (RS256), keys fetched once and cached', async (t) => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  const jwks = createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => jwks.close(r)));
  const port = (jwks.address() as { port: number }).port;
  const s = await startServer(t, { env: { JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` } });
  const sign = (key: Parameters<SignJWT['sign']>[0], kid = 'k1') =>
    new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid }).setSubject('dave').setExpirationTime('5m').sign(key);
  const token = await sign(privateKey);
  for (let i = 0; i < 3; i++) t.equal((await http('GET', `${s.url}/v1/uploads`, { headers: as(token) })).status, 200);
  t.equal(fetches, 1, 'the key set is cached');
  const other = await generateKeyPair('RS256');
  t.equal((await http('GET', `${s.url}/v1/uploads`, { headers: as(await sign(other.privateKey)) })).status, 401, 'a key not in the set');
});

t.test('signed upload URLs: chunks and status without a token; nothing else; tampering and expiry refused', async (t) => {
  const s = await withTokens(t, { SIGNED_URL_TTL: '2s' });
  const data = randomBytes(2000);
  const up = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size: 2000, chunk_size: 1000, sha256: sha256(data) }, headers: as(ALICE) }))
    .body;
  const chunkUrl = (i: number) => String(up.chunk_url_template).replace('{index}', String(i));
  const put0 = await http('PUT', chunkUrl(0), { body: data.subarray(0, 1000), headers: { 'content-type': 'application/octet-stream' } });
  t.equal(put0.status, 200, 'a chunk by index with the signed URL alone');
  const put1 = await http('PUT', up.upload_url, {
    body: data.subarray(1000),
    headers: { 'content-type': 'application/octet-stream', 'content-range': 'bytes 1000-1999/2000' },
  });
  t.equal(put1.status, 200, 'a chunk by Content-Range with the signed URL alone');
  const st = await http('GET', up.upload_url);
  t.same([st.status, st.body.chunks_received, st.body.upload_url], [200, 2, undefined], 'status, and no fresh URL for a URL holder');
  const refreshed = await http('GET', `${s.url}/v1/uploads/${up.id}`, { headers: as(ALICE) });
  t.match(refreshed.body.upload_url, /signature=/, 'a token holder gets a fresh signed URL');

  const u = new URL(up.upload_url);
  const sig = u.searchParams.get('signature') as string;
  const tampered = `${u.origin}${u.pathname}?expires=${Number(u.searchParams.get('expires')) + 3600}&signature=${sig}`;
  t.same([(await http('GET', tampered)).status, (await http('GET', tampered)).body.code], [403, 'invalid_signature'], 'a longer expiry breaks the signature');
  const flipped = `${u.origin}${u.pathname}?expires=${u.searchParams.get('expires')}&signature=${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`;
  t.equal((await http('GET', flipped)).status, 403, 'an altered signature');
  const other = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'b', size: 10 }, headers: as(ALICE) })).body;
  t.equal((await http('GET', `${s.url}/v1/uploads/${other.id}${u.search}`)).status, 403, "another upload's id");
  t.equal((await http('POST', `${s.url}/v1/uploads/${up.id}/finish${u.search}`, { json: {} })).status, 401, 'never finish');
  t.equal((await http('DELETE', `${s.url}/v1/uploads/${up.id}${u.search}`)).status, 401, 'never delete');
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}/content${u.search}`)).status, 403, 'never download (a download link is signed for that)');
  await sleep(2100);
  const expired = await http('GET', up.upload_url);
  t.same([expired.status, expired.body.code], [403, 'invalid_signature'], 'expired');
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {}, headers: as(ALICE) });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)], 'the owner finishes it');
});

t.test('download links: a completed upload lists a signed download_url that needs no token; an upload URL does not download', async (t) => {
  const s = await withTokens(t);
  const data = randomBytes(3000);
  const up = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'r.bin', size: data.length }, headers: as(ALICE) })).body;
  t.equal(
    (await http('PUT', `${s.url}/v1/uploads/${up.id}/chunks/0`, { body: data, headers: { ...as(ALICE), 'content-type': 'application/octet-stream' } })).status,
    200,
  );
  t.notOk((await http('GET', `${s.url}/v1/uploads/${up.id}`, { headers: as(ALICE) })).body.download_url, 'no link before it completes');
  await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { sha256: sha256(data) }, headers: as(ALICE) });
  const st = (await http('GET', `${s.url}/v1/uploads/${up.id}`, { headers: as(ALICE) })).body;
  t.match(st.download_url, new RegExp(`/v1/uploads/${up.id}/content\\?expires=\\d+&signature=`));
  const listed = (await http('GET', `${s.url}/v1/uploads`, { headers: as(ALICE) })).body.uploads[0];
  t.match(listed.download_url, /signature=/, 'the list carries it too');
  const got = await fetch(st.download_url);
  t.equal(got.status, 200);
  t.equal(sha256(Buffer.from(await got.arrayBuffer())), sha256(data), 'the file, without a token');
  const link = new URL(st.download_url);
  const asUpload = await http('GET', `${s.url}/v1/uploads/${up.id}?${link.searchParams}`);
  t.same([asUpload.status, asUpload.body.code], [403, 'invalid_signature'], 'a download link is not an upload URL');
  const uploadUrl = new URL(up.upload_url);
  const asDownload = await http('GET', `${s.url}/v1/uploads/${up.id}/content${uploadUrl.search}`);
  t.same([asDownload.status, asDownload.body.code], [403, 'invalid_signature'], 'an upload URL does not download');
  const other = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'o', size: 1 }, headers: as(ALICE) })).body;
  t.equal((await http('GET', `${s.url}/v1/uploads/${other.id}/content${link.search}`)).status, 403, "another upload's link");
});

t.test('the signing key is generated once and kept in DATA_DIR, so URLs survive a restart', async (t) => {
  const dataDir = await tmpDir(t);
  const first = await startServer(t, { dataDir, env: TOKENS });
  const up = (await http('POST', `${first.url}/v1/uploads`, { json: { file_name: 'a', size: 10 }, headers: as(ALICE) })).body;
  const key = await fs.readFile(path.join(dataDir, 'signing.key'), 'utf8');
  t.match(key.trim(), /^[\w-]{43}$/);
  t.equal((await fs.stat(path.join(dataDir, 'signing.key'))).mode & 0o777, 0o600);
  await first.close();
  const second = await startServer(t, { dataDir, env: TOKENS });
  t.equal((await http('GET', up.upload_url.replace(first.url, second.url))).status, 200);
});

t.test('per-user limits: active uploads (429) and reserved bytes (413)', async (t) => {
  const s = await withTokens(t, { MAX_ACTIVE_UPLOADS_PER_USER: '2', USER_QUOTA: '1000' });
  const create = (token: string, size: number) => http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size }, headers: as(token) });
  const a = await create(ALICE, 600);
  t.equal(a.status, 201);
  const over = await create(ALICE, 500);
  t.same([over.status, over.body.code, over.body.reserved], [413, 'quota_exceeded', 600]);
  t.equal((await create(ALICE, 400)).status, 201, 'exactly at the quota');
  const third = await create(ALICE, 0);
  t.same([third.status, third.body.code], [429, 'too_many_uploads']);
  const tus = await http('POST', `${s.url}/files`, { headers: { ...V, ...as(ALICE), 'upload-length': '0' } });
  t.equal(tus.status, 429, 'tus creation counts too');
  t.equal((await create(BOB, 1000)).status, 201, 'limits are per user');
  await http('DELETE', `${s.url}/v1/uploads/${a.body.id}`, { headers: as(ALICE) });
  t.equal((await create(ALICE, 600)).status, 201, 'aborting frees the room');
});

t.test('per-user quota: bytes of a tus upload without a length count as they arrive', async (t) => {
  const s = await withTokens(t, { USER_QUOTA: '1000' });
  const tus = { ...V, ...as(ALICE) };
  const deferred = await http('POST', `${s.url}/files`, { headers: { ...tus, 'upload-defer-length': '1' } });
  t.equal(deferred.status, 201);
  const url = deferred.headers.location as string;
  const patch = (offset: number, body: Buffer | Readable, headers: Record<string, string> = {}) =>
    http('PATCH', url, { headers: { ...tus, 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset), ...headers }, body });
  const offset = async () => Number((await http('HEAD', url, { headers: tus })).headers['upload-offset']);
  const create = (size: number) => http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size }, headers: as(ALICE) });
  // tus answers errors as text: "code: message".
  const outcome = (r: { status: number; text: string }) => [r.status, r.text.split(':')[0]];

  t.equal((await patch(0, randomBytes(600))).status, 204);
  const over = await create(500);
  t.same([over.status, over.body.code, over.body.reserved], [413, 'quota_exceeded', 600], 'the 600 bytes received are reserved');
  t.equal((await create(300)).status, 201, '600 + 300 fit');

  const declared = await patch(600, randomBytes(101));
  t.same(outcome(declared), [413, 'quota_exceeded'], 'a body declared past the quota');
  t.match(declared.text, /900 bytes are already reserved/);
  t.equal(await offset(), 600, 'nothing of it recorded');
  // Without Content-Length the body is cut where the quota ends: what fits is kept, as tus keeps
  // the durable part of any interrupted PATCH.
  const streamed = await patch(600, Readable.from([randomBytes(64), randomBytes(64)]));
  t.same(outcome(streamed), [413, 'quota_exceeded'], 'a streamed body past the quota');
  t.equal(await offset(), 700, 'exactly the bytes that fit are recorded');

  const length = await patch(700, Buffer.alloc(0), { 'upload-length': '800' });
  t.same(outcome(length), [413, 'quota_exceeded'], 'an Upload-Length past the quota');
  const head = await http('HEAD', url, { headers: tus });
  t.same([head.headers['upload-defer-length'], head.headers['upload-length']], ['1', undefined], 'the length stays deferred');
  t.equal((await patch(700, Buffer.alloc(0), { 'upload-length': '700' })).status, 204, 'the length that fits exactly');
  t.equal((await http('HEAD', url, { headers: tus })).headers['upload-offset'], '700');
  t.equal((await create(700)).status, 201, 'a completed upload reserves nothing: 300 + 700');
  t.equal((await create(1)).status, 413, 'and then the quota is full');
});

t.test('rate limiting: 429 with Retry-After, per user; health checks exempt', async (t) => {
  const s = await withTokens(t, { RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW: '1m' });
  const statuses: number[] = [];
  for (let i = 0; i < 7; i++) statuses.push((await http('GET', `${s.url}/v1/uploads`, { headers: as(ALICE) })).status);
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429]);
  const limited = await http('GET', `${s.url}/v1/uploads`, { headers: as(ALICE) });
  t.equal(limited.body.code, 'rate_limited');
  t.match(limited.headers['retry-after'], /^\d+$/);
  t.equal((await http('GET', `${s.url}/v1/uploads`, { headers: as(BOB) })).status, 200, 'bob has his own budget');
  for (let i = 0; i < 10; i++) t.equal((await http('GET', `${s.url}/healthz`)).status, 200);
});

t.test('ALLOWED_TYPES: the magic number decides; a contradicting or unlisted type fails the upload with 415', async (t) => {
  const s = await startServer(t, { env: { ALLOWED_TYPES: 'image/*,text/plain' } });
  // A real 1x1 PNG: file-type walks PNG chunks, so random bytes after the signature would not do.
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
  const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n'), randomBytes(200)]);
  const send = async (data: Buffer, contentType: string) => {
    const up = await createUpload(s.url, { file_name: 'f', size: data.length, content_type: contentType, sha256: sha256(data) });
    await http('PUT', `${s.url}/v1/uploads/${up.id}/chunks/0`, { body: data, headers: { 'content-type': 'application/octet-stream' } });
    const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
    return { fin, id: up.id as string };
  };
  t.equal((await send(png, 'image/png')).fin.status, 200, 'a PNG declared image/png');
  t.equal((await send(png, 'application/octet-stream')).fin.status, 200, 'a PNG declared generically');
  const liar = await send(png, 'application/pdf');
  t.same([liar.fin.status, liar.fin.body.code], [415, 'type_not_allowed']);
  t.match(liar.fin.body.detail, /declared application\/pdf but its content is image\/png/);
  t.equal((await http('GET', `${s.url}/v1/uploads/${liar.id}`)).body.status, 'failed');
  const notAllowed = await send(pdf, 'application/pdf');
  t.same([notAllowed.fin.status, notAllowed.fin.body.code], [415, 'type_not_allowed']);
  t.equal((await send(Buffer.from('just text'), 'text/plain')).fin.status, 200, 'no magic number: the declared type counts');
  const files = await fs.readdir(path.join(s.dataDir, 'files'));
  t.equal(files.length, 3, 'nothing refused was published');
});

t.test('request heads: 431 over MAX_HEADER_SIZE; a trickled head is cut off after HEADERS_TIMEOUT', async (t) => {
  const s = await startServer(t, { env: { MAX_HEADER_SIZE: '4KiB', HEADERS_TIMEOUT: '500ms' } });
  const big = await http('GET', `${s.url}/healthz`, { headers: { 'x-filler': 'x'.repeat(6000) } }).catch((e: Error) => e);
  t.equal((big as { status?: number }).status, 431);
  const { rawRequest } = await import('../helpers/server.js');
  const slow = rawRequest(s.url, 'GET /healthz HTTP/1.1');
  await slow.send('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  const started = Date.now();
  for (let i = 0; i < 40 && !slow.closed; i++) {
    await slow.send('X-Slow: 1\r\n');
    await sleep(50);
  }
  t.ok(slow.closed, 'the server hung up');
  t.ok(Date.now() - started < 2000, `within ${Date.now() - started} ms`);
  t.equal((await http('GET', `${s.url}/healthz`)).status, 200, 'still serving');
});
