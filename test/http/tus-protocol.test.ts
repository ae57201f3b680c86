import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { http, rawRequest, sha256, sleep, startServer, type Running, type TestContext } from '../helpers/server.js';

const V = { 'tus-resumable': '1.0.0' };
const OCTET = { 'content-type': 'application/offset+octet-stream' };
const b64 = (s: string) => Buffer.from(s).toString('base64');

async function server(t: TestContext, env: Record<string, string> = {}) {
  const s = await startServer(t, { env: { MAX_UPLOAD_SIZE: '10MiB', ...env } });
  const create = async (headers: Record<string, string>, body?: Buffer) => {
    const res = await http('POST', `${s.url}/files`, { headers: { ...V, ...headers }, ...(body && { body }) });
    return {
      res,
      url: res.headers.location as string,
      id: String(res.headers.location ?? '')
        .split('/')
        .pop() as string,
    };
  };
  const patch = (url: string, offset: number, body: Buffer | string, headers: Record<string, string> = {}) =>
    http('PATCH', url, { headers: { ...V, ...OCTET, 'upload-offset': String(offset), ...headers }, body });
  const head = (url: string, headers: Record<string, string> = V) => http('HEAD', url, { headers });
  return { s, create, patch, head };
}

const stored = async (s: Running, id: string) => fs.readFile(path.join(s.dataDir, 'files', id));

t.test('OPTIONS: 204 with Tus-Version, the derived Tus-Extension, Tus-Max-Size and Tus-Checksum-Algorithm', async (t) => {
  const { s } = await server(t);
  const res = await http('OPTIONS', `${s.url}/files`);
  t.equal(res.status, 204);
  t.equal(res.headers['tus-version'], '1.0.0');
  t.equal(res.headers['tus-resumable'], '1.0.0');
  t.same(String(res.headers['tus-extension']).split(','), [
    'creation',
    'creation-with-upload',
    'creation-defer-length',
    'termination',
    'checksum',
    'checksum-trailer',
    'expiration',
    'concatenation',
    'concatenation-unfinished',
  ]);
  t.equal(res.headers['tus-max-size'], String(10 * 1024 * 1024));
  t.equal(res.headers['tus-checksum-algorithm'], 'sha1,md5,sha256');
  const bad = await http('OPTIONS', `${s.url}/files`, { headers: { 'tus-resumable': '0.1.0' } });
  t.equal(bad.status, 204, 'OPTIONS ignores Tus-Resumable');
});

t.test('Tus-Resumable missing or unsupported: 412 with Tus-Version, and the request is not processed', async (t) => {
  const { s } = await server(t);
  for (const headers of [{}, { 'tus-resumable': '0.2.2' }] as Record<string, string>[]) {
    const res = await http('POST', `${s.url}/files`, { headers: { ...headers, 'upload-length': '10' } });
    t.equal(res.status, 412);
    t.equal(res.headers['tus-version'], '1.0.0');
    t.equal(res.headers['tus-resumable'], '1.0.0');
  }
  t.equal((s.db.prepare('SELECT COUNT(*) AS n FROM uploads').get() as { n: number }).n, 0, 'nothing created');
});

t.test('creation: 201 with an absolute Location and Upload-Expires; metadata maps to name and type', async (t) => {
  const { s, create, head } = await server(t);
  const { res, url, id } = await create({
    'upload-length': '11',
    'upload-metadata': `filename ${b64('résumé.pdf')},filetype ${b64('application/pdf')},is_confidential`,
  });
  t.equal(res.status, 201);
  t.match(url, new RegExp(`^${s.url}/files/[0-9a-f-]{36}$`));
  t.match(res.headers['upload-expires'], /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, 'RFC 7231 date');
  const native = await http('GET', `${s.url}/v1/uploads/${id}`);
  t.same(
    [native.body.file_name, native.body.content_type, native.body.metadata],
    ['résumé.pdf', 'application/pdf', { filename: 'résumé.pdf', filetype: 'application/pdf', is_confidential: '' }],
  );
  const h = await head(url);
  t.same([h.status, h.headers['upload-offset'], h.headers['upload-length'], h.headers['cache-control']], [200, '0', '11', 'no-store']);
  t.equal(h.headers['upload-metadata'], `filename ${b64('résumé.pdf')},filetype ${b64('application/pdf')},is_confidential`, 'echoed as sent');
});

