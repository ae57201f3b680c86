import t from 'tap';
import { http, sha256, startServer } from '../helpers/server.js';

const V = { 'tus-resumable': '1.0.0' };
const OCTET = { 'content-type': 'application/offset+octet-stream' };

async function tusServer(t: Parameters<typeof startServer>[0], opts: Parameters<typeof startServer>[1] = {}) {
  const s = await startServer(t, opts);
  const create = async (headers: Record<string, string>) => {
    const res = await http('POST', `${s.url}/files`, { headers: { ...V, ...headers } });
    return { res, url: res.headers.location as string | undefined };
  };
  const partial = async (body: string) => {
    const { url } = await create({ 'upload-concat': 'partial', 'upload-length': String(body.length) });
    if (!url) throw new Error('no partial');
    return { url, send: () => http('PATCH', url, { headers: { ...V, ...OCTET, 'upload-offset': '0' }, body }) };
  };
  return { s, create, partial };
}

t.test('a part belongs to one final upload at a time: a second final over it is refused with 409', async (t) => {
  const { s, create, partial } = await tusServer(t);
  const a = await partial('hello ');
  const b = await partial('world');
  const first = await create({ 'upload-concat': `final;${a.url} ${b.url}` });
  t.equal(first.res.status, 201);
  const second = await create({ 'upload-concat': `final;${a.url} ${b.url}` });
  t.equal(second.res.status, 409);
  t.match(second.res.text, /^part_in_use: /, 'a clear refusal in the tus body');
  t.equal(second.url, undefined, 'no upload was made for it');
  await a.send();
  await b.send();
  const done = await http('HEAD', first.url as string, { headers: V });
  t.same([done.headers['upload-offset'], done.headers['upload-length']], ['11', '11'], 'the first final completes');
  const id = (first.url as string).split('/').pop();
  t.same((await http('GET', `${s.url}/v1/uploads/${id}`)).body.sha256, sha256('hello world'));
});

t.test('a part used by an unfinished final cannot be terminated (409); the final can', async (t) => {
  const { create, partial } = await tusServer(t);
  const a = await partial('abc');
  const b = await partial('def');
  const final = await create({ 'upload-concat': `final;${a.url} ${b.url}` });
  await a.send();
  const del = await http('DELETE', a.url, { headers: V });
  t.equal(del.status, 409);
  t.match(del.text, /^part_in_use: /);
  t.equal((await http('HEAD', a.url, { headers: V })).headers['upload-offset'], '3', 'its bytes are kept');
  t.equal((await http('DELETE', final.url as string, { headers: V })).status, 204, 'the final is terminated');
  t.equal((await http('DELETE', a.url, { headers: V })).status, 204, 'then the part is free to go');
});

t.test('a local final reserves the room its copy needs: 507 before starting when the disk cannot hold it', async (t) => {
  const MiB = 1024 * 1024;
  const statfs = async () => ({ free: 3 * MiB, total: 1024 * MiB });
  const { create } = await tusServer(t, { env: { DISK_RESERVE: '0' }, overrides: { statfs } });
  const a = await create({ 'upload-concat': 'partial', 'upload-length': String(MiB) });
  const b = await create({ 'upload-concat': 'partial', 'upload-length': String(MiB) });
  t.equal(a.res.status, 201);
  t.equal(b.res.status, 201, 'the parts fit (2 of 3 MiB)');
  const final = await create({ 'upload-concat': `final;${a.url} ${b.url}` });
  t.equal(final.res.status, 507, 'the copy of 2 MiB does not fit in the 1 MiB left');
  t.match(final.res.text, /^insufficient_storage: /);
});
