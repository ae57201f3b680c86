import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createUpload, http, putChunk, rawRequest, sha256, sleep, startServer, type Running } from '../helpers/server.js';

const V = { 'tus-resumable': '1.0.0' };
const OCTET = { 'content-type': 'application/octet-stream' };
const TUS_OCTET = { 'content-type': 'application/offset+octet-stream' };

/**
 * Everything a hostile request must not change: the ledger, the published files, and the staged
 * bytes that the ledger counts as received. (Staging bytes outside recorded extents are scratch
 * space: a refused body may have been written there, and nothing ever reads it.)
 */
async function snapshot(s: Running): Promise<string> {
  const uploads = s.db.prepare('SELECT * FROM uploads ORDER BY id').all();
  const chunks = s.db.prepare('SELECT upload_id, idx, offset, length, sha256 FROM chunks ORDER BY upload_id, idx').all() as {
    upload_id: string;
    offset: number;
    length: number;
    sha256: string;
  }[];
  const files: Record<string, string> = {};
  for (const name of (await fs.readdir(path.join(s.dataDir, 'files'))).sort()) {
    files[name] = createHash('sha256')
      .update(await fs.readFile(path.join(s.dataDir, 'files', name)))
      .digest('hex');
  }
  const staged = (await fs.readdir(path.join(s.dataDir, 'staging'))).sort();
  for (const c of chunks) {
    if (!staged.includes(c.upload_id)) continue;
    const bytes = (await fs.readFile(path.join(s.dataDir, 'staging', c.upload_id))).subarray(c.offset, c.offset + c.length);
    if (createHash('sha256').update(bytes).digest('hex') !== c.sha256) files[`staging/${c.upload_id}@${c.offset}`] = 'CORRUPT';
  }
  return JSON.stringify({ uploads, chunks, files, staged });
}

interface Outcome {
  status: number;
  code: string | undefined;
}

/** A request over a raw socket (for what fetch-like clients refuse to send); the first response. */
async function raw(s: Running, head: string, body = '', close = false): Promise<Outcome> {
  const req = rawRequest(s.url, head.replace('HOST', new URL(s.url).host));
  await req.start();
  if (body) await req.send(body);
  if (close) {
    await sleep(100);
    req.socket.destroy();
    return { status: 0, code: undefined };
  }
  const { status, text } = await req.responseHead(5000);
  await sleep(50);
  const m = /"code":"(\w+)"|\r\n\r\n(\w+):/.exec(text);
  req.socket.destroy();
  return { status, code: m?.[1] ?? m?.[2] };
}

async function send(s: Running, method: string, url: string, opts: Parameters<typeof http>[2] = {}): Promise<Outcome> {
  const res = await http(method, `${s.url}${url}`, opts);
  const code = res.body?.code ?? (/^(\w+):/.exec(res.text)?.[1] as string | undefined);
  return { status: res.status, code };
}

