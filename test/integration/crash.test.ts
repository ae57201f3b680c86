import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import t from 'tap';
import * as tus from 'tus-js-client';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { createUpload, http, randomFile, rawRequest, sha256, sleep, tmpDir, type TestContext } from '../helpers/server.js';

const KiB = 1024;

async function kill9(server: ServerProcess) {
  server.child.kill('SIGKILL');
  const exit = await server.exited;
  if (exit.signal !== 'SIGKILL') throw new Error(`expected SIGKILL, got ${JSON.stringify(exit)}`);
}

async function restart(t: TestContext, dataDir: string, env: Record<string, string> = {}) {
  return spawnServer({ DATA_DIR: dataDir, MIN_CHUNK_SIZE: '1', ...env }, t);
}

const status = async (url: string, id: string) => (await http('GET', `${url}/v1/uploads/${id}`)).body;

t.test('kill -9 mid-chunk: acknowledged chunks survive intact, the half-sent chunk is not counted', async (t) => {
  const dataDir = await tmpDir(t);
  const { file, sha256: digest } = await randomFile(dataDir, 8 * 256 * KiB, 'src.bin');
  const source = await fs.readFile(file);
  let server = await restart(t, dataDir);
  const up = await createUpload(server.url, { file_name: 'a', size: source.length, chunk_size: 256 * KiB, sha256: digest });
  const part = (i: number) => source.subarray(i * 256 * KiB, (i + 1) * 256 * KiB);
  const acked: number[] = [];
  for (const i of [5, 0, 3, 1]) {
    const res = await http('PUT', `${server.url}/v1/uploads/${up.id}/chunks/${i}`, { body: part(i), headers: { 'content-type': 'application/octet-stream' } });
    if (res.status === 200) acked.push(i);
  }
  const host = new URL(server.url).host;
  const inflight = rawRequest(
    server.url,
    `PUT /v1/uploads/${up.id}/chunks/7 HTTP/1.1\nHost: ${host}\nContent-Type: application/octet-stream\nContent-Length: ${256 * KiB}\n`,
  );
  await inflight.start();
  await inflight.send(part(7).subarray(0, 100 * KiB));
  await sleep(100);
  await kill9(server);
  inflight.socket.destroy();

  server = await restart(t, dataDir);
  const st = await status(server.url, up.id);
  t.same(acked, [5, 0, 3, 1]);
  t.same(st.missing_chunks, [2, 4, 6, 7], 'every acknowledged chunk reported, the half-sent one not');
  for (const i of [2, 4, 6, 7]) {
    await http('PUT', `${server.url}/v1/uploads/${up.id}/chunks/${i}`, { body: part(i), headers: { 'content-type': 'application/octet-stream' } });
  }
  const fin = await http('POST', `${server.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, digest], 'the acknowledged bytes were intact');
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('kill -9 mid-tus-PATCH: a long PATCH keeps its checkpointed bytes, never counts more than is on disk; tus-js-client resumes', async (t) => {
  const dataDir = await tmpDir(t);
  const { file, sha256: digest } = await randomFile(dataDir, 48 * 1024 * KiB, 'src.bin');
  const source = await fs.readFile(file);
  let server = await restart(t, dataDir);
  const created = await http('POST', `${server.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': String(source.length) } });
  const url = created.headers.location as string;
  const path = new URL(url).pathname;
  const host = new URL(server.url).host;
  const patch = rawRequest(
    server.url,
    `PATCH ${path} HTTP/1.1\nHost: ${host}\nTus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: 0\nContent-Length: ${source.length}\n`,
  );
  await patch.start();
  for (let sent = 0; sent < 40 * 1024 * KiB; sent += 1024 * KiB) await patch.send(source.subarray(sent, sent + 1024 * KiB));
  // Kill once the server has checkpointed twice: the native status shows only recorded, durable
  // bytes (and, unlike a tus HEAD, does not end the PATCH it asks about).
  const id = path.split('/').pop() as string;
  const recorded = async () => Number((await http('GET', `${server.url}/v1/uploads/${id}`)).body.bytes_received);
  for (let i = 0; i < 300 && (await recorded()) < 32 * 1024 * KiB; i++) await sleep(20);
  await kill9(server);
  patch.socket.destroy();

  server = await restart(t, dataDir);
  const newUrl = url.replace(/^http:\/\/[^/]+/, server.url);
  const head = await http('HEAD', newUrl, { headers: { 'tus-resumable': '1.0.0' } });
  const offset = Number(head.headers['upload-offset']);
  t.ok(offset <= 40 * 1024 * KiB, `offset ${offset} is at most what was sent before the kill`);
  t.ok(offset >= 32 * 1024 * KiB, `offset ${offset}: the 16 MiB checkpoints survived the kill`);
  await new Promise<void>((resolve, reject) => {
    const u = new tus.Upload(createReadStream(file), {
      uploadUrl: newUrl,
      uploadSize: source.length,
      chunkSize: 4 * 1024 * KiB,
      onError: reject,
      onSuccess: () => resolve(),
    });
    u.start();
  });
  const st = await status(server.url, path.split('/').pop() as string);
  t.same([st.status, st.sha256], ['completed', digest], 'the bytes before the offset were intact');
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('kill -9 mid-finish: the upload is finishable again after the restart (or was completed), never half-published', async (t) => {
  const dataDir = await tmpDir(t);
  const size = 96 * 1024 * KiB;
  const { file, sha256: digest } = await randomFile(dataDir, size, 'src.bin');
  let server = await restart(t, dataDir, { DEFAULT_CHUNK_SIZE: '8MiB' });
  const up = await createUpload(server.url, { file_name: 'big', size, sha256: digest });
  for (let i = 0; i < up.total_chunks; i++) {
    const start = i * up.chunk_size;
    const end = Math.min(start + up.chunk_size, size) - 1;
    await http('PUT', `${server.url}/v1/uploads/${up.id}/chunks/${i}`, {
      body: createReadStream(file, { start, end }),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - start + 1) },
    });
  }
  const finishing = http('POST', `${server.url}/v1/uploads/${up.id}/finish`, { json: {} }).catch(() => undefined);
  await sleep(40);
  await kill9(server);
  await finishing;

  server = await restart(t, dataDir);
  const st = await status(server.url, up.id);
  t.ok(['uploading', 'completed'].includes(st.status), `after the restart: ${st.status}`);
  const fin = await http('POST', `${server.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.status, fin.body.sha256], [200, 'completed', digest]);
  const files = await fs.readdir(`${dataDir}/files`);
  t.same(files, [up.id], 'exactly one published file, no temporary leftovers');
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('many concurrent uploads across repeated kill -9: nothing acknowledged is lost, every file verifies', async (t) => {
  const dataDir = await tmpDir(t);
  const CLIENTS = 8;
  const CHUNKS = 12;
  const CHUNK = 64 * KiB;
  const files = Array.from({ length: CLIENTS }, () => Buffer.alloc(0));
  for (let c = 0; c < CLIENTS; c++) files[c] = await fs.readFile((await randomFile(dataDir, CHUNKS * CHUNK - c * 100, `f${c}`)).file);
  let server = await restart(t, dataDir);
  const ids: string[] = [];
  for (let c = 0; c < CLIENTS; c++) {
    ids.push((await createUpload(server.url, { file_name: `f${c}`, size: files[c]!.length, chunk_size: CHUNK, sha256: sha256(files[c]!) })).id);
  }
  const acked = ids.map(() => new Set<number>());

  for (let round = 0; round < 3; round++) {
    let stop = false;
    const url = server.url;
    const uploader = async (c: number) => {
      const order = Array.from({ length: CHUNKS }, (_, i) => i).sort(() => Math.random() - 0.5);
      for (const i of order) {
        if (stop) return;
        if (acked[c]!.has(i)) continue;
        try {
          const res = await http('PUT', `${url}/v1/uploads/${ids[c]}/chunks/${i}`, {
            body: files[c]!.subarray(i * CHUNK, (i + 1) * CHUNK),
            headers: { 'content-type': 'application/octet-stream' },
          });
          if (res.status === 200) acked[c]!.add(i);
        } catch {
          return; // the server died under us
        }
      }
    };
    const running = Promise.all(ids.map((_, c) => uploader(c)));
    await sleep(60 + round * 40);
    await kill9(server);
    stop = true;
    await running;
    server = await restart(t, dataDir);
    for (let c = 0; c < CLIENTS; c++) {
      const st = await status(server.url, ids[c]!);
      const missing = new Set(st.missing_chunks as number[]);
      const lost = [...acked[c]!].filter((i) => missing.has(i));
      t.same(lost, [], `round ${round}, upload ${c}: no acknowledged chunk lost (${acked[c]!.size} acknowledged)`);
    }
  }
  for (let c = 0; c < CLIENTS; c++) {
    const st = await status(server.url, ids[c]!);
    for (const i of st.missing_chunks as number[]) {
      await http('PUT', `${server.url}/v1/uploads/${ids[c]}/chunks/${i}`, {
        body: files[c]!.subarray(i * CHUNK, (i + 1) * CHUNK),
        headers: { 'content-type': 'application/octet-stream' },
      });
    }
    const fin = await http('POST', `${server.url}/v1/uploads/${ids[c]}/finish`, { json: {} });
    t.same([fin.status, fin.body.sha256], [200, sha256(files[c]!)], `upload ${c} verifies`);
  }
  server.child.kill('SIGTERM');
  await server.exited;
});
