import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { loadConfig, type S3Config } from '../../src/config.js';
import type { StoredLocation } from '../../src/ledger/ledger.js';
import { verifying } from '../../src/service/verifying-stream.js';
import type { FileStore, PublishInput } from '../../src/storage/file-store.js';
import { LocalStore } from '../../src/storage/local-store.js';
import { S3Store, createS3Client, safeKeyName } from '../../src/storage/s3-store.js';
import { startS3, useS3Credentials } from '../helpers/s3.js';
import { randomFile, sha256, tmpDir, type TestContext } from '../helpers/server.js';

useS3Credentials();

interface Harness {
  store: FileStore;
  /** Every object the store holds, by some stable name. */
  visible(): Promise<string[]>;
}

/** The behaviour both stores promise (src/storage/file-store.ts), checked against each. */
const stores: Record<string, (t: TestContext, dataDir: string) => Promise<Harness>> = {
  local: async (_t, dataDir) => {
    const store = new LocalStore(dataDir);
    await store.init();
    return { store, visible: () => fs.readdir(path.join(dataDir, 'files')) };
  },
  s3: async (t) => {
    const s3 = await startS3(t);
    const config = loadConfig({ ...s3.env, S3_PART_SIZE: '5MiB', S3_QUEUE_SIZE: '2' }).storage as S3Config;
    const store = new S3Store(createS3Client(config), config);
    return { store, visible: () => s3.keys() };
  },
};

async function readAll(store: FileStore, location: StoredLocation): Promise<Buffer> {
  const download = await store.read(location, undefined, { fileName: 'x.bin', contentType: 'application/octet-stream' });
  if (download.kind === 'redirect') {
    const res = await fetch(download.url);
    if (res.status !== 200) throw new Error(`presigned GET answered ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }
  const parts: Buffer[] = [];
  for await (const b of download.stream) parts.push(b as Buffer);
  return Buffer.concat(parts);
}

function input(id: string, stagingPath: string, size: number, expected: string, fileName = 'data.bin', verified = false): PublishInput {
  return {
    verified,
    id,
    stagingPath,
    size,
    fileName,
    contentType: 'application/octet-stream',
    sha256: expected,
    open: () => verifying(createReadStream(stagingPath), expected, size),
  };
}

for (const [name, make] of Object.entries(stores)) {
  t.test(`${name} store contract`, async (t) => {
    const dataDir = await tmpDir(t);
    const { store, visible } = await make(t, dataDir);
    const stagingDir = path.join(dataDir, 'staging');
    await fs.mkdir(stagingDir, { recursive: true });

    await t.test('check() passes on a usable store', async () => {
      await store.check();
    });

    await t.test('publish makes the verified bytes visible; read returns them', async (t) => {
      const { file, sha256: digest } = await randomFile(stagingDir, 12 * 1024 * 1024 + 77, 'a');
      const source = await fs.readFile(file);
      const location = await store.publish(input('11111111-1111-4111-8111-111111111111', file, source.length, digest));
      t.equal(location.backend, name);
      t.same(await readAll(store, location), source, 'bytes equal (several S3 parts)');
      t.equal((await visible()).length, 1);
      await store.delete(location);
      t.same(await visible(), [], 'delete removes it');
      await store.delete(location);
      t.pass('deleting again is not an error');
    });

    await t.test('bytes the service already verified are published whole (a local store does not read them again)', async (t) => {
      const { file, sha256: digest } = await randomFile(stagingDir, 3 * 1024 * 1024 + 5, 'v');
      const source = await fs.readFile(file);
      let opened = 0;
      const given = input('44444444-4444-4444-8444-444444444444', file, source.length, digest, 'data.bin', true);
      const location = await store.publish({ ...given, open: () => (opened++, given.open()) });
      t.same(await readAll(store, location), source, 'bytes equal');
      t.equal(opened, name === 'local' ? 0 : 1, name === 'local' ? 'the staging file was renamed, not read' : 'read once, to send it');
      await store.delete(location);
    });

    await t.test('a digest mismatch publishes nothing and leaves the staging file as it was', async (t) => {
      const { file } = await randomFile(stagingDir, 7 * 1024 * 1024, 'b');
      const before = await fs.readFile(file);
      await t.rejects(store.publish(input('22222222-2222-4222-8222-222222222222', file, before.length, sha256('something else'))), {
        code: 'file_checksum_mismatch',
      });
      t.same(await visible(), [], 'nothing visible');
      t.same(await fs.readFile(file), before, 'staging bytes untouched');
    });

    await t.test('a failing source publishes nothing', async (t) => {
      const { file, sha256: digest } = await randomFile(stagingDir, 1000, 'c');
      const broken: PublishInput = {
        ...input('33333333-3333-4333-8333-333333333333', file, 1000, digest),
        open: () =>
          verifying(
            Readable.from(
              (async function* () {
                yield Buffer.alloc(500);
                throw new Error('EIO: read error');
              })(),
            ),
            digest,
            1000,
          ),
      };
      await t.rejects(store.publish(broken));
      t.same(await visible(), [], 'nothing visible');
      await fs.access(file);
    });

    await t.test('an empty file can be published', async (t) => {
      const file = path.join(stagingDir, 'empty');
      await fs.writeFile(file, '');
      const location = await store.publish(input('44444444-4444-4444-8444-444444444444', file, 0, sha256('')));
      t.same(await readAll(store, location), Buffer.alloc(0));
      await store.delete(location);
    });
  });
}

t.test('safeKeyName keeps keys readable and harmless', async (t) => {
  t.equal(safeKeyName('report 2024.pdf'), 'report_2024.pdf');
  t.equal(safeKeyName('../../etc/passwd'), 'etc_passwd');
  t.equal(safeKeyName('résumé.txt'), 'resume.txt');
  t.equal(safeKeyName('報告'), 'file');
  t.equal(safeKeyName('.hidden'), 'hidden');
  t.equal(safeKeyName('a'.repeat(300)).length, 100);
});
