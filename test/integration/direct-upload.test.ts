import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { spawnServer } from '../helpers/process.js';
import { startS3, useS3Credentials } from '../helpers/s3.js';
import { http, sha256, sleep, startServer, tmpDir } from '../helpers/server.js';

useS3Credentials();

const MiB = 1024 * 1024;

interface Part {
  part_number: number;
  size: number;
  url?: string;
  method?: string;
  headers?: Record<string, string>;
  expires_at?: string;
  etag?: string;
}

/**
 * A client of direct uploads, as one would write it from the API (seed 003): create, PUT each part
 * to its URL, report it (or report all at finish), finish. The same code for both backends.
 */
async function sendPart(part: Part, data: Buffer, partSize: number): Promise<{ status: number; etag: string | null }> {
  const start = (part.part_number - 1) * partSize;
  const body = new Uint8Array(data.subarray(start, start + part.size));
  const res = await fetch(part.url as string, { method: 'PUT', headers: part.headers ?? {}, body });
  await res.arrayBuffer();
  return { status: res.status, etag: res.headers.get('etag') };
}

async function directUpload(base: string, data: Buffer, opts: { report: 'each' | 'finish'; partSize?: number; partSha256?: boolean } = { report: 'each' }) {
  const partSize = opts.partSize ?? 5 * MiB;
  const digests = [];
  for (let i = 0; i < data.length; i += partSize) digests.push(sha256(data.subarray(i, i + partSize)));
  const created = await http('POST', `${base}/v1/uploads`, {
    json: {
      file_name: 'direct.bin',
      size: data.length,
      chunk_size: partSize,
      sha256: sha256(data),
      transfer: 'direct',
      ...(opts.partSha256 && { part_sha256: digests }),
    },
  });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const up = created.body;
  const etags: { part_number: number; etag: string }[] = [];
  for (const part of up.parts as Part[]) {
    const sent = await sendPart(part, data, up.part_size);
    if (sent.status !== 200) throw new Error(`part ${part.part_number}: ${sent.status}`);
    etags.push({ part_number: part.part_number, etag: sent.etag as string });
    if (opts.report === 'each') {
      const reported = await http('PUT', `${base}/v1/uploads/${up.id}/parts/${part.part_number}`, {
        json: { etag: sent.etag, sha256: digests[part.part_number - 1] },
      });
      if (reported.status !== 200) throw new Error(`report ${part.part_number}: ${reported.status} ${reported.text}`);
    }
  }
  const fin = await http('POST', `${base}/v1/uploads/${up.id}/finish`, { json: opts.report === 'finish' ? { parts: etags } : {} });
  return { up, fin, etags, digests };
}

t.test('S3: parts go straight to the bucket; finish verifies them at a hidden key and copies them to the final key', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: { ...s3.env, S3_PREFIX: 'in/' } });
  const data = randomBytes(12 * MiB + 321);
  const { up, fin } = await directUpload(s.url, data, { report: 'each', partSha256: true });
  t.same([up.transfer, up.part_size, up.parts.length, up.expires_in], ['direct', 5 * MiB, 3, 3600]);
  t.match(up.parts[0].url, /^http:\/\/127\.0\.0\.1:\d+\/sluice-test\/in\/\.staging\//, 'the part URLs are the bucket, not this server');
  t.match(up.parts[0].url, /X-Amz-SignedHeaders=host%3Bx-amz-checksum-sha256/, 'a declared SHA-256 is a signed header');
  t.equal(up.parts[0].headers['x-amz-checksum-sha256'], Buffer.from(sha256(data.subarray(0, 5 * MiB)), 'hex').toString('base64'));
  t.same([fin.status, fin.body.sha256, fin.body.size], [200, sha256(data), data.length]);
  const key = fin.body.location.key as string;
  t.match(key, new RegExp(`^in/${up.id}/direct\\.bin$`));
  const object = await s3.get(key);
  t.equal(sha256(object.body), sha256(data), 'the bytes in the bucket are the source');
  t.equal(object.metadata?.sha256, sha256(data));
  t.same(await s3.keys(), [key], 'the staging object is gone; nothing else is in the bucket');
  const received = await http('GET', `${s.url}/metrics`);
  const bytes = Number(/^sluice_bytes_received_total(?:\{[^}]*\})? (\d+)/m.exec(received.text)?.[1] ?? 0);
  t.equal(bytes, 0, 'no file byte came through the server');
});

