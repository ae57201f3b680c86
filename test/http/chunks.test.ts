import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { createUpload, http, putChunk, sha256, startServer, type TestContext } from '../helpers/server.js';

const CHUNK = 1000;

async function setup(t: TestContext, env: Record<string, string> = {}) {
  const s = await startServer(t, { env });
  const data = randomBytes(2500);
  const up = await createUpload(s.url, { file_name: 'data.bin', size: data.length, chunk_size: CHUNK, sha256: sha256(data) });
  const part = (i: number) => data.subarray(i * CHUNK, Math.min((i + 1) * CHUNK, data.length));
  const chunkRows = (): any[] => s.db.prepare('SELECT idx, offset, length, sha256 FROM chunks WHERE upload_id = ? ORDER BY idx').all(up.id);
  return { s, data, up, part, chunkRows };
}

t.test('a chunk is written at its offset, hashed and recorded; the receipt reports progress', async (t) => {
  const { s, up, part, chunkRows } = await setup(t);
  const res = await putChunk(s.url, up.id, 1, part(1));
  t.equal(res.status, 200);
  t.same(res.body, {
    index: 1,
    offset: 1000,
    length: 1000,
    sha256: sha256(part(1)),
    chunks_received: 1,
    bytes_received: 1000,
    total_chunks: 3,
    part_number: 2,
    etag: `"${sha256(part(1))}"`,
  });
  t.equal(res.headers.etag, `"${sha256(part(1))}"`, 'the ETag header is the chunk SHA-256');
  t.same(chunkRows(), [{ idx: 1, offset: 1000, length: 1000, sha256: sha256(part(1)) }], 'ledger row');
  const staged = await fs.readFile(path.join(s.dataDir, 'staging', up.id));
  t.same(staged.subarray(1000, 2000), part(1), 'bytes at the chunk offset');
  const last = await putChunk(s.url, up.id, 2, part(2));
  t.same([last.status, last.body.length, last.body.bytes_received], [200, 500, 1500], 'short last chunk');
  const status = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.same(status.body.missing_chunks, [0]);
  t.equal(status.body.chunks_received, 2);
  t.equal(status.body.progress, 0.6);
});

t.test('Transfer-Encoding: chunked bodies work', async (t) => {
  const { s, up, part, chunkRows } = await setup(t);
  // A stream of unknown length makes the client send Transfer-Encoding: chunked.
  const body = Readable.from([part(0).subarray(0, 300), part(0).subarray(300)]);
  const res = await putChunk(s.url, up.id, 0, body);
  t.equal(res.status, 200);
  t.equal(chunkRows()[0].sha256, sha256(part(0)));
});

t.test('Content-Range PUT to the upload URL places exactly one chunk', async (t) => {
  const { s, up, part, chunkRows } = await setup(t);
  const put = (range: string, body: Buffer) =>
    http('PUT', `${s.url}/v1/uploads/${up.id}`, { body, headers: { 'content-type': 'application/octet-stream', 'content-range': range } });
  t.equal((await put('bytes 1000-1999/2500', part(1))).status, 200);
  t.equal((await put('bytes 2000-2499/2500', part(2))).status, 200);
  const cases: [string, string][] = [
    ['bytes 500-1499/2500', 'not aligned'],
    ['bytes 0-1999/2500', 'two chunks'],
    ['bytes 0-999/3000', 'wrong total size'],
    ['bytes 0-999/*', 'unknown total'],
    ['bytes=0-999/2500', 'malformed'],
    ['bytes 999-0/2500', 'reversed'],
    ['items 0-999/2500', 'wrong unit'],
    ['bytes 0-99999999999999999/2500', 'huge'],
  ];
  for (const [range, name] of cases) {
    const res = await put(range, part(0));
    t.same([res.status, res.body.code], [400, 'invalid_range'], name);
  }
  const none = await http('PUT', `${s.url}/v1/uploads/${up.id}`, { body: part(0), headers: { 'content-type': 'application/octet-stream' } });
  t.same([none.status, none.body.code], [400, 'invalid_range'], 'no Content-Range');
  t.same(
    chunkRows().map((r) => r.idx),
    [1, 2],
    'only the valid chunks are recorded',
  );
});

