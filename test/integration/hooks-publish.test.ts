import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { startS3, useS3Credentials } from '../helpers/s3.js';
import { WEBHOOK_SECRET, startReceiver } from '../helpers/receiver.js';
import { createUpload, http, putChunk, sha256, startServer } from '../helpers/server.js';

const KiB = 1024;

useS3Credentials();

/** A file with the EICAR test string in it: the receiver's "virus scanner" refuses it. */
const infected = () =>
  Buffer.concat([randomBytes(8 * KiB), Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'), randomBytes(KiB)]);

async function nativeUpload(url: string, name: string, data: Buffer) {
  const up = await createUpload(url, { file_name: name, size: data.length, sha256: sha256(data), chunk_size: data.length });
  const put = await putChunk(url, up.id, 0, data);
  if (put.status >= 300) throw new Error(`chunk: ${put.status} ${put.text}`);
  return { id: up.id as string, finish: await http('POST', `${url}/v1/uploads/${up.id}/finish`, { json: {} }) };
}

/** A tus upload in one creation-with-upload request; its last byte publishes it. */
async function tusUpload(url: string, data: Buffer) {
  return http('POST', `${url}/files`, {
    body: data,
    headers: { 'tus-resumable': '1.0.0', 'upload-length': String(data.length), 'content-type': 'application/offset+octet-stream' },
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) out.push(entry.name);
  return out;
}

const setups = [
  { name: 'local store', s3: false, staging: 'local' },
  { name: 'S3 store, local staging', s3: true, staging: 'local' },
  { name: 'S3 store, S3 staging', s3: true, staging: 's3' },
] as const;

for (const setup of setups) {
  t.test(`pre-publish hook (${setup.name}): it reads the verified staged bytes; a refusal fails the upload and publishes nothing`, async (t) => {
    const receiver = await startReceiver(t);
    const s3 = setup.s3 ? await startS3(t) : undefined;
    const s = await startServer(t, {
      env: { ...s3?.env, STAGING_BACKEND: setup.staging, HOOK_PRE_PUBLISH_URL: `${receiver.url}/pre-publish`, WEBHOOK_SECRET },
    });
    const clean = randomBytes(30 * KiB);
    const ok = await nativeUpload(s.url, 'clean.bin', clean);
    t.same([ok.finish.status, ok.finish.body.sha256], [200, sha256(clean)]);
    const read = (await receiver.records()).find((r) => r.path === '/pre-publish' && r.id === ok.id);
    t.same([read.status, read.sha256, read.size], [200, sha256(clean), clean.length], 'the hook read exactly the verified bytes');
    const asked = (await receiver.records()).find((r) => r.path === '/pre-publish' && r.data?.id === ok.id && r.verified !== undefined);
    t.same([asked.verified, asked.data.sha256, asked.data.status], [true, sha256(clean), 'finishing']);

    const bad = infected();
    const refused = await nativeUpload(s.url, 'eicar.bin', bad);
    t.same([refused.finish.status, refused.finish.body.code, refused.finish.body.detail], [403, 'rejected_by_hook', 'virus found: EICAR test signature']);
    const status = (await http('GET', `${s.url}/v1/uploads/${refused.id}`)).body;
    t.same([status.status, status.failure], ['failed', 'virus found: EICAR test signature']);

    const viaTus = await tusUpload(s.url, infected());
    t.equal(viaTus.status, 403, 'a tus upload whose last byte publishes it is refused too');
    t.match(viaTus.text, /virus found/, "the hook's message in the tus body");

    const stale = await fetch(asked.data.staged_url);
    t.equal(stale.status, 404, 'the staged link serves nothing once the hook has answered');
    if (s3) {
      t.same(await s3.keys(), [ok.finish.body.location.key], 'the bucket holds the clean file only');
    } else {
      t.same(await filesUnder(path.join(s.dataDir, 'files')), [path.basename(ok.finish.body.location.path)], 'the store holds the clean file only');
    }
    t.same(await fs.readdir(path.join(s.dataDir, 'staging')).then((f) => f.filter((n) => !n.startsWith('.'))), [], 'no staged bytes left behind');
  });
}

t.test('pre-publish hook unreachable: the upload keeps its bytes and can be finished once the hook is back', async (t) => {
  const receiver = await startReceiver(t);
  const hookUrl = `${receiver.url}/pre-publish`;
  // The hook's port is closed for the first finish (a receiver that is down).
  const s = await startServer(t, { env: { HOOK_PRE_PUBLISH_URL: 'http://127.0.0.1:9/pre-publish', WEBHOOK_SECRET } });
  const data = randomBytes(10 * KiB);
  const first = await nativeUpload(s.url, 'later.bin', data);
  t.same([first.finish.status, first.finish.body.code], [503, 'hook_unavailable']);
  const status = (await http('GET', `${s.url}/v1/uploads/${first.id}`)).body;
  t.same([status.status, status.missing_chunks], ['uploading', []], 'every chunk kept');
  await s.close();
  const again = await startServer(t, { dataDir: s.dataDir, env: { HOOK_PRE_PUBLISH_URL: hookUrl, WEBHOOK_SECRET } });
  const fin = await http('POST', `${again.url}/v1/uploads/${first.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
});
