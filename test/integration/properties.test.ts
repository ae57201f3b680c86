import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { createUpload, http, putChunk, rawRequest, sha256, sleep, startServer, type Running } from '../helpers/server.js';

const CHUNK = 4096;
const CHUNKS = 6;
const SIZE = CHUNK * (CHUNKS - 1) + 777;

type Op =
  | { kind: 'send' | 'duplicate' | 'race'; index: number }
  | { kind: 'disconnect'; index: number; fraction: number }
  | { kind: 'corrupt'; index: number; at: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('send' as const, 'duplicate' as const, 'race' as const), index: fc.nat(CHUNKS - 1) }),
  fc.record({ kind: fc.constant('disconnect' as const), index: fc.nat(CHUNKS - 1), fraction: fc.double({ min: 0, max: 0.99, noNaN: true }) }),
  fc.record({ kind: fc.constant('corrupt' as const), index: fc.nat(CHUNKS - 1), at: fc.nat(CHUNK - 1) }),
);

const part = (data: Buffer, i: number) => data.subarray(i * CHUNK, Math.min((i + 1) * CHUNK, data.length));

/** Sends part of a chunk over a raw socket and vanishes. */
async function disconnectMidChunk(s: Running, id: string, i: number, bytes: Buffer, fraction: number) {
  const host = new URL(s.url).host;
  const req = rawRequest(
    s.url,
    `PUT /v1/uploads/${id}/chunks/${i} HTTP/1.1\nHost: ${host}\nContent-Type: application/octet-stream\nContent-Length: ${bytes.length}\n`,
  );
  await req.start();
  await req.send(bytes.subarray(0, Math.floor(bytes.length * fraction)));
  await sleep(5);
  req.socket.destroy();
  await sleep(20);
}

t.test('native API: whatever the order, duplicates, races, disconnects and corrupted retries, the finished file equals the source', async (t) => {
  const s = await startServer(t, { env: { CHUNK_TAKEOVER_AFTER: '50ms' } });
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 24 }), async (ops) => {
      runs++;
      const data = randomBytes(SIZE);
      const up = await createUpload(s.url, { file_name: 'p.bin', size: SIZE, chunk_size: CHUNK, sha256: sha256(data) });
      for (const o of ops) {
        const bytes = part(data, o.index);
        if (o.kind === 'send') await putChunk(s.url, up.id, o.index, bytes);
        else if (o.kind === 'duplicate') {
          await putChunk(s.url, up.id, o.index, bytes);
          const again = await putChunk(s.url, up.id, o.index, bytes);
          if (again.status !== 200) throw new Error(`retry of chunk ${o.index}: ${again.status}`);
        } else if (o.kind === 'race') {
          const results = await Promise.all([putChunk(s.url, up.id, o.index, bytes), putChunk(s.url, up.id, o.index, bytes)]);
          for (const r of results) if (r.status !== 200 && r.body?.code !== 'chunk_in_progress') throw new Error(`race: ${r.status}`);
        } else if (o.kind === 'disconnect') await disconnectMidChunk(s, up.id, o.index, bytes, o.fraction);
        else if (o.kind === 'corrupt') {
          // Corrupted on the wire, with the client's checksum of the real bytes: refused, never recorded.
          const bad = Buffer.from(bytes);
          bad[o.at % bad.length] = (bad[o.at % bad.length] as number) ^ 0x55;
          const res = await putChunk(s.url, up.id, o.index, bad, { 'x-chunk-sha256': sha256(bytes) });
          if (![409, 422].includes(res.status)) throw new Error(`corrupt chunk answered ${res.status}`);
        }
      }
      // Then the client does what a resuming client does: asks what is missing and sends it.
      await sleep(60);
      for (let attempt = 0; attempt < 3; attempt++) {
        const st = await http('GET', `${s.url}/v1/uploads/${up.id}`);
        for (const i of st.body.missing_chunks as number[]) await putChunk(s.url, up.id, i, part(data, i));
      }
      const fin = await http('POST', `${s.url}/v1/uploads/${up.id}/finish`, { json: {} });
      if (fin.status !== 200) throw new Error(`finish: ${fin.status} ${fin.text}`);
      const back = Buffer.from(await (await fetch(`${s.url}/v1/uploads/${up.id}/content`)).arrayBuffer());
      return back.equals(data);
    }),
    { numRuns: 30, seed: 20261122 },
  );
  t.equal(runs, 30, '30 random histories, each ending in a byte-identical file');
});

t.test('tus: random PATCH sizes, interruptions and resumptions from HEAD always produce the source', async (t) => {
  const s = await startServer(t);
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ size: fc.integer({ min: 1, max: 9000 }), cut: fc.option(fc.double({ min: 0, max: 0.99, noNaN: true }), { nil: undefined }) }), {
        minLength: 1,
        maxLength: 12,
      }),
      async (patches) => {
        runs++;
        const data = randomBytes(20_000);
        const created = await http('POST', `${s.url}/files`, { headers: { 'tus-resumable': '1.0.0', 'upload-length': String(data.length) } });
        const url = created.headers.location as string;
        const head = async () => Number((await http('HEAD', url, { headers: { 'tus-resumable': '1.0.0' } })).headers['upload-offset']);
        const host = new URL(s.url).host;
        const path = new URL(url).pathname;
        let plan = [...patches];
        for (let guard = 0; guard < 100; guard++) {
          const offset = await head();
          if (offset === data.length) break;
          const next = plan.shift() ?? { size: data.length, cut: undefined };
          const body = data.subarray(offset, offset + next.size);
          if (next.cut === undefined) {
            const res = await http('PATCH', url, {
              headers: { 'tus-resumable': '1.0.0', 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset) },
              body,
            });
            if (res.status !== 204) throw new Error(`PATCH ${res.status}`);
          } else {
            const req = rawRequest(
              s.url,
              `PATCH ${path} HTTP/1.1\nHost: ${host}\nTus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\nUpload-Offset: ${offset}\nContent-Length: ${body.length}\n`,
            );
            await req.start();
            await req.send(body.subarray(0, Math.floor(body.length * next.cut)));
            await sleep(5);
            req.socket.destroy();
            await sleep(30);
          }
          plan = plan.length ? plan : [];
        }
        const id = url.split('/').pop() as string;
        const st = (await http('GET', `${s.url}/v1/uploads/${id}`)).body;
        return st.status === 'completed' && st.sha256 === sha256(data);
      },
    ),
    { numRuns: 30, seed: 11222026 },
  );
  t.equal(runs, 30, '30 random tus histories, each completed with the right SHA-256');
});
