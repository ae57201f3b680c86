import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { createUpload, http, sha256, startServer, tmpDir } from '../helpers/server.js';

const run = promisify(execFile);

/** curl -F, as seed 002 sends chunks: the fields, then the file field; status and JSON body back. */
async function curlForm(method: string, url: string, fields: string[]): Promise<{ status: number; body: any }> {
  const args = ['-sS', '-X', method, '-w', '\\n%{http_code}', ...fields.flatMap((f) => ['-F', f]), url];
  const { stdout } = await run('curl', args);
  const at = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(at + 1)), body: JSON.parse(stdout.slice(0, at) || '{}') };
}

t.test('multipart/form-data chunks (curl -F): by index or offset, checksummed, the same rules as raw bodies', async (t) => {
  const s = await startServer(t);
  const dir = await tmpDir(t);
  const data = Buffer.from('hello world!');
  const up = await createUpload(s.url, { file_name: 'test.txt', size: 12, chunk_size: 4, sha256: sha256(data) });
  const parts: string[] = [];
  for (let i = 0; i < 3; i++) {
    const file = path.join(dir, `part${i + 1}.txt`);
    await fs.writeFile(file, data.subarray(i * 4, i * 4 + 4));
    parts.push(file);
  }
  const chunks = `${s.url}/v1/uploads/${up.id}/chunks`;
  const byIndex = await curlForm('POST', chunks, ['index=0', `chunkData=@${parts[0]}`]);
  t.same([byIndex.status, byIndex.body.index, byIndex.body.sha256], [200, 0, sha256(data.subarray(0, 4))]);
  // seed 002's shape: requestID, a byte offset, chunkSize, then chunkData.
  const byOffset = await curlForm('POST', chunks, [`requestID=${up.id}`, 'offset=8', 'chunkSize=4', `chunkData=@${parts[2]}`]);
  t.same([byOffset.status, byOffset.body.index], [200, 2]);
  const wrongSum = await curlForm('PUT', `${chunks}/1`, [`checksum=${sha256('other')}`, `chunkData=@${parts[1]}`]);
  t.same([wrongSum.status, wrongSum.body.code], [422, 'checksum_mismatch'], 'a checksum field is checked');
  const offGrid = await curlForm('POST', chunks, ['offset=3', `chunkData=@${parts[1]}`]);
  t.same([offGrid.status, offGrid.body.code], [400, 'invalid_range']);
  const noFile = await curlForm('POST', chunks, ['index=1']);
  t.same([noFile.status, noFile.body.code], [400, 'invalid_request']);
  const unknown = await curlForm('POST', chunks, ['colour=red', `chunkData=@${parts[1]}`]);
  t.same([unknown.status, unknown.body.code], [400, 'invalid_request']);
  const put = await curlForm('PUT', `${chunks}/1`, [`sha256=${sha256(data.subarray(4, 8))}`, `chunkData=@${parts[1]}`]);
  t.same([put.status, put.body.index], [200, 1], 'the PUT by index takes a form too');
  const again = await curlForm('POST', chunks, ['index=0', `chunkData=@${parts[1]}`]);
  t.same([again.status, again.body.code], [409, 'chunk_conflict'], 'other bytes for a recorded chunk: a conflict, as for raw bodies');
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.sha256], [200, sha256(data)]);
  const raw = await http('POST', chunks, { body: Buffer.from('x'), headers: { 'content-type': 'application/octet-stream' } });
  t.same([raw.status, raw.body.code], [415, 'unsupported_media_type'], 'POST .../chunks is for forms');
});

t.test('a form chunk larger than MAX_CHUNK_SIZE is refused, not cut short', async (t) => {
  const s = await startServer(t, { env: { MAX_CHUNK_SIZE: '64KiB', MIN_CHUNK_SIZE: '1', DEFAULT_CHUNK_SIZE: '64KiB' } });
  const dir = await tmpDir(t);
  const up = await createUpload(s.url, { file_name: 'big', size: 200 * 1024, chunk_size: 64 * 1024 });
  const file = path.join(dir, 'big');
  await fs.writeFile(file, Buffer.alloc(100 * 1024, 1));
  const res = await curlForm('POST', `${s.url}/v1/uploads/${up.id}/chunks`, ['index=0', `chunkData=@${file}`]);
  t.same([res.status, res.body.code], [413, 'payload_too_large'], 'refused');
  t.equal((await http('GET', `${s.url}/v1/uploads/${up.id}`)).body.chunks_received, 0, 'nothing recorded');
});
