import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseDictionary } from 'structured-headers';
import t from 'tap';
import { http, rawRequest, sha256, sleep, startServer, type Running, type TestContext } from '../helpers/server.js';

/**
 * The IETF draft (draft-ietf-httpbis-resumable-upload) at interop 7 (-06 to -08) and 8 (-09 to
 * -11), from the draft's own examples, over real sockets, reading the 104s off the wire.
 */

interface Message {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Every response on a raw connection, interim ones included, in order. */
function messages(received: string): Message[] {
  const out: Message[] = [];
  let rest = received;
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [line, ...fields] = rest.slice(0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(line as string)?.[1]);
    const headers: Record<string, string> = {};
    for (const f of fields) {
      const i = f.indexOf(':');
      headers[f.slice(0, i).trim().toLowerCase()] = f.slice(i + 1).trim();
    }
    rest = rest.slice(end + 4);
    let body = '';
    if (status >= 200) {
      const length = Number(headers['content-length'] ?? 0);
      body = rest.slice(0, length);
      rest = rest.slice(length);
    }
    out.push({ status, headers, body });
  }
  return out;
}

async function server(t: TestContext, env: Record<string, string> = {}) {
  const s = await startServer(t as never, { env });
  const host = new URL(s.url).host;
  return { s, host };
}

const stored = (s: Running, id: string) => fs.readFile(path.join(s.dataDir, 'files', id));
const idOf = (url: string) => url.split('/').pop() as string;

/** Sends a raw request and its body, and waits until the final response (or the socket's end). */
async function exchange(s: Running, head: string, body: Buffer | string = '', opts: { waitFinal?: boolean } = {}) {
  const req = rawRequest(s.url, head);
  await req.start();
  if (body.length > 0) await req.send(body);
  const deadline = Date.now() + 20_000;
  while (opts.waitFinal !== false && Date.now() < deadline && !req.closed) {
    const all = messages(req.received);
    const last = all[all.length - 1];
    if (last && last.status >= 200 && last.body.length >= Number(last.headers['content-length'] ?? 0)) break;
    await sleep(10);
  }
  req.socket.destroy();
  return messages(req.received);
}

