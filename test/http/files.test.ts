import t from 'tap';
import { startS3, useS3Credentials } from '../helpers/s3.js';
import { createUpload, http, putChunk, sha256, startServer } from '../helpers/server.js';

/** A small completed upload of `owner` with this metadata and type. */
async function file(url: string, name: string, metadata: Record<string, string>, contentType: string, token: string) {
  const data = Buffer.from(`contents of ${name}`);
  const headers = { authorization: `Bearer ${token}` };
  const up = (
    await http('POST', `${url}/v1/uploads`, {
      json: { file_name: name, size: data.length, sha256: sha256(data), metadata, content_type: contentType },
      headers,
    })
  ).body;
  await putChunk(url, up.id, 0, data, headers);
  await http('POST', `${url}/v1/uploads/${up.id}/finish`, { json: {}, headers });
  return up.id as string;
}

t.test('GET /v1/files: your files, newest first, filtered by metadata, type and time, page by page, with download links', async (t) => {
  const alice = 'alice-token-0123456789';
  const bob = 'bob-token-0123456789ab';
  const s = await startServer(t, { env: { AUTH_TOKENS: `${alice}:alice,${bob}:bob` } });
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  const a = await file(s.url, 'a.png', { parent_content_type: 'post', parent_object_id: '7' }, 'image/png', alice);
  const b = await file(s.url, 'b.jpg', { parent_content_type: 'post', parent_object_id: '8' }, 'image/jpeg', alice);
  const c = await file(s.url, 'c.pdf', { parent_content_type: 'comment', parent_object_id: '7' }, 'application/pdf', alice);
  await file(s.url, 'd.png', { parent_object_id: '7' }, 'image/png', bob);
  await createUpload(s.url, { file_name: 'unfinished', size: 10 }).catch(() => undefined);

  const list = async (query: string, token = alice) => http('GET', `${s.url}/v1/files${query}`, { headers: as(token) });
  const ids = (r: Awaited<ReturnType<typeof list>>) => r.body.files.map((f: { id: string }) => f.id);
  t.same(ids(await list('')), [c, b, a], "alice's completed files only");
  t.same(ids(await list('?metadata.parent_object_id=7')), [c, a]);
  t.same(ids(await list('?metadata.parent_object_id=7&metadata.parent_content_type=post')), [a], 'seed 003: a parent object');
  t.same(ids(await list('?content_type=image/*')), [b, a]);
  t.same(ids(await list('?metadata.parent_object_id=7', bob)).length, 1, "bob's own");

  const first = await list('?limit=2');
  t.same([ids(first), typeof first.body.next_cursor], [[c, b], 'string']);
  const second = await list(`?limit=2&cursor=${first.body.next_cursor}`);
  t.same([ids(second), second.body.next_cursor], [[a], null]);

  const shown = (await list('?metadata.parent_object_id=8')).body.files[0];
  t.same(
    [shown.file_name, shown.content_type, shown.metadata, shown.status],
    ['b.jpg', 'image/jpeg', { parent_content_type: 'post', parent_object_id: '8' }, 'completed'],
  );
  const download = await fetch(shown.download_url);
  t.equal(await download.text(), 'contents of b.jpg', 'the signed link downloads without a token');

  const created = (await list(`?created_after=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).body.files;
  t.same(created, [], 'created_after in the future: none');

  for (const [query, why] of [
    ['?colour=red', /unknown parameter colour/],
    ['?limit=0', /limit must be/],
    ['?created_after=yesterday', /created_after/],
    ['?cursor=nonsense', /cursor is not one this server gave/],
  ] as const) {
    const r = await list(query);
    t.same([r.status, r.body.code], [400, 'invalid_request'], query);
    t.match(r.body.detail, why);
  }

  await http('PATCH', `${s.url}/v1/files/${b}`, { json: { metadata: { parent_object_id: '7' } }, headers: as(alice) });
  t.same(ids(await list('?metadata.parent_object_id=7')), [c, b, a], 'a changed file is found by its new metadata');
  await http('DELETE', `${s.url}/v1/files/${a}`, { headers: as(alice) });
  t.same(ids(await list('?metadata.parent_object_id=7')), [c, b], 'a deleted file is not listed');
  t.equal((await http('GET', `${s.url}/v1/files/${c}`, { headers: as(bob) })).status, 404, "another owner's file is not there");
  const range = await http('GET', `${s.url}/v1/files/${c}/content`, { headers: { ...as(alice), range: 'bytes=0-7' } });
  t.same([range.status, range.text, range.headers['content-range']], [206, 'contents', 'bytes 0-7/17'], 'a range of the file');
  t.equal((await http('GET', `${s.url}/v1/files/${c}/content`, { headers: as(bob) })).status, 404);
  const one = await http('GET', `${s.url}/v1/files/${c}`, { headers: as(alice) });
  t.same([one.status, one.body.file_name, typeof one.body.download_url], [200, 'c.pdf', 'string']);
});

t.test('the files routes on S3: listed by metadata, content as a 302 to the bucket, metadata changed, deleted from the bucket', async (t) => {
  useS3Credentials();
  const s3 = await startS3(t);
  const s = await startServer(t, { env: s3.env });
  const data = Buffer.from('bytes kept in the bucket');
  const up = (
    await http('POST', `${s.url}/v1/uploads`, {
      json: { file_name: 'photo.jpg', size: data.length, sha256: sha256(data), metadata: { parent_object_id: '42' }, content_type: 'image/jpeg' },
    })
  ).body;
  await putChunk(s.url, up.id, 0, data);
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.equal(fin.status, 200);
  const listed = await http('GET', `${s.url}/v1/files?metadata.parent_object_id=42&content_type=image/*`);
  t.same(
    listed.body.files.map((f: { id: string }) => f.id),
    [up.id],
  );
  const content = await http('GET', `${s.url}/v1/files/${up.id}/content`);
  t.equal(content.status, 302, 'a presigned URL of the bucket');
  const fromBucket = await fetch(String(content.headers.location));
  t.equal(Buffer.from(await fromBucket.arrayBuffer()).toString(), data.toString(), 'the bytes, straight from S3');
  const patched = await http('PATCH', `${s.url}/v1/files/${up.id}`, { json: { file_name: 'renamed.jpg', metadata: { parent_object_id: '43' } } });
  t.same([patched.status, patched.body.file_name], [200, 'renamed.jpg']);
  t.same((await http('GET', `${s.url}/v1/files?metadata.parent_object_id=42`)).body.files, []);
  t.same(await s3.keys(), [fin.body.location.key]);
  t.equal((await http('DELETE', `${s.url}/v1/files/${up.id}`)).status, 204);
  t.same(await s3.keys(), [], 'the object is gone from the bucket');
  t.equal((await http('DELETE', `${s.url}/v1/files/${up.id}`)).status, 204, 'deleting again is a no-op');
});
