import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { http, randomFile, sha256, startServer, tmpDir } from '../helpers/server.js';

/**
 * tus-py-client, an independent tus client (Debian's python3-tuspy, installed by
 * scripts/install-tuspy.sh), run with Debian's own Python: upload, stop and resume from its URL
 * storage, and Upload-Checksum.
 */
const PYTHON = '/usr/bin/python3';
const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/tuspy-upload.py');
const run = promisify(execFile);

async function unavailable(): Promise<string | false> {
  const reason = "Debian's python3-tuspy is not installed (scripts/install-tuspy.sh installs it)";
  if (!existsSync(PYTHON)) return reason;
  try {
    await run(PYTHON, ['-c', 'import tusclient']);
    return false;
  } catch {
    return reason;
  }
}

async function tuspy(...args: string[]): Promise<{ url: string; started: number; offset?: number; error_status?: number }> {
  const { stdout } = await run(PYTHON, [SCRIPT, ...args], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop() as string);
}

t.test('tus-py-client', { skip: await unavailable() }, async (t) => {
  const s = await startServer(t);
  const dir = await tmpDir(t);
  const endpoint = `${s.url}/files`;
  const MiB = 1024 * 1024;

  t.test('uploads in chunks, stops, and a new process resumes from the URL it stored', async (t) => {
    const { file, sha256: digest } = await randomFile(dir, 5 * MiB + 77, 'resume.bin');
    const storage = path.join(dir, 'urls.json');
    const first = await tuspy(endpoint, file, storage, String(MiB), '--stop-at', String(2 * MiB));
    t.equal(first.offset, 2 * MiB, 'stopped after two chunks');
    const head = await http('HEAD', first.url, { headers: { 'tus-resumable': '1.0.0' } });
    t.equal(head.headers['upload-offset'], String(2 * MiB), 'the server has what it sent');
    const second = await tuspy(endpoint, file, storage, String(MiB));
    t.equal(second.url, first.url, 'the same upload, found in its URL storage');
    t.equal(second.started, 2 * MiB, 'resumed from the server offset, not from 0');
    t.equal(second.offset, 5 * MiB + 77);
    const back = await fetch(first.url);
    t.equal(sha256(Buffer.from(await back.arrayBuffer())), digest, 'the bytes are the file');
    const id = first.url.split('/').pop() as string;
    const native = await http('GET', `${s.url}/v1/uploads/${id}`);
    t.same([native.body.file_name, native.body.status, native.body.sha256], ['from-tuspy.bin', 'completed', digest]);
  });

  t.test('upload_checksum: every PATCH carries its sha1, checked; a wrong one is refused with 460 and nothing is recorded', async (t) => {
    const { file, sha256: digest } = await randomFile(dir, 3 * MiB + 5, 'checked.bin');
    const ok = await tuspy(endpoint, file, path.join(dir, 'checked.json'), String(MiB), '--checksum');
    t.equal(ok.offset, 3 * MiB + 5);
    const back = await fetch(ok.url);
    t.equal(sha256(Buffer.from(await back.arrayBuffer())), digest);

    const bad = await tuspy(endpoint, file, path.join(dir, 'corrupt.json'), String(MiB), '--corrupt-checksum');
    t.equal(bad.error_status, 460, '460 Checksum Mismatch');
    const head = await http('HEAD', bad.url, { headers: { 'tus-resumable': '1.0.0' } });
    t.equal(head.headers['upload-offset'], '0', 'the mismatching chunk was discarded');
    await fs.rm(file);
  });
});