for (const v of [7, 8] as const) {
  const I = { 'upload-draft-interop-version': String(v) };

  t.test(`interop ${v}: creation example A - everything in one request, 104 with Location and Upload-Limit, progress 104s, 200 from the target`, async (t) => {
    const { s, host } = await server(t);
    const data = randomBytes(20 * 1024 * 1024 + 123);
    const res = await exchange(
      s,
      `POST /files HTTP/1.1\nHost: ${host}\nUpload-Draft-Interop-Version: ${v}\nContent-Disposition: inline; filename="file name.jpg"; filename*=UTF-8''file%20name.jpg\nContent-Type: image/jpeg\nContent-Length: ${data.length}\nUpload-Length: ${data.length}\nUpload-Complete: ?1\n`,
      data,
    );
    const interim = res.filter((m) => m.status === 104);
    const final = res[res.length - 1] as Message;
    t.ok(interim.length >= 2, `a creation 104 and at least one progress 104 (${interim.length})`);
    const [created, ...progress] = interim;
    t.match(created?.headers.location, new RegExp(`^${s.url}/files/[0-9a-f-]{36}$`), 'the creation 104 carries Location');
    t.equal(created?.headers['upload-draft-interop-version'], String(v), 'and the interop version');
    const limit = parseDictionary(created?.headers['upload-limit'] as string);
    t.ok((limit.get('max-size')?.[0] as number) > data.length, 'and Upload-Limit with max-size');
    for (const p of progress) {
      t.equal(p.headers.location, undefined, 'progress 104s carry no Location');
      const at = Number(p.headers['upload-offset']);
      t.ok(at > 0 && at < data.length, `a progress 104 at ${at}`);
    }
    t.equal(final.status, 200, 'the completing response comes from the target resource');
    t.equal(final.headers['upload-complete'], '?1');
    const body = JSON.parse(final.body);
    t.same([body.file_name, body.size, body.sha256, body.status], ['file name.jpg', data.length, sha256(data), 'completed']);
    const id = idOf(created?.headers.location as string);
    t.equal(sha256(await stored(s, id)), sha256(data), 'the bytes are the file');
    // A progress 104's offset is durable: the upload was recorded there while the body streamed.
    t.ok(progress.length > 0);
  });

  t.test(`interop ${v}: creation example B, offset retrieval, append examples A and B`, async (t) => {
    const { s, host } = await server(t);
    const data = randomBytes(100_000);
    // B) "only the first 23456789 bytes of a 123456789 bytes upload are transferred"
    const res = await exchange(
      s,
      `POST /upload HTTP/1.1\nHost: ${host}\nUpload-Draft-Interop-Version: ${v}\nUpload-Complete: ?0\nContent-Length: 25000\nUpload-Length: ${data.length}\n`.replace(
        'POST /upload',
        'POST /files',
      ),
      data.subarray(0, 25_000),
    );
    const [interim, created] = res as [Message, Message];
    t.equal(interim.status, 104);
    t.equal(created.status, 201, 'RECOMMENDED: 201 (Created)');
    t.equal(created.headers.location, interim.headers.location, 'the same Location in the 104 and the final response');
    t.equal(created.headers['upload-complete'], '?0');
    t.ok(parseDictionary(created.headers['upload-limit'] as string).has('max-size'), 'MUST include the Upload-Limit header field');
    const url = created.headers.location as string;

    // Offset retrieval example A: HEAD answers 204 with the state; GET is answered the same way.
    for (const method of ['HEAD', 'GET']) {
      const head = await http(method, url, { headers: I });
      t.same(
        [head.status, head.headers['upload-complete'], head.headers['upload-offset'], head.headers['upload-length'], head.headers['cache-control']],
        [204, '?0', '25000', String(data.length), 'no-store'],
        `${method}: the state`,
      );
      const limit = parseDictionary(head.headers['upload-limit'] as string);
      const maxAge = limit.get('max-age')?.[0] as number;
      t.ok(maxAge > 3000 && maxAge <= 24 * 3600, `${method}: Upload-Limit max-age (${maxAge} s)`);
      t.notOk(limit.has('expires'), 'expires was renamed max-age');
      t.equal(head.headers['tus-resumable'], undefined);
    }

    // Append example A: Upload-Complete ?0 gets 2xx with Upload-Complete ?0.
    const a = await http('PATCH', url, {
      headers: { ...I, 'upload-complete': '?0', 'upload-offset': '25000', 'content-type': 'application/partial-upload' },
      body: data.subarray(25_000, 60_000),
    });
    t.same([a.status, a.headers['upload-complete'], a.headers['upload-offset']], [204, '?0', '60000']);
    // Append example B: the last part; 200 from the target resource with Upload-Complete ?1.
    const b = await http('PATCH', url, {
      headers: { ...I, 'upload-complete': '?1', 'upload-offset': '60000', 'content-type': 'application/partial-upload' },
      body: data.subarray(60_000),
    });
    t.same([b.status, b.headers['upload-complete']], [200, '?1']);
    t.same([b.body.sha256, b.body.size], [sha256(data), data.length]);
    t.equal(sha256(await stored(s, idOf(url))), sha256(data));
    t.equal(b.body.file_name, `upload-${idOf(url)}`, 'an upload the request names nothing for is named by its id');

    // Offset retrieval example B: a completed upload.
    const done = await http('HEAD', url, { headers: I });
    t.same(
      [done.status, done.headers['upload-complete'], done.headers['upload-offset'], done.headers['upload-length']],
      [204, '?1', String(data.length), String(data.length)],
    );
  });

  t.test(`interop ${v}: problem types - mismatching offset, completed upload, inconsistent length`, async (t) => {
    const { s } = await server(t);
    const created = await http('POST', `${s.url}/files`, { headers: { ...I, 'upload-complete': '?0', 'upload-length': '10' }, body: 'hello' });
    const url = created.headers.location as string;
    const partial = { ...I, 'content-type': 'application/partial-upload' };

    const stale = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?1', 'upload-offset': '2' }, body: 'llo' });
    t.equal(stale.status, 409);
    t.equal(stale.headers['upload-offset'], '5', 'The response MUST include the correct offset in the Upload-Offset header field');
    t.match(stale.headers['content-type'], /^application\/problem\+json/);
    t.match(stale.body, {
      type: 'https://iana.org/assignments/http-problem-types#mismatching-upload-offset',
      'expected-offset': 5,
      'provided-offset': 2,
      code: 'offset_mismatch',
    });

    const mismatch = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?1', 'upload-offset': '5', 'upload-length': '11' }, body: 'world' });
    t.equal(mismatch.status, 400, 'a length that changes');
    t.match(mismatch.body, { type: 'https://iana.org/assignments/http-problem-types#inconsistent-upload-length', code: 'inconsistent_length' });

    const last = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?1', 'upload-offset': '5' }, body: 'world' });
    t.equal(last.status, 200);

    const more = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?1', 'upload-offset': '10' }, body: 'x' });
    t.equal(more.status, 400, 'a non-empty append to a completed upload is an inconsistent length');
    t.match(more.body, { type: 'https://iana.org/assignments/http-problem-types#inconsistent-upload-length' });
    const empty = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?1', 'upload-offset': '10' } });
    t.equal(empty.status, 410, 'an empty one gets 410');
    t.match(empty.body, { type: 'https://iana.org/assignments/http-problem-types#completed-upload', code: 'upload_completed' });
    t.equal((await stored(s, idOf(url))).toString(), 'helloworld', 'the completed upload is untouched');
  });

  t.test(`interop ${v}: bytes past the declared length reject the request and deactivate the upload`, async (t) => {
    const { s } = await server(t);
    const created = await http('POST', `${s.url}/files`, { headers: { ...I, 'upload-complete': '?0', 'upload-length': '8' }, body: 'abc' });
    const url = created.headers.location as string;
    const partial = { ...I, 'content-type': 'application/partial-upload' };
    // Chunked: no Content-Length to check up front ("It is not sufficient to rely on the
    // Content-Length header field for enforcement because the header field might not be present").
    const { Readable } = await import('node:stream');
    const over = await http('PATCH', url, {
      headers: { ...partial, 'upload-complete': '?0', 'upload-offset': '3' },
      body: Readable.from([Buffer.from('defghijk')]),
    });
    t.equal(over.status, 400);
    t.match(over.body, { type: 'https://iana.org/assignments/http-problem-types#inconsistent-upload-length' });
    const after = await http('HEAD', url, { headers: I });
    t.equal(after.status, 410, '"marking the upload resource invalid and rejecting any further interaction with it"');
    const native = await http('GET', `${s.url}/v1/uploads/${idOf(url)}`);
    t.equal(native.body.status, 'failed');
  });

  t.test(`interop ${v}: fields are structured fields; an invalid one is ignored as a whole`, async (t) => {
    const { s } = await server(t);
    // Parameters on an Item are allowed; its value is what counts.
    const withParams = await http('POST', `${s.url}/files`, { headers: { ...I, 'upload-complete': '?0;x=1', 'upload-length': '4;unit=bytes' }, body: 'ab' });
    t.equal(withParams.status, 201);
    const url = withParams.headers.location as string;
    t.equal((await http('HEAD', url, { headers: I })).headers['upload-length'], '4');
    const partial = { ...I, 'content-type': 'application/partial-upload' };
    const notBoolean = await http('PATCH', url, { headers: { ...partial, 'upload-complete': 'yes', 'upload-offset': '2' }, body: 'cd' });
    t.equal(notBoolean.status, 400, 'Upload-Complete: yes is ignored, so it is missing');
    const decimal = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?1', 'upload-offset': '2.0' }, body: 'cd' });
    t.equal(decimal.status, 400, 'Upload-Offset: 2.0 is not an Integer, so it is missing');
    const badLength = await http('POST', `${s.url}/files`, { headers: { ...I, 'upload-complete': '?0', 'upload-length': '"4"' } });
    t.equal(badLength.status, 201, 'an Upload-Length that is a String is ignored');
    t.equal((await http('HEAD', badLength.headers.location as string, { headers: I })).headers['upload-length'], undefined, 'the length is unknown');
    const ok = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?1', 'upload-offset': '2' }, body: 'cd' });
    t.equal(ok.status, 200);
    t.equal((await stored(s, idOf(url))).toString(), 'abcd');
  });
}