t.test('creation errors', async (t) => {
  const { s, create } = await server(t);
  const cases: [Record<string, string>, number, string][] = [
    [{}, 400, 'neither Upload-Length nor Upload-Defer-Length'],
    [{ 'upload-defer-length': '2' }, 400, 'Upload-Defer-Length other than 1'],
    [{ 'upload-length': '5', 'upload-defer-length': '1' }, 400, 'both'],
    [{ 'upload-length': '-1' }, 400, 'negative length'],
    [{ 'upload-length': 'ten' }, 400, 'not a number'],
    [{ 'upload-length': String(10 * 1024 * 1024 + 1) }, 413, 'over Tus-Max-Size'],
    [{ 'upload-length': '5', 'upload-metadata': 'filename abc' }, 400, 'metadata value not Base64'],
    [{ 'upload-length': '5', 'upload-metadata': `file name ${b64('x')}` }, 400, 'metadata pair with two spaces'],
    [{ 'upload-length': '5', 'upload-metadata': `a ${b64('x')},a ${b64('y')}` }, 400, 'duplicate metadata key'],
    [{ 'upload-length': '5', 'upload-metadata': `filename ${b64('a\nb')}` }, 400, 'control character in the file name'],
    [{ 'upload-length': '5', 'upload-concat': 'whole' }, 400, 'bad Upload-Concat'],
    [{ 'upload-concat': 'final;/files/not-an-id' }, 400, 'final with a foreign URL'],
  ];
  for (const [headers, status, name] of cases) t.equal((await create(headers)).res.status, status, name);
  t.equal((s.db.prepare('SELECT COUNT(*) AS n FROM uploads').get() as { n: number }).n, 0, 'nothing created');
});

t.test('PATCH: 204 with the new Upload-Offset and Upload-Expires; the upload is published at its length', async (t) => {
  const { s, create, patch, head } = await server(t);
  const { url, id } = await create({ 'upload-length': '11' });
  const a = await patch(url, 0, 'hello');
  t.same([a.status, a.headers['upload-offset']], [204, '5']);
  t.ok(a.headers['upload-expires']);
  const b = await patch(url, 5, ' world');
  t.same([b.status, b.headers['upload-offset']], [204, '11']);
  t.equal((await stored(s, id)).toString(), 'hello world');
  const h = await head(url);
  t.same([h.status, h.headers['upload-offset'], h.headers['upload-length']], [200, '11', '11'], 'HEAD keeps answering when completed');
  const native = await http('GET', `${s.url}/v1/uploads/${id}`);
  t.same([native.body.status, native.body.sha256], ['completed', sha256('hello world')], 'whole-file SHA-256 recorded');
});

t.test('PATCHes are recorded as extents in order and the whole-file digest covers them', async (t) => {
  const { s, create, patch } = await server(t);
  const data = randomBytes(3 * 1024 * 1024 + 5);
  const { id, url } = await create({ 'upload-length': String(data.length) });
  const cuts = [0, 1024 * 1024, 2 * 1024 * 1024 + 100, data.length];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const res = await patch(url, cuts[i] as number, data.subarray(cuts[i], cuts[i + 1]));
    t.equal(res.status, 204);
  }
  const rows = s.db.prepare('SELECT offset, length, sha256 FROM chunks WHERE upload_id = ? ORDER BY idx').all(id);
  t.same(
    rows,
    cuts.slice(1).map((end, i) => ({ offset: cuts[i], length: end - (cuts[i] as number), sha256: null })),
    'one row per extent, no digest of its own',
  );
  const native = await http('GET', `${s.url}/v1/uploads/${id}`);
  t.same([native.body.status, native.body.sha256], ['completed', sha256(data)]);
  t.equal(sha256(await stored(s, id)), sha256(data), 'stored bytes equal the source');
});

