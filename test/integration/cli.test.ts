import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { http, randomFile, sleep, startServer, tmpDir } from '../helpers/server.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/server/sluice.js');

function sluice(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
const lines = (s: string) =>
  s
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);

t.test('sluice upload / status / ls / download / abort against a real server', async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, 'state') };
  const a = await randomFile(work, 1_500_000, 'a.bin');
  const b = await randomFile(work, 10, 'b.txt');
  const up = await sluice(['--json', 'upload', a.file, b.file, '--chunk-size', '256KiB', '--parallel', '3'], env);
  t.equal(up.code, 0, up.stderr);
  const done = lines(up.stdout).filter((e) => e.event === 'done');
  t.same(
    done.map((d) => [d.sha256, d.size, d.resumed]),
    [
      [a.sha256, 1_500_000, false],
      [b.sha256, 10, false],
    ],
  );
  const stored = await http('GET', `${s.url}/v1/uploads/${done[0]!.id}`);
  t.same([stored.body.status, stored.body.sha256, stored.body.chunk_size, stored.body.file_name], ['completed', a.sha256, 256 * 1024, 'a.bin']);

  const plain = await sluice(['status', done[0]!.id], env);
  t.match(plain.stdout, new RegExp(`${done[0]!.id} completed: a\\.bin, 1\\.4 MiB of 1\\.4 MiB \\(6 of 6 chunks\\)`));
  const ls = await sluice(['--json', 'ls'], env);
  t.same(
    lines(ls.stdout).map((u) => u.file_name),
    ['b.txt', 'a.bin'],
    'newest first',
  );
  const target = path.join(work, 'back.bin');
  const dl = await sluice(['download', done[0]!.id, '-o', target], env);
  t.equal(dl.code, 0, dl.stderr);
  t.match(dl.stdout, /\(verified\)/);
  t.same(await fs.readFile(target), await fs.readFile(a.file));

  const fresh = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'x', size: 5 } });
  t.equal((await sluice(['abort', fresh.body.id], env)).code, 0);
  t.equal((await http('GET', `${s.url}/v1/uploads/${fresh.body.id}`)).body.status, 'aborted');
});

t.test('re-running an interrupted upload resumes it and sends only what is missing', async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, 'state') };
  const src = await randomFile(work, 64 * 64 * 1024, 'big.bin');
  const child = spawn(process.execPath, [CLI, '--json', 'upload', src.file, '--chunk-size', '64KiB', '--parallel', '1'], {
    env: { PATH: process.env.PATH, ...env },
  });
  // Interrupt it hard once the server holds some of the chunks.
  const count = () => (s.db.prepare('SELECT COALESCE(MAX(chunks_received), 0) AS n FROM uploads').get() as { n: number }).n;
  for (let i = 0; i < 400 && count() < 10; i++) await sleep(10);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const before = count();
  t.ok(before >= 10 && before < 64, `interrupted with ${before} of 64 chunks on the server`);

  const again = await sluice(['--json', 'upload', src.file, '--chunk-size', '64KiB'], env);
  t.equal(again.code, 0, again.stderr);
  const events = lines(again.stdout);
  const note = events.find((e) => e.event === 'note');
  t.match(note?.message, /^resuming upload [0-9a-f-]{36}: \d+ of 64 chunks are already on the server$/);
  t.ok(note && note.missing <= 64 - before, `only ${note?.missing} chunks sent again`);
  const done = events.find((e) => e.event === 'done');
  t.same([done?.sha256, done?.resumed], [src.sha256, true]);
  t.equal((s.db.prepare('SELECT COUNT(*) AS n FROM uploads').get() as { n: number }).n, 1, 'the same upload, not a new one');
  const third = await sluice(['--json', 'upload', src.file], env);
  t.equal(lines(third.stdout).find((e) => e.event === 'done')?.resumed, false, 'a finished upload is forgotten: uploading again starts anew');
});

