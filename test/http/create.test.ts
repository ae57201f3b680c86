import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { http, startServer } from '../helpers/server.js';

t.test('create: 201 with the session, a Location header and a preallocated staging file', async (t) => {
  const s = await startServer(t, { env: { DEFAULT_CHUNK_SIZE: '1MiB' } });
  const res = await http('POST', `${s.url}/v1/uploads`, {
    json: { file_name: 'movie.mp4', size: 5 * 1024 * 1024 + 1, content_type: 'video/mp4', metadata: { album: 'x' } },
  });
  t.equal(res.status, 201);
  const b = res.body;
  t.match(b.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.equal(b.file_name, 'movie.mp4');
  t.equal(b.size, 5 * 1024 * 1024 + 1);
  t.equal(b.chunk_size, 1024 * 1024, 'DEFAULT_CHUNK_SIZE applies');
  t.equal(b.total_chunks, 6, 'ceil(size / chunk_size)');
  t.equal(b.status, 'uploading');
  t.equal(b.content_type, 'video/mp4');
  t.same(b.metadata, { album: 'x' });
  t.ok(Date.parse(b.expires_at) - Date.now() > 23 * 3600_000, 'expires in UPLOAD_TTL (24h)');
  t.equal(res.headers.location, `${s.url}/v1/uploads/${b.id}`);
  t.match(b.upload_url, new RegExp(`^${s.url}/v1/uploads/${b.id}\\?expires=\\d+&signature=[\\w-]{43}$`), 'a signed upload URL');
  t.match(b.chunk_url_template, new RegExp(`^${s.url}/v1/uploads/${b.id}/chunks/\\{index\\}\\?expires=`));
  const st = await fs.stat(path.join(s.dataDir, 'staging', b.id));
  t.equal(st.size, b.size, 'staging file has the upload size');
  const row = s.db.prepare('SELECT status, size, total_chunks FROM uploads WHERE id = ?').get(b.id);
  t.same(row, { status: 'uploading', size: b.size, total_chunks: 6 }, 'ledger row');
});

t.test('create: size 0 is a valid upload with no chunks', async (t) => {
  const s = await startServer(t);
  const res = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'empty', size: 0 } });
  t.equal(res.status, 201);
  t.equal(res.body.total_chunks, 0);
  const fin = await http('POST', `${s.url}/v1/uploads/${res.body.id}/finish`, {
    json: { sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
  });
  t.equal(fin.status, 200);
  t.equal(fin.body.status, 'completed');
  t.equal((await fs.stat(path.join(s.dataDir, fin.body.location.path))).size, 0);
});

t.test('create: bad input is refused with stable codes, and nothing is stored', async (t) => {
  const s = await startServer(t, {
    env: { MAX_UPLOAD_SIZE: '10MiB', MIN_CHUNK_SIZE: '1KiB', MAX_CHUNK_SIZE: '4MiB', MAX_CHUNKS: '100', DEFAULT_CHUNK_SIZE: '1MiB' },
  });
  const cases: [string, unknown, number, string][] = [
    ['missing file_name', { size: 1 }, 400, 'invalid_request'],
    ['missing size', { file_name: 'a' }, 400, 'invalid_request'],
    ['negative size', { file_name: 'a', size: -1 }, 400, 'invalid_request'],
    ['fractional size', { file_name: 'a', size: 1.5 }, 400, 'invalid_request'],
    ['string size', { file_name: 'a', size: 'ten' }, 400, 'invalid_request'],
    ['size beyond 2^53', { file_name: 'a', size: 2 ** 60 }, 400, 'invalid_request'],
    ['empty file_name', { file_name: '', size: 1 }, 400, 'invalid_request'],
    ['control character in file_name', { file_name: 'a\nb', size: 1 }, 400, 'invalid_request'],
    ['NUL in file_name', { file_name: 'a\u0000b', size: 1 }, 400, 'invalid_request'],
    ['file_name over 255 bytes (multi-byte)', { file_name: 'é'.repeat(200), size: 1 }, 400, 'invalid_request'],
    ['file_name over 255 characters', { file_name: 'a'.repeat(256), size: 1 }, 400, 'invalid_request'],
    ['bad sha256', { file_name: 'a', size: 1, sha256: 'xyz' }, 400, 'invalid_request'],
    ['unknown field', { file_name: 'a', size: 1, owner: 'root' }, 400, 'invalid_request'],
    ['bad content_type', { file_name: 'a', size: 1, content_type: 'not a type' }, 400, 'invalid_request'],
    ['non-string metadata', { file_name: 'a', size: 1, metadata: { a: 1 } }, 400, 'invalid_request'],
    ['over MAX_UPLOAD_SIZE', { file_name: 'a', size: 10 * 1024 * 1024 + 1 }, 413, 'upload_too_large'],
    ['chunk_size under MIN_CHUNK_SIZE', { file_name: 'a', size: 10, chunk_size: 1023 }, 400, 'chunk_size_out_of_range'],
    ['chunk_size over MAX_CHUNK_SIZE', { file_name: 'a', size: 10, chunk_size: 4 * 1024 * 1024 + 1 }, 400, 'chunk_size_out_of_range'],
    ['more than MAX_CHUNKS chunks', { file_name: 'a', size: 101 * 1024, chunk_size: 1024 }, 400, 'too_many_chunks'],
  ];
  for (const [name, json, status, code] of cases) {
    const res = await http('POST', `${s.url}/v1/uploads`, { json });
    t.equal(res.status, status, `${name}: status`);
    t.equal(res.body?.code, code, `${name}: code`);
    t.match(res.headers['content-type'], /^application\/problem\+json/, `${name}: problem+json`);
  }
  const malformed = await http('POST', `${s.url}/v1/uploads`, { body: '{"file_name": "a", "size": ', headers: { 'content-type': 'application/json' } });
  t.equal(malformed.status, 400);
  t.equal(malformed.body.code, 'invalid_request', 'malformed JSON');
  const wrongType = await http('POST', `${s.url}/v1/uploads`, { body: 'file_name=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  t.equal(wrongType.status, 415);
  t.equal(wrongType.body.code, 'unsupported_media_type');
  t.equal((s.db.prepare('SELECT COUNT(*) AS n FROM uploads').get() as { n: number }).n, 0, 'no ledger rows');
  t.same(await fs.readdir(path.join(s.dataDir, 'staging')), [], 'no staging files');
  t.equal((await http('GET', `${s.url}/healthz`)).status, 200, 'still serving');
});

t.test('create: 1 chunk when size equals chunk_size; MAX_CHUNKS exactly is allowed', async (t) => {
  const s = await startServer(t, { env: { MAX_CHUNKS: '4' } });
  const one = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size: 1000, chunk_size: 1000 } });
  t.equal(one.body.total_chunks, 1);
  const four = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'a', size: 4000, chunk_size: 1000 } });
  t.equal(four.status, 201);
  t.equal(four.body.total_chunks, 4);
});