t.test('the client checksum is verified: X-Chunk-Sha256 and Content-Digest (RFC 9530)', async (t) => {
  const { s, up, part, chunkRows } = await setup(t);
  const b64 = (buf: Buffer) => Buffer.from(sha256(buf), 'hex').toString('base64');
  t.equal((await putChunk(s.url, up.id, 0, part(0), { 'x-chunk-sha256': sha256(part(0)).toUpperCase() })).status, 200, 'hex, any case');
  t.equal(
    (await putChunk(s.url, up.id, 1, part(1), { 'content-digest': `sha-512=:AAAA:, sha-256=:${b64(part(1))}:` })).status,
    200,
    'Content-Digest among others',
  );

  const bad = await putChunk(s.url, up.id, 2, part(2), { 'x-chunk-sha256': sha256(part(1)) });
  t.same([bad.status, bad.body.code], [422, 'checksum_mismatch'], 'X-Chunk-Sha256 mismatch');
  t.equal(bad.body.sha256, sha256(part(2)), 'the problem says what the bytes hash to');
  const badDigest = await putChunk(s.url, up.id, 2, part(2), { 'content-digest': `sha-256=:${b64(part(0))}:` });
  t.same([badDigest.status, badDigest.body.code], [422, 'checksum_mismatch'], 'Content-Digest mismatch');
  const cases: [Record<string, string>, number, string, string][] = [
    [{ 'content-digest': 'sha-512=:AAAA:' }, 400, 'unsupported_digest_algorithm', 'no sha-256'],
    [{ 'content-digest': 'sha-256=abc' }, 400, 'invalid_request', 'not a byte sequence'],
    [{ 'content-digest': 'sha-256=:AAAA:' }, 400, 'invalid_request', 'wrong digest length'],
    [{ 'content-digest': '%%%' }, 400, 'invalid_request', 'not a dictionary'],
    [{ 'x-chunk-sha256': 'abc' }, 400, 'invalid_request', 'short hex'],
    [{ 'x-chunk-sha256': sha256(part(2)), 'content-digest': `sha-256=:${b64(part(0))}:` }, 400, 'invalid_request', 'headers disagree'],
  ];
  for (const [headers, status, code, name] of cases) {
    const res = await putChunk(s.url, up.id, 2, part(2), headers);
    t.same([res.status, res.body.code], [status, code], name);
  }
  t.same(
    chunkRows().map((r) => r.idx),
    [0, 1],
    'chunk 2 was never recorded',
  );
  t.equal((await putChunk(s.url, up.id, 2, part(2), { 'x-chunk-sha256': sha256(part(2)) })).status, 200, 'the right bytes still go in');
});

t.test('the same chunk again: same bytes are an idempotent 200 and nothing is rewritten; other bytes 409', async (t) => {
  const { s, up, part, chunkRows } = await setup(t);
  t.equal((await putChunk(s.url, up.id, 0, part(0))).status, 200);
  // Mark the staged bytes: if the retry rewrote the chunk, the mark would disappear.
  const staging = path.join(s.dataDir, 'staging', up.id);
  const fh = await fs.open(staging, 'r+');
  await fh.write(Buffer.from('MARK'), 0, 4, 0);
  await fh.close();
  const again = await putChunk(s.url, up.id, 0, part(0));
  t.equal(again.status, 200);
  t.equal(again.body.chunks_received, 1, 'not counted twice');
  t.equal((await fs.readFile(staging)).subarray(0, 4).toString(), 'MARK', 'the retry did not write');

  const other = Buffer.from(part(0));
  other[10] = (other[10] as number) ^ 0xff;
  const conflict = await putChunk(s.url, up.id, 0, other);
  t.same([conflict.status, conflict.body.code], [409, 'chunk_conflict']);
  const conflictByHeader = await putChunk(s.url, up.id, 0, other, { 'x-chunk-sha256': sha256(other) });
  t.same([conflictByHeader.status, conflictByHeader.body.code], [409, 'chunk_conflict'], 'detected from the header before reading');
  t.same(chunkRows(), [{ idx: 0, offset: 0, length: 1000, sha256: sha256(part(0)) }], 'the ledger keeps the first bytes');
});

