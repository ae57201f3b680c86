import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { spawnServer } from '../helpers/process.js';
import { startPostgres } from '../helpers/postgres.js';
import { createUpload, http, putChunk, sha256, tmpDir } from '../helpers/server.js';

const KiB = 1024;
const run = promisify(execFile);

/** curl -L: follows a 307 with the same method and body (Node 20's fetch cannot resend a body). */
async function curl(method: string, url: string, file?: string): Promise<{ status: number; body: string }> {
  const args = [
    '-sS',
    '-L',
    '-X',
    method,
    '-w',
    '\n%{http_code}',
    ...(file ? ['--data-binary', `@${file}`, '-H', 'content-type: application/octet-stream'] : []),
    url,
  ];
  const { stdout } = await run('curl', args);
  const at = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) };
}

/**
 * Two nodes (real processes) on one PostgreSQL ledger, each with its own local staging disk: an
 * upload belongs to the node that stages it, the other sends its clients there (307), and neither
 * settles, expires or answers for the other's bytes.
 */
const cluster = await startPostgres(t);
const skip = cluster ? false : 'no PostgreSQL here';

async function twoNodes(t: Parameters<typeof tmpDir>[0]) {
  const url = await (cluster as NonNullable<typeof cluster>).database();
  const envOf = async (id: string) => ({ DATA_DIR: await tmpDir(t), DATABASE_URL: url, NODE_ID: id, MIN_CHUNK_SIZE: '1' });
  const envA = await envOf('node-a');
  const envB = await envOf('node-b');
  const a = await spawnServer(envA, t);
  const b = await spawnServer(envB, t);
  return { a, b, envA, envB };
}

t.test('a chunk sent to the other node is redirected (307) to the node that stages the upload; following it completes the upload', { skip }, async (t) => {
  const { a, b } = await twoNodes(t);
  const data = randomBytes(3 * 64 * KiB);
  const up = await createUpload(a.url, { file_name: 'n.bin', size: data.length, chunk_size: 64 * KiB, sha256: sha256(data) });
  const part = (i: number) => data.subarray(i * 64 * KiB, (i + 1) * 64 * KiB);
  const redirected = await putChunk(b.url, up.id, 1, part(1));
  t.equal(redirected.status, 307);
  t.equal(redirected.headers.location, `${a.url}/v1/uploads/${up.id}/chunks/1`, 'the same request on node A');
  t.equal(redirected.body.code, 'elsewhere');
  // What curl -L does: the same method and body, at the new address.
  const dir = await tmpDir(t);
  for (const i of [1, 0, 2]) {
    const file = path.join(dir, `part-${i}`);
    await fs.writeFile(file, part(i));
    const res = await curl('PUT', `${b.url}/v1/uploads/${up.id}/chunks/${i}`, file);
    t.equal(res.status, 200, `chunk ${i} through B, redirected to A`);
  }
  const status = (await http('GET', `${b.url}/v1/uploads/${up.id}`)).body;
  t.same([status.chunks_received, status.missing_chunks], [3, []], 'node B reads the shared ledger');
  const fin = await curl('POST', `${b.url}/v1/uploads/${up.id}/finish`);
  t.equal(fin.status, 200);
  t.equal((JSON.parse(fin.body) as { sha256: string }).sha256, sha256(data));
  const content = await fetch(`${b.url}/v1/uploads/${up.id}/content`);
  t.equal(sha256(Buffer.from(await content.arrayBuffer())), sha256(data), "the file, from node A's store, through B's redirect");
});

t.test('a tus client resuming on the other node is redirected: HEAD and PATCH go to the node that has the bytes', { skip }, async (t) => {
  const { a, b } = await twoNodes(t);
  const data = randomBytes(200 * KiB);
  const created = await http('POST', `${a.url}/files`, {
    headers: { 'tus-resumable': '1.0.0', 'upload-length': String(data.length), 'upload-metadata': `filename ${Buffer.from('t.bin').toString('base64')}` },
  });
  const id = String(created.headers.location).split('/').pop() as string;
  const tus = { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream' };
  await http('PATCH', `${a.url}/files/${id}`, { body: data.subarray(0, 64 * KiB), headers: { ...tus, 'upload-offset': '0' } });
  const head = await http('HEAD', `${b.url}/files/${id}`, { headers: { 'tus-resumable': '1.0.0' } });
  t.same([head.status, head.headers.location], [307, `${a.url}/files/${id}`], 'HEAD on B: to A, which may hold a PATCH to interrupt');
  const there = await http('HEAD', String(head.headers.location), { headers: { 'tus-resumable': '1.0.0' } });
  t.equal(there.headers['upload-offset'], String(64 * KiB));
  const patch = await http('PATCH', `${b.url}/files/${id}`, { body: data.subarray(64 * KiB), headers: { ...tus, 'upload-offset': String(64 * KiB) } });
  t.same([patch.status, patch.headers.location], [307, `${a.url}/files/${id}`]);
  t.match(patch.text, /^elsewhere: /, 'the plain-text tus body');
  const resent = await http('PATCH', String(patch.headers.location), { body: data.subarray(64 * KiB), headers: { ...tus, 'upload-offset': String(64 * KiB) } });
  t.equal(resent.status, 204);
  const done = (await http('GET', `${b.url}/v1/uploads/${id}`)).body;
  t.same([done.status, done.sha256], ['completed', sha256(data)]);
});

t.test("a node's restart settles only its own uploads; the other's staged bytes are left alone", { skip }, async (t) => {
  const { a, b, envB } = await twoNodes(t);
  const up = await createUpload(a.url, { file_name: 'keep.bin', size: 128 * KiB, chunk_size: 64 * KiB });
  await putChunk(a.url, up.id, 0, randomBytes(64 * KiB));
  b.child.kill('SIGKILL');
  await b.exited;
  const again = await spawnServer(envB, t);
  t.notMatch(again.output(), /staging_missing/, "node B did not take A's upload for one whose staging file is lost");
  const status = (await http('GET', `${a.url}/v1/uploads/${up.id}`)).body;
  t.same([status.status, status.chunks_received], ['uploading', 1]);
  const mine = await createUpload(again.url, { file_name: 'b.bin', size: 10 });
  const abort = await http('DELETE', `${a.url}/v1/uploads/${mine.id}`);
  t.equal(abort.status, 307, "aborting B's upload on A is sent to B (its staging file is there)");
});