t.test('a PATCH refused for its checksum leaves nothing in the whole-file digest, whatever bytes follow', async (t) => {
  const { s, create, patch } = await server(t);
  const data = randomBytes(300_000);
  const { id, url } = await create({ 'upload-length': String(data.length) });
  // Hashed by the hashing thread while it streamed in (larger than the inline limit), then refused.
  const wrong = randomBytes(data.length);
  const refused = await patch(url, 0, wrong, { 'upload-checksum': `sha256 ${createHash('sha256').update(data).digest('base64')}` });
  t.equal(refused.status, 460);
  // The real bytes in small PATCHes (hashed inline), ending where the refused one ended.
  for (let at = 0; at < data.length; at += 100_000) t.equal((await patch(url, at, data.subarray(at, at + 100_000))).status, 204);
  const native = await http('GET', `${s.url}/v1/uploads/${id}`);
  t.same([native.body.status, native.body.sha256], ['completed', sha256(data)], 'the recorded digest is of the bytes recorded');
  t.equal(sha256(await stored(s, id)), sha256(data));
});

t.test('PATCH errors: 409 offset mismatch, 415, 400, 404, 413; nothing is modified', async (t) => {
  const { s, create, patch, head } = await server(t);
  const { url, id } = await create({ 'upload-length': '10' });
  await patch(url, 0, 'abc');
  const cases: [() => ReturnType<typeof patch>, number, string][] = [
    [() => patch(url, 0, 'xyz'), 409, 'offset behind'],
    [() => patch(url, 5, 'xyz'), 409, 'offset ahead'],
    [() => patch(url, 3, 'xyz', { 'content-type': 'application/octet-stream' }), 415, 'wrong content type'],
    [() => http('PATCH', url, { headers: { ...V, ...OCTET }, body: 'xyz' }), 400, 'no Upload-Offset'],
    [() => patch(url, 3, 'xyz', { 'upload-offset': '-3' }), 400, 'negative Upload-Offset'],
    [() => patch(url, 3, 'xyz', { 'upload-length': '12' }), 400, 'Upload-Length cannot change'],
    [() => patch(`${s.url}/files/7f1d6a7e-0000-4000-8000-000000000000`, 0, 'x'), 404, 'unknown upload'],
    [() => patch(`${s.url}/files/nope`, 0, 'x'), 404, 'not an id'],
    [() => patch(url, 3, 'x'.repeat(8)), 413, 'body past the upload length'],
    [() => patch(url, 3, 'xyz', { 'tus-resumable': '2.0.0' }), 412, 'unsupported version'],
  ];
  for (const [send, status, name] of cases) {
    const res = await send();
    t.equal(res.status, status, name);
    t.equal(res.headers['tus-resumable'], '1.0.0', `${name}: Tus-Resumable`);
  }
  t.equal((await head(url)).headers['upload-offset'], '3', 'offset unchanged');
  const rows = s.db.prepare('SELECT offset, length FROM chunks WHERE upload_id = ?').all(id);
  t.same(rows, [{ offset: 0, length: 3 }], 'one extent recorded');
});

t.test('checksum: sha1, md5, sha256 verified; 460 on mismatch and nothing written; 400 on an unknown algorithm', async (t) => {
  const { create, patch, head } = await server(t);
  const { url } = await create({ 'upload-length': '9' });
  const sum = (alg: string, s: string) => `${alg} ${createHash(alg).update(s).digest('base64')}`;
  t.equal((await patch(url, 0, 'abc', { 'upload-checksum': sum('sha1', 'abc') })).status, 204);
  t.equal((await patch(url, 3, 'def', { 'upload-checksum': sum('md5', 'def') })).status, 204);
  const bad = await patch(url, 6, 'ghi', { 'upload-checksum': sum('sha256', 'GHI') });
  t.equal(bad.status, 460);
  t.equal((await head(url)).headers['upload-offset'], '6', 'the mismatching chunk was discarded');
  t.equal((await patch(url, 6, 'ghi', { 'upload-checksum': 'crc32 AAAAAA==' })).status, 400, 'unsupported algorithm');
  t.equal((await patch(url, 6, 'ghi', { 'upload-checksum': 'sha1' })).status, 400, 'malformed');
  t.equal((await patch(url, 6, 'ghi', { 'upload-checksum': sum('sha256', 'ghi') })).status, 204);
});

