import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import * as tus from 'tus-js-client';
import { http, sha256, startServer, type Running } from '../helpers/server.js';

const KiB = 1024;

/** Runs one tus-js-client upload to completion; resolves with its URL. */
function upload(file: Buffer | Readable, options: tus.UploadOptions): Promise<{ url: string; upload: tus.Upload }> {
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(file, {
      retryDelays: [0, 100, 300],
      ...options,
      onError: (err) => reject(err),
      onSuccess: () => resolve({ url: u.url as string, upload: u }),
    });
    u.start();
  });
}

/** The stored file's SHA-256 and the upload's state, through the native API (same engine). */
async function stored(s: Running, url: string) {
  const id = url.slice(url.lastIndexOf('/') + 1);
  const status = await http('GET', `${s.url}/v1/uploads/${id}`);
  const content = await fetch(`${s.url}/v1/uploads/${id}/content`);
  const body = Buffer.from(await content.arrayBuffer());
  return { id, status: status.body, sha256: sha256(body), size: body.length };
}

t.test('tus-js-client: chunked upload; file name and type from metadata; bytes verified', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(3 * 1024 * KiB + 17);
  const { url } = await upload(data, {
    endpoint: `${s.url}/files`,
    chunkSize: 256 * KiB,
    metadata: { filename: 'photo.jpg', filetype: 'image/jpeg' },
  });
  t.match(url, new RegExp(`^${s.url}/files/[0-9a-f-]{36}$`));
  const got = await stored(s, url);
  t.same([got.sha256, got.size], [sha256(data), data.length], 'stored bytes equal the source');
  t.same([got.status.status, got.status.file_name, got.status.content_type, got.status.sha256], ['completed', 'photo.jpg', 'image/jpeg', sha256(data)]);
  const extents = s.db.prepare('SELECT COUNT(*) AS n FROM chunks WHERE upload_id = ?').get(got.id) as { n: number };
  t.equal(extents.n, 13, 'each PATCH is one extent in the ledger');
});

t.test('tus-js-client: an upload aborted midway resumes from its URL and sends only the rest', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(2 * 1024 * KiB);
  let firstUrl = '';
  await new Promise<void>((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint: `${s.url}/files`,
      chunkSize: 128 * KiB,
      onChunkComplete: (_size, accepted) => {
        if (accepted >= 1024 * KiB) {
          firstUrl = u.url as string;
          void u.abort().then(resolve);
        }
      },
      onError: reject,
      onSuccess: () => reject(new Error('should not finish')),
    });
    u.start();
  });
  const head = await http('HEAD', firstUrl, { headers: { 'tus-resumable': '1.0.0' } });
  const offset = Number(head.headers['upload-offset']);
  t.ok(offset >= 1024 * KiB && offset < data.length, `stopped at ${offset}`);

  let firstPatchOffset = -1;
  const { url } = await upload(data, {
    uploadUrl: firstUrl,
    chunkSize: 128 * KiB,
    onBeforeRequest: (req) => {
      if (req.getMethod() === 'PATCH' && firstPatchOffset < 0) firstPatchOffset = Number(req.getHeader('Upload-Offset'));
    },
  });
  t.equal(url, firstUrl, 'same upload');
  t.equal(firstPatchOffset, offset, 'resumed exactly where the server was');
  const got = await stored(s, url);
  t.same([got.sha256, got.status.status], [sha256(data), 'completed']);
});

t.test('tus-js-client: parallelUploads: 3 (concatenation of partial uploads)', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(5 * 1024 * KiB + 3);
  const { url } = await upload(data, { endpoint: `${s.url}/files`, parallelUploads: 3, chunkSize: 512 * KiB, metadata: { filename: 'video.mp4' } });
  const got = await stored(s, url);
  t.same([got.sha256, got.size, got.status.status, got.status.file_name], [sha256(data), data.length, 'completed', 'video.mp4']);
  const partials = s.db.prepare('SELECT status FROM uploads WHERE is_part = 1').all() as { status: string }[];
  t.equal(partials.length, 3, 'three partial uploads');
  t.ok(
    partials.every((p) => p.status === 'completed'),
    'consumed by the final upload',
  );
  const files = s.db.prepare("SELECT COUNT(*) AS n FROM uploads WHERE status = 'completed' AND is_part = 0").get() as { n: number };
  t.equal(files.n, 1, 'only the final upload is published');
});

t.test('tus-js-client: uploadDataDuringCreation (creation-with-upload)', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(700 * KiB);
  const methods: string[] = [];
  const { url } = await upload(data, {
    endpoint: `${s.url}/files`,
    uploadDataDuringCreation: true,
    chunkSize: 512 * KiB,
    onBeforeRequest: (req) => void methods.push(req.getMethod()),
  });
  t.same(methods, ['POST', 'PATCH'], 'the first chunk went with the POST');
  t.equal((await stored(s, url)).sha256, sha256(data));
});