t.test('exit codes and messages follow the server error codes', async (t) => {
  const s = await startServer(t, { env: { AUTH_TOKENS: 'cli-token-0123456789abcdef:alice' } });
  const work = await tmpDir(t);
  const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, 'state') };
  const src = await randomFile(work, 100, 'f.bin');
  const noToken = await sluice(['upload', src.file], env);
  t.same([noToken.code, noToken.stderr.trim()], [3, 'sluice: unauthorized: this server needs "Authorization: Bearer <token>"']);
  const withToken = { ...env, SLUICE_TOKEN: 'cli-token-0123456789abcdef' };
  const missing = await sluice(['status', '7f1d6a7e-0000-4000-8000-000000000000'], withToken);
  t.same([missing.code, missing.stderr.trim()], [4, 'sluice: not_found: no upload 7f1d6a7e-0000-4000-8000-000000000000']);
  const up = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'x', size: 5 }, headers: { authorization: 'Bearer cli-token-0123456789abcdef' } });
  await sluice(['abort', up.body.id], withToken);
  t.equal((await sluice(['abort', up.body.id], withToken)).code, 0, 'aborting twice is fine');
  const down = await sluice(['--server', 'http://127.0.0.1:9', 'ls'], withToken);
  t.equal(down.code, 8);
  t.match(down.stderr, /^sluice: network_error: cannot reach http:\/\/127\.0\.0\.1:9/);
  const usage = await sluice(['upload', src.file, '--parallel', 'lots'], withToken);
  t.equal(usage.code, 2);
  const help = await sluice(['--help'], env);
  t.match(help.stdout, /Exit codes:[\s\S]*4 {2}no such upload/);
  const serveHelp = await sluice(['serve', '--help'], env);
  t.equal(serveHelp.code, 0);
  t.match(serveHelp.stdout, /Environment[\s\S]*\n {2}DATA_DIR +SQLite ledger[\s\S]*\n {2}S3_BUCKET /, 'serve --help documents the environment');
});

t.test('tus and IETF uploads in the native view: a stream has no grid, partials are listed under their final', async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, 'state') };
  const tus = { 'tus-resumable': '1.0.0' };
  // An unfinished tus upload: an offset of a length, no chunks.
  const open = await http('POST', `${s.url}/files`, { headers: { ...tus, 'upload-length': '100', 'upload-metadata': `filename ${btoa('half.bin')}` } });
  const openId = String(open.headers.location).split('/').pop() as string;
  await http('PATCH', String(open.headers.location), {
    headers: { ...tus, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
    body: 'x'.repeat(40),
  });
  const view = await http('GET', `${s.url}/v1/uploads/${openId}`);
  t.match(view.body, { layout: 'stream', protocol: 'tus', size: 100, bytes_received: 40, missing_chunks: [], missing_chunks_count: 0 });
  t.notOk('total_chunks' in view.body || 'chunks_received' in view.body || 'chunk_size' in view.body, 'no chunk grid');
  const status = await sluice(['status', openId], env);
  t.match(status.stdout, new RegExp(`${openId} uploading: half\\.bin, 40 B of 100 B \\(appended, tus\\)`));
  // A deferred length is shown as unknown, not as 0.
  const deferred = await http('POST', `${s.url}/files`, { headers: { ...tus, 'upload-defer-length': '1' } });
  const deferredView = await http('GET', `${s.url}/v1/uploads/${String(deferred.headers.location).split('/').pop()}`);
  t.notOk('size' in deferredView.body, 'no size while the length is deferred');
  t.equal(deferredView.body.file_name, `upload-${deferredView.body.id}`, 'named by its id when the request names nothing');
  // An IETF upload named by its Content-Disposition.
  const ietf = await http('POST', `${s.url}/files`, {
    headers: { 'upload-draft-interop-version': '8', 'upload-complete': '?1', 'content-disposition': 'inline; filename="photo.jpg"' },
    body: 'jpeg bytes',
  });
  t.same([ietf.body.file_name, ietf.body.protocol, ietf.body.layout], ['photo.jpg', 'ietf', 'stream']);

  // tus concatenation (tus-js-client parallelUploads makes these): the partials under the final.
  const parts: string[] = [];
  for (const piece of ['hello ', 'world']) {
    const p = await http('POST', `${s.url}/files`, {
      headers: { ...tus, 'upload-length': String(piece.length), 'upload-concat': 'partial', 'content-type': 'application/offset+octet-stream' },
      body: piece,
    });
    parts.push(String(p.headers.location));
  }
  const final = await http('POST', `${s.url}/files`, {
    headers: { ...tus, 'upload-concat': `final;${parts.join(' ')}`, 'upload-metadata': `filename ${btoa('hw.txt')}` },
  });
  const finalId = String(final.headers.location).split('/').pop() as string;
  const ls = lines((await sluice(['--json', 'ls'], env)).stdout);
  const ids = ls.map((u) => u.id);
  t.ok(ids.includes(finalId), 'the final is listed');
  for (const p of parts) t.notOk(ids.includes(p.split('/').pop()), 'its partials are not listed beside it');
  const listed = ls.find((u) => u.id === finalId);
  t.same(
    listed?.part_uploads,
    parts.map((p) => p.split('/').pop()),
    'they are listed under it, in order',
  );
  const plainLs = await sluice(['ls'], env);
  t.match(plainLs.stdout, new RegExp(`${finalId}  completed .* hw\\.txt  \\(2 parts\\)`));
});

