import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createUpload, http, randomFile, sha256File, startServer, tmpDir } from '../helpers/server.js';

const MiB = 1024 * 1024;

/** Streams two files side by side and reports whether every byte is equal. */
async function sameBytes(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([fs.open(a), fs.open(b)]);
  try {
    const ba = Buffer.alloc(MiB);
    const bb = Buffer.alloc(MiB);
    for (let pos = 0; ; pos += MiB) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, MiB, pos), fb.read(bb, 0, MiB, pos)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

t.test('a 200 MiB upload in 8 MiB chunks, out of order, 4 at a time, over real sockets, verified byte for byte', async (t) => {
  const work = await tmpDir(t, 'sluice-large-');
  const size = 200 * MiB + 12345; // a short last chunk too
  const chunkSize = 8 * MiB;
  const { file, sha256 } = await randomFile(work, size);
  const s = await startServer(t, { env: { DEFAULT_CHUNK_SIZE: '8MiB' } });
  const up = await createUpload(s.url, { file_name: 'big.bin', size, sha256 });
  t.equal(up.chunk_size, chunkSize);
  t.equal(up.total_chunks, 26);

  // A fixed shuffle (reproducible) of the chunk order.
  const order = Array.from({ length: up.total_chunks }, (_, i) => i).sort((a, b) => ((a * 7919) % 26) - ((b * 7919) % 26));
  t.not(order.join(), [...order].sort((a, b) => a - b).join(), 'the order really is shuffled');
  let next = 0;
  const statuses: number[] = [];
  const worker = async () => {
    while (next < order.length) {
      const index = order[next++] as number;
      const start = index * chunkSize;
      const end = Math.min(start + chunkSize, size) - 1;
      const res = await http('PUT', `${s.url}/v1/uploads/${up.id}/chunks/${index}`, {
        body: createReadStream(file, { start, end }),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(end - start + 1) },
      });
      statuses.push(res.status);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  t.same(statuses, new Array(26).fill(200), 'every chunk accepted');

  const st = await http('GET', `${s.url}/v1/uploads/${up.id}`);
  t.same([st.body.chunks_received, st.body.bytes_received, st.body.missing_chunks], [26, size, []]);
  const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
  t.same([fin.status, fin.body.status, fin.body.sha256, fin.body.size], [200, 'completed', sha256, size]);
  const stored = path.join(s.dataDir, fin.body.location.path);
  t.equal(await sha256File(stored), sha256, 'stored SHA-256 equals the source');
  t.ok(await sameBytes(file, stored), 'every byte equal');

  // And back out through the download route.
  const res = await fetch(`${s.url}/v1/uploads/${up.id}/content`);
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256');
  let got = 0;
  for await (const buf of res.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(buf);
    got += buf.length;
  }
  t.same([res.status, got, hash.digest('hex')], [200, size, sha256], 'downloaded bytes equal');
});