t.test('tus-js-client: uploadLengthDeferred with a stream of unknown length', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(900 * KiB);
  const source = Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += 100 * KiB) yield data.subarray(i, i + 100 * KiB);
    })(),
  );
  const { url } = await upload(source, { endpoint: `${s.url}/files`, uploadLengthDeferred: true, chunkSize: 256 * KiB });
  const got = await stored(s, url);
  t.same([got.sha256, got.size], [sha256(data), data.length]);
});

t.test('tus-js-client: the checksum extension (Upload-Checksum per PATCH), and a corrupted chunk is refused with 460', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(1024 * KiB);
  const chunkSize = 256 * KiB;
  const checksum = (offset: number, algorithm: string) =>
    createHash(algorithm)
      .update(data.subarray(offset, offset + chunkSize))
      .digest('base64');
  let sent = 0;
  const { url } = await upload(data, {
    endpoint: `${s.url}/files`,
    chunkSize,
    onBeforeRequest: (req) => {
      if (req.getMethod() !== 'PATCH') return;
      const offset = Number(req.getHeader('Upload-Offset'));
      const algorithm = ['sha1', 'md5', 'sha256'][sent++ % 3] as string;
      req.setHeader('Upload-Checksum', `${algorithm} ${checksum(offset, algorithm)}`);
    },
  });
  t.equal(sent, 4);
  t.equal((await stored(s, url)).sha256, sha256(data));

  // The same client with a wrong checksum: the server answers 460 and never records the chunk.
  const statuses: number[] = [];
  const err = await upload(data, {
    endpoint: `${s.url}/files`,
    chunkSize,
    retryDelays: [],
    onBeforeRequest: (req) => {
      if (req.getMethod() === 'PATCH') req.setHeader('Upload-Checksum', `sha1 ${createHash('sha1').update('other').digest('base64')}`);
    },
    onAfterResponse: (req, res) => void (req.getMethod() === 'PATCH' && statuses.push(res.getStatus())),
  }).catch((e: unknown) => e as Error);
  t.type(err, Error);
  t.same(statuses, [460]);
});

t.test('tus-js-client: a final upload is published once; a later HEAD still answers offset == length', async (t) => {
  const s = await startServer(t);
  const data = randomBytes(100 * KiB);
  const { url } = await upload(data, { endpoint: `${s.url}/files` });
  // tus-js-client resumes by HEAD and treats offset == length as done.
  const again = await upload(data, { uploadUrl: url });
  t.equal(again.url, url);
  const head = await http('HEAD', url, { headers: { 'tus-resumable': '1.0.0' } });
  t.same([head.status, head.headers['upload-offset'], head.headers['upload-length']], [200, String(data.length), String(data.length)]);
});

for (const protocol of ['ietf-draft-05', 'ietf-draft-03'] as const) {
  t.test(`tus-js-client with protocol: '${protocol}' (IETF resumable uploads) on the same endpoint`, async (t) => {
    // tus-js-client 4.3 implements `protocol` but its type definitions do not declare it yet.
    const ietf = { protocol } as Partial<tus.UploadOptions>;
    const s = await startServer(t);
    const data = randomBytes(1536 * KiB + 5);
    const interop: string[] = [];
    const { url } = await upload(data, {
      endpoint: `${s.url}/files`,
      ...ietf,
      chunkSize: 512 * KiB,
      onAfterResponse: (_req, res) => void interop.push(String(res.getHeader('Upload-Draft-Interop-Version'))),
    });
    const got = await stored(s, url);
    t.same([got.sha256, got.size, got.status.status], [sha256(data), data.length, 'completed']);
    t.ok(
      interop.every((v) => v === (protocol === 'ietf-draft-05' ? '6' : '5')),
      'answered in the interop version asked for',
    );

    // Interrupted and resumed, as with tus.
    let firstUrl = '';
    await new Promise<void>((resolve, reject) => {
      const u = new tus.Upload(data, {
        endpoint: `${s.url}/files`,
        ...ietf,
        chunkSize: 256 * KiB,
        onChunkComplete: (_c, accepted) => {
          if (accepted >= 512 * KiB && !firstUrl) {
            firstUrl = u.url as string;
            void u.abort().then(resolve);
          }
        },
        onError: reject,
      });
      u.start();
    });
    const resumed = await upload(data, { uploadUrl: firstUrl, ...ietf, chunkSize: 256 * KiB });
    t.equal(resumed.url, firstUrl);
    t.equal((await stored(s, firstUrl)).sha256, sha256(data));
  });
}