t.test("a new user's first mistakes: clear messages and usage exit codes", async (t) => {
  const s = await startServer(t, { env: { MIN_CHUNK_SIZE: '64KiB', MAX_CHUNK_SIZE: '16MiB' } });
  const work = await tmpDir(t);
  const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, 'state') };
  const src = await randomFile(work, 300_000, 'f.bin');

  const unknown = await sluice(['frobnicate'], env);
  t.same([unknown.code, unknown.stderr.trim()], [2, "sluice: unknown command 'frobnicate' (sluice --help lists the commands)"]);
  const small = await sluice(['upload', src.file, '--chunk-size', '1KiB'], env);
  t.same([small.code, small.stderr.trim()], [2, 'sluice: --chunk-size must be between 64 KiB and 16 MiB on this server']);
  t.same((await http('GET', `${s.url}/v1/uploads`)).body.uploads, [], 'nothing was created');
  const badServer = await sluice(['--server', 'not-a-url', 'ls'], env);
  t.equal(badServer.code, 2);
  t.match(badServer.stderr, /expected an http\(s\) URL/);
  const missing = await sluice(['upload', path.join(work, 'nope.bin')], env);
  t.same([missing.code, missing.stderr.trim()], [2, `sluice: ${path.join(work, 'nope.bin')}: no such file or directory`]);

  const up = await sluice(['--json', 'upload', src.file], env);
  const id = lines(up.stdout).find((e) => e.event === 'done')?.id as string;
  const target = path.join(work, 'f-copy.bin');
  await fs.writeFile(target, 'precious');
  const refused = await sluice(['download', id, '-o', target], env);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /exists; pass --force to overwrite it/);
  t.equal(await fs.readFile(target, 'utf8'), 'precious', 'the existing file is untouched');
  const forced = await sluice(['download', id, '-o', target, '--force'], env);
  t.equal(forced.code, 0, forced.stderr);
  t.same(await fs.readFile(target), await fs.readFile(src.file));

  // `sluice ls | head -1`: the reader closes the pipe after one line.
  for (let i = 0; i < 3; i++) await http('POST', `${s.url}/v1/uploads`, { json: { file_name: `x${i}`, size: 5 } });
  const piped = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn('sh', ['-c', `"${process.execPath}" "${CLI}" ls | head -1`], { env: { PATH: process.env.PATH, ...env } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  t.same([piped.code, piped.stderr], [0, ''], 'no EPIPE stack trace');
});