t.test('checksum-trailer: the digest may follow the body in a chunked request', async (t) => {
  const { s, create, head } = await server(t);
  const { url, id } = await create({ 'upload-length': '6' });
  const send = async (body: string, digestOf: string) => {
    const host = new URL(s.url).host;
    const req = rawRequest(
      s.url,
      `PATCH /files/${id} HTTP/1.1\nHost: ${host}\nTus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: ${(await head(url)).headers['upload-offset']}\nTransfer-Encoding: chunked\nTrailer: Upload-Checksum\n`,
    );
    await req.start();
    const trailer = `Upload-Checksum: sha1 ${createHash('sha1').update(digestOf).digest('base64')}`;
    await req.send(`${body.length.toString(16)}\r\n${body}\r\n0\r\n${trailer}\r\n\r\n`);
    const { status } = await req.responseHead();
    req.socket.destroy();
    return status;
  };
  t.equal(await send('abc', 'xyz'), 460, 'trailer mismatch');
  t.equal((await head(url)).headers['upload-offset'], '0');
  t.equal(await send('abc', 'abc'), 204);
  t.equal(await send('def', 'def'), 204);
  t.equal((await stored(s, id)).toString(), 'abcdef');
});

t.test('creation-with-upload: 201 with Upload-Offset', async (t) => {
  const { s, create } = await server(t);
  const { res, id } = await create({ 'upload-length': '10', ...OCTET }, Buffer.from('hello'));
  t.same([res.status, res.headers['upload-offset']], [201, '5']);
  const whole = await create({ 'upload-length': '5', ...OCTET }, Buffer.from('whole'));
  t.same([whole.res.status, whole.res.headers['upload-offset']], [201, '5']);
  t.equal((await stored(s, whole.id)).toString(), 'whole', 'published at once');
  t.ok(id);
  const wrongType = await create({ 'upload-length': '5', 'content-type': 'text/plain' }, Buffer.from('hello'));
  t.equal(wrongType.res.status, 415);
});

t.test('creation-defer-length: Upload-Defer-Length: 1 on HEAD until the length arrives with a PATCH', async (t) => {
  const { s, create, patch, head } = await server(t);
  const { url, id } = await create({ 'upload-defer-length': '1' });
  const h = await head(url);
  t.same([h.headers['upload-defer-length'], h.headers['upload-length'], h.headers['upload-offset']], ['1', undefined, '0']);
  t.equal((await patch(url, 0, 'abc')).status, 204);
  t.equal((await patch(url, 3, 'de', { 'upload-length': '2' })).status, 400, 'length below the received bytes');
  t.equal((await patch(url, 3, 'de', { 'upload-length': String(11 * 1024 * 1024) })).status, 413, 'length over the maximum');
  const last = await patch(url, 3, 'de', { 'upload-length': '5' });
  t.same([last.status, last.headers['upload-offset']], [204, '5']);
  const after = await head(url);
  t.same([after.headers['upload-length'], after.headers['upload-defer-length']], ['5', undefined]);
  t.equal((await stored(s, id)).toString(), 'abcde');
});

t.test('termination: 204, then 404; bytes removed; a completed upload loses its stored file', async (t) => {
  const { s, create, patch, head } = await server(t);
  const { url, id } = await create({ 'upload-length': '10' });
  await patch(url, 0, 'abc');
  const del = await http('DELETE', url, { headers: V });
  t.same([del.status, del.headers['tus-resumable']], [204, '1.0.0']);
  t.equal((await head(url)).status, 404);
  t.equal((await patch(url, 3, 'd')).status, 404);
  await t.rejects(fs.access(path.join(s.dataDir, 'staging', id)));

  const done = await create({ 'upload-length': '3' });
  await patch(done.url, 0, 'xyz');
  await fs.access(path.join(s.dataDir, 'files', done.id));
  t.equal((await http('DELETE', done.url, { headers: V })).status, 204);
  await t.rejects(fs.access(path.join(s.dataDir, 'files', done.id)), 'stored file removed');
  t.equal((await head(done.url)).status, 404);
});

t.test('expiration: 410 Gone for an expired upload', async (t) => {
  const { create, patch, head } = await server(t, { UPLOAD_TTL: '200ms', SWEEP_INTERVAL: '1h' });
  const { url } = await create({ 'upload-length': '10' });
  await sleep(300);
  t.equal((await head(url)).status, 410);
  t.equal((await patch(url, 0, 'a')).status, 410);
});