t.test('S3: all parts reported at finish (seed 003 shape); the status shows what is missing and what was reported', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: s3.env });
  const data = randomBytes(11 * MiB);
  const created = await http('POST', `${s.url}/v1/uploads`, {
    json: { file_name: 'a.bin', size: data.length, chunk_size: 5 * MiB, sha256: sha256(data), transfer: 'direct' },
  });
  const up = created.body;
  const first = await sendPart(up.parts[0], data, up.part_size);
  const early = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { parts: [{ part_number: 1, etag: first.etag }] } });
  t.same([early.status, early.body.code, early.body.missing_chunks], [409, 'chunks_missing', [1, 2]]);
  const status = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.same([status.body.chunks_received, status.body.missing_chunks], [1, [1, 2]], 'part 1 was recorded from the finish');
  const list = await http('GET', `${s.url}/v1/uploads/${up.id}/parts?from=2&limit=1`);
  t.same(
    list.body.parts.map((p: Part) => p.part_number),
    [2],
  );
  t.equal(list.body.next_part, 3);
  const etags = [{ part_number: 1, etag: first.etag as string }];
  for (const part of up.parts.slice(1)) etags.push({ part_number: part.part_number, etag: (await sendPart(part, data, up.part_size)).etag as string });
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { parts: etags } });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
});

t.test('S3: no file SHA-256, every part declared its own: each part is checked by the read-back, a damaged one named', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: s3.env });
  const data = randomBytes(11 * MiB);
  const digests = [0, 1, 2].map((i) => sha256(data.subarray(i * 5 * MiB, (i + 1) * 5 * MiB)));
  const up = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'p.bin', size: data.length, chunk_size: 5 * MiB, transfer: 'direct' } })).body;
  const send = async (n: number, declare: boolean, damage: boolean) => {
    // (s3rver does not check x-amz-checksum-sha256, so a damaged part lands; AWS would refuse it.)
    const target = declare ? (await http('POST', `${s.url}/v1/uploads/${up.id}/parts/${n}/url`, { json: { sha256: digests[n - 1] } })).body : up.parts[n - 1];
    const bytes = damage ? Buffer.from(data) : data;
    if (damage) bytes[(n - 1) * 5 * MiB + 1] = (bytes[(n - 1) * 5 * MiB + 1] as number) ^ 0xff;
    const sent = await sendPart(target, bytes, up.part_size);
    await http('PUT', `${s.url}/v1/uploads/${up.id}/parts/${n}`, { json: { etag: sent.etag } });
  };
  await send(1, false, false);
  await send(2, true, true);
  await send(3, true, false);
  t.same(
    (await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} })).body.code,
    'sha256_required',
    'part 1 has no digest and the file none: nothing would check it',
  );
  await send(1, true, false);
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.code, fin.body.corrupt_parts], [422, 'file_checksum_mismatch', [2]], 'the damaged part is named');
  t.same(await s3.keys(), [], 'nothing at a final key');
  await send(2, true, false);
  const done = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([done.status, done.body.sha256], [200, sha256(data)], 'finished, with the digest the read-back computed');
  t.equal(sha256((await s3.get(done.body.location.key)).body), sha256(data));
});

t.test('S3: a part replaced in the bucket is caught by the read-back: 422, the damaged part named, sent again, finished', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: s3.env });
  const data = randomBytes(11 * MiB);
  const created = await http('POST', `${s.url}/v1/uploads`, {
    json: { file_name: 'b.bin', size: data.length, chunk_size: 5 * MiB, sha256: sha256(data), transfer: 'direct' },
  });
  const up = created.body;
  const digests = [0, 1, 2].map((i) => sha256(data.subarray(i * 5 * MiB, (i + 1) * 5 * MiB)));
  for (const part of up.parts as Part[]) {
    // Part 2 lands damaged (as if changed in transit or in the bucket); its client reports the right digest.
    const bytes = part.part_number === 2 ? Buffer.from(data) : data;
    if (part.part_number === 2) bytes[5 * MiB + 10] = (bytes[5 * MiB + 10] as number) ^ 0xff;
    const sent = await sendPart(part, bytes, up.part_size);
    await http('PUT', `${s.url}/v1/uploads/${up.id}/parts/${part.part_number}`, { json: { etag: sent.etag, sha256: digests[part.part_number - 1] } });
  }
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.code, fin.body.corrupt_parts], [422, 'file_checksum_mismatch', [2]]);
  t.same(await s3.keys(), [], 'nothing is visible at a final key, and the staging object is gone');
  const status = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.same([status.body.status, status.body.missing_chunks], ['uploading', [1]], 'only part 2 is to be sent again');
  const again = await http('GET', `${s.url}/v1/uploads/${up.id}/parts?from=2&limit=1`);
  const sent = await sendPart(again.body.parts[0], data, up.part_size);
  await http('PUT', `${s.url}/v1/uploads/${up.id}/parts/2`, { json: { etag: sent.etag, sha256: digests[1] } });
  const done = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([done.status, done.body.sha256], [200, sha256(data)]);
  t.equal(sha256((await s3.get(done.body.location.key)).body), sha256(data));
});