t.test('interop 8: OPTIONS announces Accept-Patch with application/partial-upload and Upload-Limit', async (t) => {
  const { s } = await server(t, { MAX_UPLOAD_SIZE: '1GiB', UPLOAD_TTL: '2h' });
  const res = await http('OPTIONS', `${s.url}/files`, { headers: { 'upload-draft-interop-version': '8' } });
  t.equal(res.status, 204);
  t.ok(
    String(res.headers['accept-patch'])
      .split(',')
      .map((x) => x.trim())
      .includes('application/partial-upload'),
    'the full application/partial-upload media type',
  );
  const limit = parseDictionary(res.headers['upload-limit'] as string);
  t.same([limit.get('max-size')?.[0], limit.get('max-age')?.[0]], [1024 ** 3, 7200]);
});

t.test('interop 8: a 413 carries Upload-Limit; a 100-continue is still answered before the 104', async (t) => {
  const { s, host } = await server(t, { MAX_UPLOAD_SIZE: '1MiB' });
  const big = await http('POST', `${s.url}/files`, {
    headers: { 'upload-draft-interop-version': '8', 'upload-complete': '?0', 'upload-length': String(2 * 1024 * 1024) },
  });
  t.equal(big.status, 413);
  t.equal(parseDictionary(big.headers['upload-limit'] as string).get('max-size')?.[0], 1024 * 1024);

  const req = rawRequest(
    s.url,
    `POST /files HTTP/1.1\nHost: ${host}\nUpload-Draft-Interop-Version: 8\nUpload-Complete: ?1\nContent-Length: 5\nExpect: 100-continue\n`,
  );
  await req.start();
  const deadline = Date.now() + 5000;
  while (!req.received.includes('104 Upload') && Date.now() < deadline) await sleep(10);
  await req.send('hello');
  await req.responseHead();
  while (!/HTTP\/1\.1 200/.test(req.received) && Date.now() < deadline) await sleep(10);
  req.socket.destroy();
  const statuses = messages(req.received).map((m) => m.status);
  t.same(statuses, [100, 104, 200], '"the server MUST NOT omit the 100 (Continue) response because it has sent ... 104"');
});