t.test('X-HTTP-Method-Override is the method', async (t) => {
  const { create, head } = await server(t);
  const { url } = await create({ 'upload-length': '3' });
  const viaPost = await http('POST', url, { headers: { ...V, ...OCTET, 'upload-offset': '0', 'x-http-method-override': 'PATCH' }, body: 'abc' });
  t.same([viaPost.status, viaPost.headers['upload-offset']], [204, '3']);
  const other = await create({ 'upload-length': '3' });
  t.equal((await http('POST', other.url, { headers: { ...V, 'x-http-method-override': 'DELETE' } })).status, 204);
  t.equal((await head(other.url)).status, 404);
  t.equal((await head(url)).headers['upload-offset'], '3');
});

t.test('concatenation: partials are never published alone; the final is their bytes in order; PATCH on a final is 403', async (t) => {
  const { s, create, patch, head } = await server(t);
  const a = await create({ 'upload-concat': 'partial', 'upload-length': '5' });
  const b = await create({ 'upload-concat': 'partial', 'upload-length': '6' });
  await patch(a.url, 0, 'hello');
  t.same(await fs.readdir(path.join(s.dataDir, 'files')), [], 'a complete partial is not published');
  const ha = await head(a.url);
  t.same([ha.headers['upload-concat'], ha.headers['upload-offset']], ['partial', '5']);
  // concatenation-unfinished: the final before b is complete, with one relative and one absolute URL.
  const final = await create({ 'upload-concat': `final;/files/${a.id} ${b.url}`, 'upload-metadata': `filename ${b64('hw.txt')}` });
  t.equal(final.res.status, 201);
  const hf = await head(final.url);
  t.same(
    [hf.headers['upload-concat'], hf.headers['upload-length'], hf.headers['upload-offset']],
    [`final;/files/${a.id} ${b.url}`, '11', undefined],
    'no offset before concatenation',
  );
  t.equal((await patch(final.url, 0, 'x')).status, 403);
  await patch(b.url, 0, ' world');
  const done = await head(final.url);
  t.same([done.headers['upload-offset'], done.headers['upload-length']], ['11', '11'], 'offset == length after concatenation');
  t.equal((await stored(s, final.id)).toString(), 'hello world');
  t.same((await fs.readdir(path.join(s.dataDir, 'files'))).sort(), [final.id], 'only the final is published');
  const native = await http('GET', `${s.url}/v1/uploads/${final.id}`);
  t.same([native.body.file_name, native.body.sha256], ['hw.txt', sha256('hello world')]);
  await t.rejects(fs.access(path.join(s.dataDir, 'staging', a.id)), 'partial bytes released');

  const notPartial = await create({ 'upload-length': '3' });
  t.equal((await create({ 'upload-concat': `final;${notPartial.url}` })).res.status, 400, 'only partial uploads can be concatenated');
  t.equal((await create({ 'upload-concat': `final;${a.url}`, 'upload-length': '5' })).res.status, 400, 'a final takes no Upload-Length');
});

/** A PATCH from `offset` announcing the rest of `data` that has sent only `sent` bytes of it so far. */
async function halfSentPatch(base: string, id: string, data: Buffer, sent: number, offset = 0) {
  const req = rawRequest(
    base,
    `PATCH /files/${id} HTTP/1.1\nHost: ${new URL(base).host}\nTus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: ${offset}\nContent-Length: ${data.length - offset}\n`,
  );
  await req.start();
  await req.send(data.subarray(offset, offset + sent));
  await sleep(150);
  return req;
}

t.test('an interrupted PATCH keeps the bytes that arrived; the client resumes from HEAD', async (t) => {
  const { s, create, patch, head } = await server(t);
  const data = randomBytes(200 * 1024);
  const { url, id } = await create({ 'upload-length': String(data.length) });
  const req = await halfSentPatch(s.url, id, data, 80 * 1024);
  req.socket.destroy();
  await sleep(150);
  const offset = Number((await head(url)).headers['upload-offset']);
  t.equal(offset, 80 * 1024, 'the durable bytes count');
  t.equal((await patch(url, offset, data.subarray(offset))).status, 204);
  t.equal(sha256(await stored(s, id)), sha256(data));
});