t.test('S3: without per-part digests a mismatch fails the upload; abort and a wrong whole-file digest leave nothing behind', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: s3.env });
  const data = randomBytes(6 * MiB);
  const created = await http('POST', `${s.url}/v1/uploads`, {
    json: { file_name: 'c.bin', size: data.length, chunk_size: 5 * MiB, sha256: sha256(Buffer.from('something else')), transfer: 'direct' },
  });
  const up = created.body;
  const etags = [];
  for (const part of up.parts as Part[]) etags.push({ part_number: part.part_number, etag: (await sendPart(part, data, up.part_size)).etag as string });
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { parts: etags } });
  t.same([fin.status, fin.body.code], [422, 'file_checksum_mismatch']);
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`)).body.status, 'failed');
  t.same(await s3.keys(), [], 'no object at all');

  const other = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'd.bin', size: data.length, chunk_size: 5 * MiB, transfer: 'direct' } });
  await sendPart(other.body.parts[0], data, other.body.part_size);
  t.equal((await http('DELETE', `${s.url}/v1/uploads/${other.body.id}`)).status, 204);
  t.equal((await http('GET', `${s.url}/v1/uploads/${other.body.id}`)).body.status, 'aborted');
});

t.test('S3: an expired part URL is refused by S3 and the parts route hands out a fresh one', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: { ...s3.env, DIRECT_URL_TTL: '3s' } });
  const data = randomBytes(1000);
  const created = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'e.bin', size: data.length, sha256: sha256(data), transfer: 'direct' } });
  const up = created.body;
  await sleep(3200); // S3 keeps its own clock (the fresh URL then has 3 s, time enough on a loaded machine)
  t.equal((await sendPart(up.parts[0], data, up.part_size)).status, 403, 'expired');
  const fresh = await http('GET', `${s.url}/v1/uploads/${up.id}/parts`);
  const sent = await sendPart(fresh.body.parts[0], data, up.part_size);
  t.equal(sent.status, 200, 'a fresh URL works');
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: { parts: [{ part_number: 1, etag: sent.etag }] } });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
});

t.test('S3: SIGKILL with parts already in the bucket; after a restart the upload finishes with the right SHA-256', async (t) => {
  const s3 = await startS3(t);
  const dataDir = await tmpDir(t);
  const env = { ...s3.env, DATA_DIR: dataDir };
  let server = await spawnServer(env, t);
  const data = randomBytes(11 * MiB);
  const created = await http('POST', `${server.url}/v1/uploads`, {
    json: { file_name: 'k.bin', size: data.length, chunk_size: 5 * MiB, sha256: sha256(data), transfer: 'direct' },
  });
  const up = created.body;
  const etags = [];
  for (const part of (up.parts as Part[]).slice(0, 2)) {
    const sent = await sendPart(part, data, up.part_size);
    etags.push({ part_number: part.part_number, etag: sent.etag as string });
    await http('PUT', `${server.url}/v1/uploads/${up.id}/parts/${part.part_number}`, { json: { etag: sent.etag } });
  }
  server.child.kill('SIGKILL');
  await server.exited;
  server = await spawnServer(env, t);
  const status = await http('GET', `${server.url}/v1/uploads/${up.id}`);
  t.same([status.body.status, status.body.chunks_received, status.body.missing_chunks], ['uploading', 2, [2]], 'the reported parts survived');
  const last = (up.parts as Part[])[2] as Part;
  const sent = await sendPart(last, data, up.part_size);
  const fin = await http('POST', `${server.url}/v1/uploads/${up.id}/finish`, { json: { parts: [...etags, { part_number: 3, etag: sent.etag }] } });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
  t.equal(sha256((await s3.get(fin.body.location.key)).body), sha256(data));
  server.child.kill('SIGTERM');
  await server.exited;
});

t.test('local storage: the same client code against this server own part URLs (ETag header and {part_number, etag})', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(3 * MiB + 7);
  const { up, fin, etags, digests } = await directUpload(s.url, data, { report: 'finish', partSize: MiB, partSha256: true });
  t.match(up.parts[0].url, new RegExp(`^${s.url}/v1/uploads/${up.id}/chunks/0\\?expires=\\d+&signature=`), 'signed chunk URLs');
  t.equal(up.parts[0].headers['x-chunk-sha256'], digests[0], 'a declared digest is checked by this server');
  t.same(
    etags.map((e) => e.etag),
    digests.map((d) => `"${d}"`),
    "each part's ETag is its SHA-256",
  );
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
  const stored = await fs.readFile(path.join(s.dataDir, 'files', up.id));
  t.equal(sha256(stored), sha256(data));

  const each = await directUpload(s.url, data, { report: 'each', partSize: MiB });
  t.same([each.fin.status, each.fin.body.sha256], [200, sha256(data)], 'reporting each part works the same');
  const wrong = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'w', size: 10, transfer: 'direct' } });
  const part = wrong.body.parts[0];
  const put = await fetch(part.url, { method: 'PUT', headers: part.headers, body: new Uint8Array(Buffer.from('0123456789')) });
  const receipt = await put.json();
  t.same([receipt.part_number, receipt.etag], [1, `"${createHash('sha256').update('0123456789').digest('hex')}"`]);
  const mismatch = await http('POST', `${s.url}/v1/uploads/${wrong.body.id}/finish`, {
    json: { sha256: sha256('0123456789'), parts: [{ part_number: 1, etag: '"0000"' }] },
  });
  t.same([mismatch.status, mismatch.body.code], [409, 'chunk_conflict'], 'a reported ETag that is not the part received');
});

t.test('sluice upload --direct: parts to S3 (or to this server with local storage), the same resume rules', async (t) => {
  const { execFile } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const { randomFile } = await import('../helpers/server.js');
  const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/server/sluice.js');
  const run = (args: string[], env: Record<string, string>) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
  const s3 = await startS3(t);
  const work = await tmpDir(t);
  for (const backend of ['s3', 'local'] as const) {
    const s = await startServer(t, { env: backend === 's3' ? s3.env : {} });
    const src = await randomFile(work, 11 * MiB + 3, `${backend}.bin`);
    const env = { SLUICE_SERVER: s.url, SLUICE_STATE_DIR: path.join(work, `state-${backend}`) };
    const up = await run(['--json', 'upload', '--direct', '--chunk-size', '5MiB', src.file], env);
    t.equal(up.code, 0, up.stderr);
    const done = up.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((e) => e.event === 'done');
    t.equal(done.sha256, src.sha256, `${backend}: the file's SHA-256`);
    const status = await http('GET', `${s.url}/v1/uploads/${done.id}`);
    t.same([status.body.status, status.body.transfer], ['completed', backend === 's3' ? 'direct' : 'server']);
    if (backend === 's3') t.equal(sha256((await s3.get(status.body.location.key)).body), src.sha256, 'in the bucket');
  }
});