t.test('interop 8: Content-Digest on an append is checked; a mismatch appends nothing', async (t) => {
  const { s } = await server(t);
  const I = { 'upload-draft-interop-version': '8' };
  const created = await http('POST', `${s.url}/files`, { headers: { ...I, 'upload-complete': '?0', 'upload-length': '6' } });
  const url = created.headers.location as string;
  const digest = (x: string) => `sha-256=:${createHash('sha256').update(x).digest('base64')}:`;
  const partial = { ...I, 'content-type': 'application/partial-upload', 'upload-offset': '0' };
  const bad = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?0', 'content-digest': digest('other') }, body: 'abc' });
  t.equal(bad.status, 422);
  t.equal((await http('HEAD', url, { headers: I })).headers['upload-offset'], '0', 'nothing was appended');
  const good = await http('PATCH', url, { headers: { ...partial, 'upload-complete': '?0', 'content-digest': digest('abc') }, body: 'abc' });
  t.same([good.status, good.headers['upload-offset']], [204, '3']);
});

t.test('interop 5, 6, 7 and 8 side by side on one server', async (t) => {
  const { s } = await server(t);
  for (const v of [5, 6, 7, 8]) {
    const I = { 'upload-draft-interop-version': String(v) };
    const created = await http('POST', `${s.url}/files`, { headers: { ...I, 'upload-complete': '?0', 'upload-length': '6' }, body: 'abc' });
    t.equal(created.status, 201, `interop ${v}: created`);
    t.equal(created.headers['upload-draft-interop-version'], String(v));
    const url = created.headers.location as string;
    const type = v >= 6 ? 'application/partial-upload' : 'application/octet-stream';
    const done = await http('PATCH', url, { headers: { ...I, 'upload-complete': '?1', 'upload-offset': '3', 'content-type': type }, body: 'def' });
    t.same([done.status, done.headers['upload-complete']], [200, '?1'], `interop ${v}: completed`);
    t.equal((await stored(s, idOf(url))).toString(), 'abcdef');
    const limit = (await http('HEAD', url, { headers: I })).headers['upload-limit'];
    if (v === 5) t.equal(limit, undefined, 'interop 5 has no Upload-Limit');
    else t.ok(parseDictionary(limit as string).has('max-size'), `interop ${v}: Upload-Limit`);
  }
  const unknown = await http('POST', `${s.url}/files`, { headers: { 'upload-draft-interop-version': '9', 'upload-complete': '?1' }, body: 'x' });
  t.equal(unknown.status, 400, 'an interop version this server does not speak');
});

for (const v of [7, 8] as const) {
  t.test(`interop ${v}: a draft client's optimistic creation breaks mid-body and resumes from the 104's Location`, async (t) => {
    const { optimisticCreate, resume } = await import('../helpers/ietf-client.js');
    const { s } = await server(t);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const first = await optimisticCreate(`${s.url}/files`, v, data, 1024 * 1024);
    t.equal(first.status, undefined, 'no final response: the connection broke');
    t.ok(first.location, 'but the 104 gave the upload URL');
    const resumed = await resume(first.location as string, v, data);
    t.ok(resumed.offset > 0 && resumed.offset <= 1024 * 1024, `resumed from ${resumed.offset}`);
    t.same([resumed.status, resumed.complete], [200, '?1']);
    t.equal(JSON.parse(resumed.body).sha256, sha256(data));
    t.equal(sha256(await stored(s, idOf(first.location as string))), sha256(data), 'the file is whole');

    const whole = await optimisticCreate(`${s.url}/files`, v, data);
    t.same([whole.status, whole.interim.map((i) => i.status)[0]], [200, 104], 'unbroken: a 104, then the 200');
  });
}