t.test('hostile input across both protocols: a 4xx with a stable code, nothing stored changes, the server keeps serving', async (t) => {
  const s = await startServer(t, { env: { MAX_UPLOAD_SIZE: '1GiB' } });
  // State worth protecting: a native upload with one chunk in, a tus upload 3 bytes in, a completed one.
  const data = randomBytes(2000);
  const native = await createUpload(s.url, { file_name: 'keep.bin', size: 2000, chunk_size: 1000, sha256: sha256(data) });
  await putChunk(s.url, native.id, 0, data.subarray(0, 1000));
  const tusRes = await http('POST', `${s.url}/files`, { headers: { ...V, 'upload-length': '10' } });
  const tusUrl = tusRes.headers.location as string;
  const tusPath = new URL(tusUrl).pathname;
  await http('PATCH', tusUrl, { headers: { ...V, ...TUS_OCTET, 'upload-offset': '3' }, body: 'abc' }).catch(() => undefined);
  await http('PATCH', tusUrl, { headers: { ...V, ...TUS_OCTET, 'upload-offset': '0' }, body: 'abc' });
  const done = await createUpload(s.url, { file_name: 'done.txt', size: 3, sha256: sha256('xyz') });
  await putChunk(s.url, done.id, 0, Buffer.from('xyz'));
  await http('POST', `${s.url}/v1/uploads/${done.id}/finish`, { json: {} });
  const before = await snapshot(s);

  const id = native.id as string;
  const create = (json: unknown) => send(s, 'POST', '/v1/uploads', { body: JSON.stringify(json), headers: { 'content-type': 'application/json' } });
  const createRaw = (body: string, type = 'application/json') => send(s, 'POST', '/v1/uploads', { body, headers: { 'content-type': type } });
  const chunk = (url: string, body: Buffer | string, headers: Record<string, string> = {}) => send(s, 'PUT', url, { body, headers: { ...OCTET, ...headers } });
  const tusCreate = (headers: Record<string, string>) => send(s, 'POST', '/files', { headers: { ...V, ...headers } });
  const tusPatch = (headers: Record<string, string>, body: string | Buffer = 'def') =>
    send(s, 'PATCH', tusPath, { headers: { ...V, ...TUS_OCTET, 'upload-offset': '3', ...headers }, body });
  const headLines = (lines: string) => `${lines}\nHost: HOST\n`;

  const cases: [string, () => Promise<Outcome>, number, string | undefined][] = [
    // Native: creation bodies
    ['malformed JSON', () => createRaw('{"file_name": "a", "size": '), 400, 'invalid_request'],
    ['JSON array', () => createRaw('[]'), 400, 'invalid_request'],
    ['JSON string', () => createRaw('"upload"'), 400, 'invalid_request'],
    ['JSON null', () => createRaw('null'), 400, 'invalid_request'],
    ['trailing garbage', () => createRaw('{"file_name":"a","size":1}xx'), 400, 'invalid_request'],
    ['empty JSON body', () => createRaw(''), 400, 'invalid_request'],
    ['size as a string', () => create({ file_name: 'a', size: '10' }), 400, 'invalid_request'],
    ['size fractional', () => create({ file_name: 'a', size: 1.5 }), 400, 'invalid_request'],
    ['size negative', () => create({ file_name: 'a', size: -1 }), 400, 'invalid_request'],
    ['size 1e300', () => createRaw('{"file_name":"a","size":1e300}'), 400, 'invalid_request'],
    ['size an object', () => create({ file_name: 'a', size: {} }), 400, 'invalid_request'],
    ['size over the maximum', () => create({ file_name: 'a', size: 2 * 1024 ** 3 }), 413, 'upload_too_large'],
    ['file_name a number', () => create({ file_name: 123, size: 1 }), 400, 'invalid_request'],
    ['file_name with NUL', () => create({ file_name: 'a\u0000.txt', size: 1 }), 400, 'invalid_request'],
    ['file_name ../', () => create({ file_name: '../../etc/passwd', size: 1 }), 400, 'invalid_request'],
    ['file_name ..\\', () => create({ file_name: '..\\..\\win.ini', size: 1 }), 400, 'invalid_request'],
    ['file_name ..', () => create({ file_name: '..', size: 1 }), 400, 'invalid_request'],
    ['file_name of 5,000 characters', () => create({ file_name: 'a'.repeat(5000), size: 1 }), 400, 'invalid_request'],
    ['file_name with a right-to-left override', () => create({ file_name: 'invoice\u202Efdp.exe', size: 1 }), 400, 'invalid_request'],
    ['file_name with a zero-width space', () => create({ file_name: 'a\u200Bb.txt', size: 1 }), 400, 'invalid_request'],
    ['file_name with CR LF', () => create({ file_name: 'a\r\nSet-Cookie: x', size: 1 }), 400, 'invalid_request'],
    ['chunk_size 0', () => create({ file_name: 'a', size: 10, chunk_size: 0 }), 400, 'invalid_request'],
    ['chunk_size negative', () => create({ file_name: 'a', size: 10, chunk_size: -5 }), 400, 'invalid_request'],
    ['chunk_size 2^63', () => createRaw('{"file_name":"a","size":10,"chunk_size":9223372036854775808}'), 400, 'invalid_request'],
    ['metadata an array', () => create({ file_name: 'a', size: 1, metadata: ['x'] }), 400, 'invalid_request'],
    [
      'metadata with 1,000 keys',
      () => create({ file_name: 'a', size: 1, metadata: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, 'v'])) }),
      400,
      'invalid_request',
    ],
    ['sha256 of the wrong length', () => create({ file_name: 'a', size: 1, sha256: 'ab'.repeat(31) }), 400, 'invalid_request'],
    ['content_type with a header injection', () => create({ file_name: 'a', size: 1, content_type: 'text/plain\r\nX-Evil: 1' }), 400, 'invalid_request'],
    ['__proto__ field', () => createRaw('{"file_name":"a","size":1,"__proto__":{"admin":true}}'), 400, 'invalid_request'],
    ['a 2 MiB JSON body', () => createRaw(`{"file_name":"${'a'.repeat(2 * 1024 * 1024)}","size":1}`), 413, 'payload_too_large'],
    ['creation as text/plain', () => createRaw('{"file_name":"a","size":1}', 'text/plain'), 415, 'unsupported_media_type'],
    // Text that is not Unicode is refused, not repaired into U+FFFD.
    ['file_name with a lone surrogate', () => createRaw('{"file_name":"a\\ud800b.txt","size":1}'), 400, 'invalid_request'],
    ['metadata value with a lone surrogate', () => createRaw('{"file_name":"a","size":1,"metadata":{"k":"\\udfff"}}'), 400, 'invalid_request'],
    ['JSON declared as UTF-16', () => createRaw('{"file_name":"a","size":1}', 'application/json; charset=utf-16'), 415, 'unsupported_media_type'],
    [
      'tus: Upload-Metadata that is not UTF-8',
      () => tusCreate({ 'upload-length': '1', 'upload-metadata': `filename ${Buffer.from([0x61, 0xff, 0xfe]).toString('base64')}` }),
      400,
      'invalid_request',
    ],
    // Native: ids and chunk addressing
    ['non-UUID id', () => chunk('/v1/uploads/abc/chunks/0', 'x'), 400, 'invalid_request'],
    ['path-like id', () => chunk('/v1/uploads/..%2F..%2Fsluice.db/chunks/0', 'x'), 400, 'invalid_request'],
    ['id with NUL', () => send(s, 'GET', '/v1/uploads/%00'), 400, 'invalid_request'],
    ['id of 5,000 characters', () => send(s, 'GET', `/v1/uploads/${'a'.repeat(5000)}`), 414, 'uri_too_long'],
    ['index negative', () => chunk(`/v1/uploads/${id}/chunks/-1`, 'x'), 400, 'invalid_request'],
    ['index in exponent notation', () => chunk(`/v1/uploads/${id}/chunks/1e3`, 'x'), 400, 'invalid_request'],
    ['index in hex', () => chunk(`/v1/uploads/${id}/chunks/0x1`, 'x'), 400, 'invalid_request'],
    ['index past the end', () => chunk(`/v1/uploads/${id}/chunks/999999999`, 'x'), 400, 'invalid_range'],
    ['Content-Range garbage', () => chunk(`/v1/uploads/${id}`, 'x', { 'content-range': 'bytes=abc' }), 400, 'invalid_range'],
    [
      'Content-Range with another total',
      () => chunk(`/v1/uploads/${id}`, data.subarray(1000), { 'content-range': 'bytes 1000-1999/5000' }),
      400,
      'invalid_range',
    ],
    ['Content-Range reversed', () => chunk(`/v1/uploads/${id}`, 'x', { 'content-range': 'bytes 1999-1000/2000' }), 400, 'invalid_range'],
    [
      'Content-Range of 20-digit numbers',
      () => chunk(`/v1/uploads/${id}`, 'x', { 'content-range': 'bytes 1000-99999999999999999999/2000' }),
      400,
      'invalid_range',
    ],
    [
      'Content-Range sent twice',
      () =>
        raw(
          s,
          headLines(
            `PUT /v1/uploads/${id} HTTP/1.1\nContent-Type: application/octet-stream\nContent-Range: bytes 1000-1999/2000\nContent-Range: bytes 0-999/2000\nContent-Length: 1`,
          ),
          'x',
        ),
      400,
      'invalid_range',
    ],
    [
      'X-Chunk-Sha256 sent twice',
      () =>
        raw(
          s,
          headLines(
            `PUT /v1/uploads/${id}/chunks/1 HTTP/1.1\nContent-Type: application/octet-stream\nX-Chunk-Sha256: ${'a'.repeat(64)}\nX-Chunk-Sha256: ${'b'.repeat(64)}\nContent-Length: 1`,
          ),
          'x',
        ),
      400,
      'invalid_request',
    ],
    ['X-Chunk-Sha256 not hex', () => chunk(`/v1/uploads/${id}/chunks/1`, data.subarray(1000), { 'x-chunk-sha256': 'z'.repeat(64) }), 400, 'invalid_request'],
    ['Content-Digest garbage', () => chunk(`/v1/uploads/${id}/chunks/1`, data.subarray(1000), { 'content-digest': 'sha-256=:%%%:' }), 400, 'invalid_request'],
    [
      'checksum that does not match',
      () => chunk(`/v1/uploads/${id}/chunks/1`, data.subarray(1000), { 'x-chunk-sha256': sha256('other') }),
      422,
      'checksum_mismatch',
    ],
    ['different bytes for a received chunk', () => chunk(`/v1/uploads/${id}/chunks/0`, randomBytes(1000)), 409, 'chunk_conflict'],
    [
      'Content-Length smaller than the chunk',
      () => raw(s, headLines(`PUT /v1/uploads/${id}/chunks/1 HTTP/1.1\nContent-Type: application/octet-stream\nContent-Length: 10`), 'x'.repeat(1000)),
      400,
      'chunk_length_mismatch',
    ],
    [
      'Content-Length and Transfer-Encoding together',
      () =>
        raw(
          s,
          headLines(`PUT /v1/uploads/${id}/chunks/1 HTTP/1.1\nContent-Type: application/octet-stream\nContent-Length: 1000\nTransfer-Encoding: chunked`),
          '3\r\nabc\r\n0\r\n\r\n',
        ),
      400,
      'invalid_request',
    ],
    [
      'negative Content-Length',
      () => raw(s, headLines(`PUT /v1/uploads/${id}/chunks/1 HTTP/1.1\nContent-Type: application/octet-stream\nContent-Length: -1`)),
      400,
      'invalid_request',
    ],
    [
      'a body that never ends',
      async () => {
        const req = rawRequest(
          s.url,
          headLines(`PUT /v1/uploads/${id}/chunks/1 HTTP/1.1\nContent-Type: application/octet-stream\nTransfer-Encoding: chunked`).replace(
            'HOST',
            new URL(s.url).host,
          ),
        );
        await req.start();
        for (let i = 0; i < 200 && !req.received.includes('\r\n\r\n'); i++) {
          await req.send(`100\r\n${'x'.repeat(256)}\r\n`);
          await sleep(2);
        }
        const { status, text } = await req.responseHead();
        req.socket.destroy();
        return { status, code: /"code":"(\w+)"/.exec(text)?.[1] };
      },
      400,
      'chunk_length_mismatch',
    ],
    ['chunk as application/json', () => chunk(`/v1/uploads/${id}/chunks/1`, '{}', { 'content-type': 'application/json' }), 415, 'unsupported_media_type'],
    ['finish with a numeric sha256', () => send(s, 'POST', `/v1/uploads/${id}/finish`, { json: { sha256: 12 } }), 400, 'invalid_request'],
    ['finish with an unknown field', () => send(s, 'POST', `/v1/uploads/${id}/finish`, { json: { force: true } }), 400, 'invalid_request'],
    ['finish with chunks missing', () => send(s, 'POST', `/v1/uploads/${id}/finish`, { json: {} }), 409, 'chunks_missing'],
    ['content of an unfinished upload', () => send(s, 'GET', `/v1/uploads/${id}/content`), 409, 'upload_not_completed'],
    ['list with limit -1', () => send(s, 'GET', '/v1/uploads?limit=-1'), 400, 'invalid_request'],
    ['list with a forged cursor', () => send(s, 'GET', `/v1/uploads?cursor=${Buffer.from('["1",2]').toString('base64url')}`), 400, 'invalid_request'],
    ['DELETE of a path', () => send(s, 'DELETE', '/v1/uploads/..%2F..%2F'), 400, 'invalid_request'],
    ['a head over the size limit', () => send(s, 'GET', '/healthz', { headers: { 'x-big': 'x'.repeat(20_000) } }), 431, undefined],
    ['a request line that is not HTTP', () => raw(s, 'GARBAGE\n'), 400, 'invalid_request'],
    // tus
    ['tus: Upload-Length negative', () => tusCreate({ 'upload-length': '-5' }), 400, 'invalid_request'],
    ['tus: Upload-Length in exponent notation', () => tusCreate({ 'upload-length': '1e3' }), 400, 'invalid_request'],
    [
      'tus: Upload-Length sent twice',
      () => raw(s, headLines('POST /files HTTP/1.1\nTus-Resumable: 1.0.0\nUpload-Length: 5\nUpload-Length: 6\nContent-Length: 0')),
      400,
      'invalid_request',
    ],
    ['tus: Upload-Length over Tus-Max-Size', () => tusCreate({ 'upload-length': String(2 * 1024 ** 3) }), 413, 'upload_too_large'],
    ['tus: metadata value not Base64', () => tusCreate({ 'upload-length': '5', 'upload-metadata': 'key val!d' }), 400, 'invalid_request'],
    [
      'tus: metadata with an empty pair',
      () => tusCreate({ 'upload-length': '5', 'upload-metadata': `a ${Buffer.from('x').toString('base64')},,b ${Buffer.from('y').toString('base64')}` }),
      400,
      'invalid_request',
    ],
    [
      'tus: filename ../ in metadata',
      () => tusCreate({ 'upload-length': '5', 'upload-metadata': `filename ${Buffer.from('../x').toString('base64')}` }),
      400,
      'invalid_request',
    ],
    ['tus: Upload-Concat with a path', () => tusCreate({ 'upload-concat': 'final;/files/../../sluice.db' }), 400, 'invalid_request'],
    ['tus: Upload-Defer-Length other than 1', () => tusCreate({ 'upload-defer-length': 'yes' }), 400, 'invalid_request'],
    ['tus: Upload-Offset not a number', () => tusPatch({ 'upload-offset': 'abc' }), 400, 'invalid_request'],
    ['tus: Upload-Offset negative', () => tusPatch({ 'upload-offset': '-1' }), 400, 'invalid_request'],
    ['tus: Upload-Offset of 20 digits', () => tusPatch({ 'upload-offset': '99999999999999999999' }), 400, 'invalid_request'],
    ['tus: Upload-Offset behind', () => tusPatch({ 'upload-offset': '0' }), 409, 'offset_mismatch'],
    [
      'tus: PATCH without a content type',
      () => send(s, 'PATCH', tusPath, { headers: { ...V, 'upload-offset': '3' }, body: 'def' }),
      415,
      'unsupported_media_type',
    ],
    ['tus: Upload-Checksum not Base64', () => tusPatch({ 'upload-checksum': 'sha1 !!!' }), 400, 'invalid_request'],
    ['tus: Upload-Checksum md4', () => tusPatch({ 'upload-checksum': 'md4 AAAA' }), 400, 'checksum_algorithm_unsupported'],
    [
      'tus: Upload-Checksum mismatch',
      () => tusPatch({ 'upload-checksum': `sha1 ${createHash('sha1').update('xyz').digest('base64')}` }),
      460,
      'checksum_mismatch',
    ],
    ['tus: body past the length', () => tusPatch({}, 'x'.repeat(100)), 413, 'upload_too_large'],
    ['tus: Upload-Length changed', () => tusPatch({ 'upload-length': '11' }), 400, 'inconsistent_length'],
    [
      'tus: PATCH on a path-like id',
      () => send(s, 'PATCH', '/files/..%2F..%2Fsluice.db', { headers: { ...V, ...TUS_OCTET, 'upload-offset': '0' }, body: 'x' }),
      404,
      'not_found',
    ],
    ['tus: no Tus-Resumable', () => send(s, 'HEAD', tusPath), 412, undefined],
    ['tus: Tus-Resumable sent twice', () => raw(s, headLines(`HEAD ${tusPath} HTTP/1.1\nTus-Resumable: 1.0.0\nTus-Resumable: 1.0.0`)), 412, undefined],
    [
      'tus: unknown IETF interop version',
      () => send(s, 'POST', '/files', { headers: { 'upload-draft-interop-version': '99', 'upload-complete': '?1' }, body: 'x' }),
      400,
      'invalid_request',
    ],
    ['tus: X-HTTP-Method-Override TRACE', () => send(s, 'POST', tusPath, { headers: { ...V, 'x-http-method-override': 'TRACE' } }), 404, 'route_not_found'],
    [
      'tus: PATCH on a native upload',
      () => send(s, 'PATCH', `/files/${id}`, { headers: { ...V, ...TUS_OCTET, 'upload-offset': '0' }, body: 'x' }),
      404,
      'not_found',
    ],
  ];
  t.ok(cases.length >= 50, `${cases.length} cases`);
  for (const [name, run, status, code] of cases) {
    const got = await run();
    t.equal(got.status, status, `${name}: status`);
    if (code !== undefined) t.equal(got.code, code, `${name}: code`);
  }

  // Clients that vanish mid-body get no answer; they must leave nothing behind either.
  await raw(s, headLines(`PUT /v1/uploads/${id}/chunks/1 HTTP/1.1\nContent-Type: application/octet-stream\nContent-Length: 1000`), 'x'.repeat(500), true);
  await raw(
    s,
    headLines(
      `PATCH ${tusPath} HTTP/1.1\nTus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: 3\nUpload-Checksum: sha1 ${createHash('sha1').update('defg').digest('base64')}\nContent-Length: 4`,
    ),
    'de',
    true,
  );
  await sleep(200);

  t.equal(await snapshot(s), before, 'ledger, staging and stored files are unchanged');
  t.equal((await http('GET', `${s.url}/healthz`)).status, 200, 'still serving');
  t.equal((await putChunk(s.url, id, 1, data.subarray(1000))).status, 200, 'and still taking good chunks');
  const fin = await http('POST', `${s.url}/v1/uploads/${id}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
});