t.test('direct uploads: bad input gets a 4xx with a stable code', async (t) => {
  const s3 = await startS3(t);
  const s = await startServer(t, { env: s3.env });
  const create = (json: Record<string, unknown>) => http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'x', transfer: 'direct', ...json } });
  t.same((await create({ size: 20 * MiB, chunk_size: MiB })).body.code, 'chunk_size_out_of_range', 'parts under 5 MiB');
  t.same((await create({ size: 0 })).body.code, 'invalid_request', 'an empty direct upload');
  t.same((await create({ size: 6 * MiB, chunk_size: 5 * MiB, part_sha256: ['a', 'b'] })).status, 400, 'part_sha256 not hex');
  t.same(
    (await create({ size: 6 * MiB, chunk_size: 5 * MiB, part_sha256: Array(3).fill(sha256('x')) })).body.code,
    'invalid_request',
    'more digests than parts',
  );
  const served = await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'y', size: 10, part_sha256: [sha256('x')] } });
  t.same(served.body.code, 'invalid_request', 'part_sha256 without transfer: direct');
  const up = (await create({ size: 6 * MiB, chunk_size: 5 * MiB })).body;
  t.same((await http('PUT', `${s.url}/v1/uploads/${up.id}/parts/3`, { json: { etag: 'e' } })).body.code, 'invalid_range', 'a part past the last');
  t.equal((await http('PUT', `${s.url}/v1/uploads/${up.id}/parts/0`, { json: { etag: 'e' } })).status, 400, 'part 0');
  t.equal((await http('PUT', `${s.url}/v1/uploads/${up.id}/parts/1`, { json: {} })).status, 400, 'no etag');
  const chunk = await http('PUT', `${s.url}/v1/uploads/${up.id}/chunks/0`, { body: 'x', headers: { 'content-type': 'application/octet-stream' } });
  t.same([chunk.status, chunk.body.code], [409, 'upload_not_writable'], 'a direct upload takes no chunks through the server');
  const other = (await http('POST', `${s.url}/v1/uploads`, { json: { file_name: 'z', size: 10 } })).body;
  t.same((await http('PUT', `${s.url}/v1/uploads/${other.id}/parts/1`, { json: { etag: 'e' } })).body.code, 'upload_not_writable', 'not a direct upload');
  t.same((await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} })).body.code, 'chunks_missing', 'a finish before the parts');
});
