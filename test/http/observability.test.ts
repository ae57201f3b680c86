import t from 'tap';
import { createUpload, http, putChunk, sha256, startServer } from '../helpers/server.js';

const TOKEN = 'observability-token-0123456789';

t.test('OpenAPI 3 document from the route schemas, and a docs page; both without credentials', async (t) => {
  const s = await startServer(t, { env: { AUTH_TOKENS: `${TOKEN}:ops` } });
  const res = await http('GET', `${s.url}/openapi.json`);
  t.equal(res.status, 200);
  const doc = res.body;
  t.equal(doc.openapi, '3.0.3');
  t.equal(doc.info.title, 'sluice');
  t.match(doc.info.version, /^\d+\.\d+\.\d+/);
  const routes: [string, string, string[]][] = [
    ['/v1/uploads', 'post', ['201', '400', '413']],
    ['/v1/uploads', 'get', ['200', '400']],
    ['/v1/uploads/{id}', 'get', ['200', '404', '410']],
    ['/v1/uploads/{id}', 'put', ['200', '400', '409', '422']],
    ['/v1/uploads/{id}', 'delete', ['204', '404']],
    ['/v1/uploads/{id}/chunks/{index}', 'put', ['200', '400', '409', '415', '422']],
    ['/v1/uploads/{id}/finish', 'post', ['200', '202', '409', '422', '503']],
    ['/v1/uploads/{id}/content', 'get', ['200', '206', '404', '416']],
    ['/healthz', 'get', ['200', '503']],
  ];
  for (const [path, method, statuses] of routes) {
    const op = doc.paths[path]?.[method];
    t.ok(op, `${method.toUpperCase()} ${path} is documented`);
    for (const status of statuses) t.ok(op?.responses?.[status], `${method.toUpperCase()} ${path} documents ${status}`);
  }
  const create = doc.paths['/v1/uploads'].post;
  t.same(create.requestBody.content['application/json'].schema.required, ['file_name', 'size']);
  t.ok(create.responses['400'].content['application/problem+json'].schema.properties.code, 'problem documents are described as application/problem+json');
  t.notOk(doc.paths['/files'], 'the tus endpoint is described by its own specification');
  const docs = await fetch(`${s.url}/docs/`);
  t.equal(docs.status, 200);
  const page = await docs.text();
  t.match(page, /<title>sluice API<\/title>/, 'branded sluice');
  t.match(page, /src="\/docs\/swagger-ui-bundle\.js"/);
  t.notMatch(page, /fastify/i, 'no fastify logo or name');
  t.equal((await fetch(`${s.url}/docs/`, { method: 'HEAD' })).status, 200, 'HEAD /docs/');
  for (const [file, type, min] of [
    ['swagger-ui.css', /^text\/css/, 10_000],
    ['swagger-ui-bundle.js', /^text\/javascript/, 500_000],
    ['docs.js', /^text\/javascript/, 50],
  ] as const) {
    const res = await fetch(`${s.url}/docs/${file}`);
    t.equal(res.status, 200, file);
    t.match(res.headers.get('content-type'), type);
    t.ok((await res.arrayBuffer()).byteLength > min, `${file} is served`);
  }
  t.same((await http('GET', `${s.url}/openapi.json`)).body, doc, 'the same document every time');
  t.equal((await http('GET', `${s.url}/v1/uploads`)).status, 401, 'the API itself still needs a token');
});

t.test('Prometheus metrics: uploads, bytes, durations, active uploads and staged bytes', async (t) => {
  const s = await startServer(t);
  const a = await createUpload(s.url, { file_name: 'a', size: 6, chunk_size: 3, sha256: sha256('abcdef') });
  await putChunk(s.url, a.id, 0, Buffer.from('abc'));
  await putChunk(s.url, a.id, 1, Buffer.from('def'));
  await http('POST', `${s.url}/v1/uploads/${a.id}/finish`, { json: {} });
  const bad = await createUpload(s.url, { file_name: 'b', size: 3, sha256: sha256('zzz') });
  await putChunk(s.url, bad.id, 0, Buffer.from('abc'));
  await http('POST', `${s.url}/v1/uploads/${bad.id}/finish`, { json: {} });
  const gone = await createUpload(s.url, { file_name: 'c', size: 3 });
  await http('DELETE', `${s.url}/v1/uploads/${gone.id}`);
  const open = await createUpload(s.url, { file_name: 'd', size: 10 });
  await putChunk(s.url, open.id, 0, Buffer.from('0123456789'));
  const tus = await http('POST', `${s.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': '4' } });
  await http('PATCH', tus.headers.location as string, {
    headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' },
    body: 'tus!',
  });

  const res = await fetch(`${s.url}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const value = (line: string) => Number(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
  t.equal(value('sluice_uploads_created_total{protocol="native"}'), 4);
  t.equal(value('sluice_uploads_created_total{protocol="tus"}'), 1);
  t.equal(value('sluice_uploads_completed_total{protocol="native"}'), 1);
  t.equal(value('sluice_uploads_completed_total{protocol="tus"}'), 1);
  t.equal(value('sluice_uploads_failed_total{protocol="native"}'), 1);
  t.equal(value('sluice_uploads_aborted_total'), 1);
  t.equal(value('sluice_bytes_received_total{protocol="native"}'), 6 + 3 + 10);
  t.equal(value('sluice_bytes_received_total{protocol="tus"}'), 4);
  t.equal(value('sluice_chunk_duration_seconds_count{protocol="native"}'), 4);
  t.equal(value('sluice_finish_duration_seconds_count{protocol="native"}'), 1);
  t.equal(value('sluice_active_uploads'), 1, 'the one still uploading');
  t.equal(value('sluice_staging_bytes'), 10);
  // Four chunks and one tus append, one after another: nothing to share a commit with.
  t.equal(value('sluice_ledger_commit_writes_total'), 5);
  t.equal(value('sluice_ledger_commits_total'), 5);
  t.match(text, /^sluice_process_resident_memory_bytes \d+/m, 'process metrics too');
});

t.test('request logs carry the request id and the upload id', async (t) => {
  const { Writable } = await import('node:stream');
  const logs: Record<string, unknown>[] = [];
  const stream = new Writable({ write: (chunk, _enc, cb) => (logs.push(JSON.parse(String(chunk))), cb()) });
  const s = await startServer(t, { overrides: { logger: { level: 'info', stream } } });
  const up = await createUpload(s.url, { file_name: 'a', size: 3 });
  await putChunk(s.url, up.id, 0, Buffer.from('abc'), { 'x-request-id': 'req-42' });
  const lines = logs.filter((l) => l.reqId === 'req-42');
  t.ok(lines.length >= 2, 'incoming request and request completed');
  // "incoming request" is written on arrival, before the route is known; every later line has the id.
  t.ok(
    lines.filter((l) => l.msg !== 'incoming request').every((l) => l.uploadId === up.id),
    'each later line with the upload id',
  );
  t.ok(lines.some((l) => l.msg === 'request completed' && (l.res as { statusCode: number }).statusCode === 200));
});