t.test('Ctrl-C: says what is on the server and that running again resumes; progress counts what the server has', async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, 'state') };
  const src = await randomFile(work, 64 * 64 * 1024, 'big.bin');
  const child = spawn(process.execPath, [CLI, 'upload', src.file, '--chunk-size', '64KiB', '--parallel', '1'], { env: { PATH: process.env.PATH, ...env } });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const count = () => (s.db.prepare('SELECT COALESCE(MAX(chunks_received), 0) AS n FROM uploads').get() as { n: number }).n;
  for (let i = 0; i < 400 && count() < 10; i++) await sleep(10);
  child.kill('SIGINT');
  const code = await new Promise((r) => child.once('exit', r));
  t.equal(code, 130);
  const m = /big\.bin: interrupted; (.+) of 4 MiB is on the server as upload ([0-9a-f-]{36})\. Run the same command again to resume\./.exec(stderr);
  t.ok(m, stderr);
  const status = (await http('GET', `${s.url}/v1/uploads/${m?.[2]}`)).body;
  t.ok(status.chunks_received >= 10, `${status.chunks_received} chunks on the server`);
  const last =
    stderr
      .trim()
      .split('\n')
      .filter((l) => /%/.test(l))
      .at(-1) ?? '';
  const shown = /\((\d+(?:\.\d+)?) (KiB|MiB)/.exec(last);
  const shownBytes = Number(shown?.[1] ?? 0) * (shown?.[2] === 'MiB' ? 1024 * 1024 : 1024);
  t.ok(
    Math.abs(shownBytes - status.bytes_received) <= 64 * 1024 + 0.05 * 1024 * 1024,
    `the last progress line (${last}) is what the server has (${status.bytes_received})`,
  );

  const again = await sluice(['upload', src.file, '--chunk-size', '64KiB'], env);
  t.equal(again.code, 0, again.stderr);
  const first = again.stderr.split('\n').find((l) => /%/.test(l)) ?? '';
  t.notMatch(first, /big\.bin: [0-9]% /, `a resumed upload starts from what the server has: ${first}`);
});

t.test('Ctrl-C before any chunk was sent aborts the upload it created (no reservation left behind)', async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, 'state') };
  // Chunks of 16 MiB: the first one is still being read, hashed and sent when the signal comes.
  const src = await randomFile(work, 32 * 1024 * 1024, 'early.bin');
  const child = spawn(process.execPath, [CLI, 'upload', src.file, '--chunk-size', '16MiB', '--parallel', '1'], { env: { PATH: process.env.PATH, ...env } });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const row = () =>
    s.db.prepare('SELECT id, status, chunks_received FROM uploads').get() as { id: string; status: string; chunks_received: number } | undefined;
  for (let i = 0; i < 1000 && !row(); i++) await sleep(2);
  child.kill('SIGINT');
  t.equal(await new Promise((r) => child.once('exit', r)), 130);
  t.same([row()?.status, row()?.chunks_received], ['aborted', 0], stderr);
  t.match(stderr, new RegExp(`early\\.bin: interrupted before any chunk was sent; upload ${row()?.id} was aborted`));
});

t.test('sluice files / meta / rm: list stored files by metadata, change metadata, delete', async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, 'state') };
  const a = await randomFile(work, 1000, 'a.bin');
  const b = await randomFile(work, 2000, 'b.bin');
  const up = await sluice(['--json', 'upload', a.file, b.file], env);
  const [ida, idb] = lines(up.stdout)
    .filter((e) => e.event === 'done')
    .map((e) => e.id as string);
  const meta = await sluice(['meta', ida as string, 'parent_object_id=7', 'album=summer'], env);
  t.equal(meta.code, 0, meta.stderr);
  t.same(meta.stdout.trim().split('\n').sort(), ['album=summer', 'parent_object_id=7']);
  const listed = await sluice(['--json', 'files', '--meta', 'parent_object_id=7'], env);
  t.same(
    lines(listed.stdout).map((f) => f.id),
    [ida],
    'filtered by metadata',
  );
  const all = await sluice(['files'], env);
  t.match(all.stdout, new RegExp(`^${idb}  .+  b\\.bin\\n${ida}  .+  a\\.bin  parent_object_id=7 album=summer\\n$`), 'newest first, with metadata');
  const removedKey = await sluice(['--json', 'meta', ida as string, 'album='], env);
  t.same(lines(removedKey.stdout)[0]?.metadata, { parent_object_id: '7' }, 'key= removes a key');
  const bad = await sluice(['meta', ida as string, 'novalue'], env);
  t.same([bad.code, bad.stderr.trim()], [2, 'sluice: expected key=value, not "novalue"']);
  const rm = await sluice(['rm', ida as string, idb as string], env);
  t.equal(rm.code, 0, rm.stderr);
  t.same((await sluice(['--json', 'files'], env)).stdout.trim(), '', 'nothing left');
  t.equal((await http('GET', `${s.url}/v1/uploads/${ida}/content`)).status, 409, 'its bytes are gone');
});