t.test('HEAD right after a PATCH broke off answers the offset that PATCH leaves, not an older one', async (t) => {
  const { s, create, patch, head } = await server(t);
  const data = randomBytes(400 * 1024);
  const { url, id } = await create({ 'upload-length': String(data.length) });
  let offset = 0;
  for (let round = 0; round < 5; round++) {
    const req = await halfSentPatch(s.url, id, data, 50 * 1024, offset);
    req.socket.destroy();
    // No pause: the broken PATCH is still syncing and recording its bytes when HEAD arrives.
    offset = Number((await head(url)).headers['upload-offset']);
    t.equal(offset, (round + 1) * 50 * 1024, `round ${round}: the bytes that arrived count`);
  }
  t.equal((await patch(url, offset, data.subarray(offset))).status, 204, 'and the PATCH from that offset is accepted');
  t.equal(sha256(await stored(s, id)), sha256(data));
});

t.test('a new PATCH takes over from one stuck on a dead connection', async (t) => {
  const { s, create, patch, head } = await server(t, { CHUNK_TAKEOVER_AFTER: '1h' });
  const data = randomBytes(100 * 1024);
  const { url, id } = await create({ 'upload-length': String(data.length) });
  const stuck = await halfSentPatch(s.url, id, data, 30 * 1024);
  // The client thinks the connection died and sends again from where it started.
  const first = await patch(url, 0, data);
  t.equal(first.status, 409, 'the old request recorded its bytes when it was ended, so offset 0 is stale');
  await Promise.race([stuck.closedPromise, sleep(2000)]);
  t.ok(stuck.closed, 'the stale request was ended');
  const offset = Number((await head(url)).headers['upload-offset']);
  t.equal(offset, 30 * 1024);
  t.equal((await patch(url, offset, data.subarray(offset))).status, 204);
  t.equal(sha256(await stored(s, id)), sha256(data));
});

