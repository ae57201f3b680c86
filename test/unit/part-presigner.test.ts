import { S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import { PartPresigner } from '../../src/storage/part-presigner.js';

const params = (url: string) => {
  const u = new URL(url);
  return { base: `${u.protocol}//${u.host}${u.pathname}`, query: Object.fromEntries(u.searchParams) };
};

t.test('PartPresigner signs each part URL exactly as the SDK presigner does', async (t) => {
  for (const [name, config] of [
    ['a custom endpoint, path style', { endpoint: 'http://127.0.0.1:9000', forcePathStyle: true }],
    ['AWS, virtual-hosted style', {}],
  ] as const) {
    const client = new S3Client({
      region: 'eu-west-1',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'token/with+chars' },
      ...config,
    });
    const presigner = new PartPresigner(client, 'eu-west-1');
    const signingDate = new Date('2026-12-04T05:00:00Z');
    const common = { bucket: 'my-bucket', key: 'in/.staging/3f2c-ü x', uploadId: 'up+id/=1', expiresInSeconds: 3600, signingDate };
    for (const checksum of [undefined, 'n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=']) {
      for (const partNumber of [1, 2, 10_000]) {
        const mine = params(await presigner.url({ ...common, partNumber, checksum }));
        const sdk = params(await presigner.sdkUrl({ ...common, partNumber, checksum }));
        t.same(mine, sdk, `${name}: part ${partNumber}${checksum ? ', with a checksum header' : ''}`);
      }
    }
    client.destroy();
  }
});

t.test('with the SDK flexible checksums on, part URLs still sign no checksum of an empty body', async (t) => {
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: 'http://127.0.0.1:9000',
    forcePathStyle: true,
    credentials: { accessKeyId: 'A', secretAccessKey: 'B' },
  });
  const presigner = new PartPresigner(client, 'us-east-1');
  const url = new URL(await presigner.url({ bucket: 'b', key: 'k', uploadId: 'u', partNumber: 1, checksum: undefined, expiresInSeconds: 60 }));
  t.notOk(
    [...url.searchParams.keys()].some((k) => /checksum/i.test(k)),
    url.search,
  );
  client.destroy();
});