t.test('body length must match the chunk; overlong bodies are cut off and never recorded', async (t) => {
  const { s, up, part, data, chunkRows } = await setup(t);
  const short = await putChunk(s.url, up.id, 0, part(0).subarray(0, 999));
  t.same([short.status, short.body.code, short.body.expected_length], [400, 'chunk_length_mismatch', 1000], 'short, with Content-Length');
  const long = await putChunk(s.url, up.id, 0, data.subarray(0, 1001));
  t.same([long.status, long.body.code], [400, 'chunk_length_mismatch'], 'long, with Content-Length');
  const longChunked = await putChunk(s.url, up.id, 0, Readable.from([data.subarray(0, 600), data.subarray(600, 1200)]));
  t.same([longChunked.status, longChunked.body.code], [400, 'chunk_length_mismatch'], 'long, chunked');
  const shortChunked = await putChunk(s.url, up.id, 2, Readable.from([part(2).subarray(0, 100)]));
  t.same([shortChunked.status, shortChunked.body.code], [400, 'chunk_length_mismatch'], 'short, chunked');
  const empty = await putChunk(s.url, up.id, 1, Buffer.alloc(0));
  t.same([empty.status, empty.body.code], [400, 'chunk_length_mismatch'], 'empty');
  t.same(chunkRows(), [], 'nothing recorded');
  t.equal((await putChunk(s.url, up.id, 0, part(0))).status, 200, 'then the real chunk is accepted');
});

t.test('index off the grid, unknown or malformed ids, wrong content type', async (t) => {
  const { s, up, part } = await setup(t);
  const cases: [string, number, string, string][] = [
    [`/v1/uploads/${up.id}/chunks/3`, 400, 'invalid_range', 'index past the end'],
    [`/v1/uploads/${up.id}/chunks/-1`, 400, 'invalid_request', 'negative index'],
    [`/v1/uploads/${up.id}/chunks/1.5`, 400, 'invalid_request', 'fractional index'],
    [`/v1/uploads/${up.id}/chunks/01`, 400, 'invalid_request', 'leading zero'],
    [`/v1/uploads/${up.id}/chunks/99999999999999999999`, 400, 'invalid_request', 'huge index'],
    ['/v1/uploads/7f1d6a7e-0000-4000-8000-000000000000/chunks/0', 404, 'not_found', 'unknown id'],
    ['/v1/uploads/..%2F..%2Fetc%2Fpasswd/chunks/0', 400, 'invalid_request', 'path-like id'],
  ];
  for (const [url, status, code, name] of cases) {
    const res = await http('PUT', `${s.url}${url}`, { body: part(0), headers: { 'content-type': 'application/octet-stream' } });
    t.same([res.status, res.body?.code], [status, code], name);
  }
  const wrongType = await http('PUT', `${s.url}/v1/uploads/${up.id}/chunks/0`, { body: part(0), headers: { 'content-type': 'text/plain' } });
  t.same([wrongType.status, wrongType.body.code], [415, 'unsupported_media_type'], 'text/plain');
  const noType = await http('PUT', `${s.url}/v1/uploads/${up.id}/chunks/0`, { body: part(0) });
  t.equal(noType.status, 200, 'no Content-Type is taken as raw bytes (curl -T)');
});

t.test('a finished, aborted or expired upload takes no chunks', async (t) => {
  const { s, up, part, data } = await setup(t, { UPLOAD_TTL: '1h' });
  for (let i = 0; i < 3; i++) await putChunk(s.url, up.id, i, part(i));
  t.equal((await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} })).status, 200);
  const afterFinish = await putChunk(s.url, up.id, 0, part(0));
  t.same([afterFinish.status, afterFinish.body.code, afterFinish.body.upload_status], [409, 'upload_not_writable', 'completed']);

  const aborted = await createUpload(s.url, { file_name: 'a', size: 10 });
  t.equal((await http('DELETE', `${s.url}/v1/uploads/${aborted.id}`)).status, 204);
  const afterAbort = await putChunk(s.url, aborted.id, 0, data.subarray(0, 10));
  t.same([afterAbort.status, afterAbort.body.code], [409, 'upload_not_writable']);
});