t.test('CORS exposes the tus headers; Location honours a trusted proxy', async (t) => {
  const { s, create } = await server(t, { TRUST_PROXY: 'true' });
  const pre = await http('OPTIONS', `${s.url}/files`, {
    headers: { origin: 'https://app.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'tus-resumable,upload-offset' },
  });
  t.equal(pre.status, 204);
  t.match(pre.headers['access-control-allow-headers'], /Upload-Offset/);
  const created = await create({ 'upload-length': '1', origin: 'https://app.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'up.example.com' });
  t.match(created.url, /^https:\/\/up\.example\.com\/files\//);
  for (const h of [
    'Location',
    'Upload-Offset',
    'Upload-Length',
    'Upload-Defer-Length',
    'Upload-Metadata',
    'Upload-Expires',
    'Upload-Concat',
    'Tus-Version',
    'Tus-Resumable',
    'Tus-Max-Size',
    'Tus-Extension',
    'Tus-Checksum-Algorithm',
  ]) {
    t.match(created.res.headers['access-control-expose-headers'], new RegExp(`\\b${h}\\b`), `exposes ${h}`);
  }
  const fwd = await create({ 'upload-length': '1', forwarded: 'for=1.2.3.4;proto=https;host=files.example.org' });
  t.match(fwd.url, /^https:\/\/files\.example\.org\/files\//, 'RFC 7239 Forwarded');
  const untrusted = await startServer(t);
  const plain = await http('POST', `${untrusted.url}/files`, { headers: { ...V, 'upload-length': '1', 'x-forwarded-host': 'evil.example' } });
  t.match(plain.headers.location, new RegExp(`^${untrusted.url}/files/`), 'ignored without TRUST_PROXY');
});

t.test('native uploads and tus uploads do not mix', async (t) => {
  const { s, create, patch } = await server(t);
  const native = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size: 3 } });
  t.equal((await patch(`${s.url}/files/${native.body.id}`, 0, 'abc')).status, 404, 'a native upload has no tus URL');
  const { id } = await create({ 'upload-length': '3' });
  const put = await http('PUT', `${s.url}/v1/uploads/${id}/chunks/0`, { body: 'abc', headers: { 'content-type': 'application/octet-stream' } });
  t.same([put.status, put.body.code], [409, 'upload_not_writable'], 'a tus upload takes no native chunks');
  const fin = await http('POST', `${s.url}/v1/uploads/${id}/finish`, { json: { sha256: sha256('abc') } });
  t.same([fin.status, fin.body.code], [409, 'upload_not_writable'], 'nor a native finish');
});

t.test('IETF draft (interop 6): 104 with Location before the body, Upload-Complete, HEAD 204, partial-upload appends', async (t) => {
  const { s } = await server(t);
  const I = { 'upload-draft-interop-version': '6' };
  const host = new URL(s.url).host;
  // A creation whose body is incomplete: the client learns the upload URL from the 104 at once.
  const req = rawRequest(
    s.url,
    `POST /files HTTP/1.1\nHost: ${host}\nUpload-Draft-Interop-Version: 6\nUpload-Complete: ?1\nContent-Type: image/png\nContent-Length: 10\n`,
  );
  await req.start();
  await req.send('hello');
  await sleep(150);
  const interim =
    /^HTTP\/1\.1 104 Upload Resumption Supported\r\nLocation: (\S+)\r\nUpload-Limit: max-size=\d+, expires=\d+\r\nupload-draft-interop-version: 6\r\n\r\n/.exec(
      req.received,
    );
  t.ok(interim, `104 received: ${JSON.stringify(req.received.slice(0, 120))}`);
  const url = interim?.[1] as string;
  req.socket.destroy();
  await sleep(150);
  const head = await http('HEAD', url, { headers: I });
  t.same(
    [head.status, head.headers['upload-offset'], head.headers['upload-complete'], head.headers['upload-length'], head.headers['cache-control']],
    [204, '5', '?0', '10', 'no-store'],
  );
  t.equal(head.headers['tus-resumable'], undefined, 'no tus headers for an IETF client');
  t.match(head.headers['upload-limit'], /^max-size=\d+, expires=\d+$/, 'interop 6 names the lifetime expires');
  const wrongType = await http('PATCH', url, {
    headers: { ...I, 'upload-offset': '5', 'upload-complete': '?1', 'content-type': 'application/offset+octet-stream' },
    body: 'world',
  });
  t.equal(wrongType.status, 415, 'interop 6 appends are application/partial-upload');
  const stale = await http('PATCH', url, {
    headers: { ...I, 'upload-offset': '0', 'upload-complete': '?1', 'content-type': 'application/partial-upload' },
    body: 'world',
  });
  t.equal(stale.status, 409);
  const last = await http('PATCH', url, {
    headers: { ...I, 'upload-offset': '5', 'upload-complete': '?1', 'content-type': 'application/partial-upload' },
    body: 'world',
  });
  t.same([last.status, last.headers['upload-offset'], last.headers['upload-complete']], [200, '10', '?1']);
  const id = url.split('/').pop() as string;
  t.equal((await stored(s, id)).toString(), 'helloworld');
  const native = await http('GET', `${s.url}/v1/uploads/${id}`);
  t.same([native.body.content_type, native.body.status], ['image/png', 'completed'], 'the representation keeps its media type');

  const oneShot = await http('POST', `${s.url}/files`, {
    headers: { ...I, 'upload-complete': '?1', 'content-type': 'text/plain', 'content-disposition': 'attachment; filename="note.txt"' },
    body: 'all at once',
  });
  t.same([oneShot.status, oneShot.headers['upload-offset'], oneShot.headers['upload-complete']], [200, '11', '?1'], 'a complete upload in one request');
  const oneId = String(oneShot.headers.location).split('/').pop() as string;
  t.equal((await http('GET', `${s.url}/v1/uploads/${oneId}`)).body.file_name, 'note.txt');
  t.equal(
    (await http('POST', `${s.url}/files`, { headers: { 'upload-draft-interop-version': '2', 'upload-complete': '?1' }, body: 'x' })).status,
    400,
    'unknown interop version',
  );
  t.equal((await http('POST', `${s.url}/files`, { headers: { ...I }, body: 'x' })).status, 400, 'Upload-Complete required');
});
