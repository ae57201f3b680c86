import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import { clientSha256, parseContentRange } from '../../src/http/chunk-headers.js';
import { verifying } from '../../src/service/verifying-stream.js';

const hex = createHash('sha256').update('hello').digest('hex');
const b64 = Buffer.from(hex, 'hex').toString('base64');

t.test('clientSha256 reads Content-Digest (RFC 9530) and X-Chunk-Sha256', async (t) => {
  t.equal(clientSha256({}), undefined);
  t.equal(clientSha256({ 'content-digest': `sha-256=:${b64}:` }), hex);
  t.equal(clientSha256({ 'content-digest': `md5=:AAAA:, sha-256=:${b64}:;foo=1` }), hex, 'other algorithms and parameters are ignored');
  t.equal(clientSha256({ 'x-chunk-sha256': hex.toUpperCase() }), hex);
  t.equal(clientSha256({ 'x-chunk-sha256': hex, 'content-digest': `sha-256=:${b64}:` }), hex, 'both, agreeing');
  t.throws(() => clientSha256({ 'x-chunk-sha256': [hex, hex] }), { code: 'invalid_request' }, 'duplicated header');
  t.throws(() => clientSha256({ 'content-digest': 'sha-512=:AAAA:' }), { code: 'unsupported_digest_algorithm' });
});

t.test('parseContentRange', async (t) => {
  t.same(parseContentRange('bytes 0-9/10'), { first: 0, last: 9, size: 10 });
  for (const bad of ['bytes 0-10/10', 'bytes 5-4/10', 'bytes */10', 'bytes 0-9/*', 'bytes 0-9', ' bytes 1-2/3x']) {
    t.throws(() => parseContentRange(bad), { code: 'invalid_range' }, bad);
  }
});

t.test('verifying passes matching bytes and fails before the end on a mismatch', async (t) => {
  const ok: Buffer[] = [];
  for await (const b of verifying(Readable.from([Buffer.from('hel'), Buffer.from('lo')]), hex, 5)) ok.push(b as Buffer);
  t.equal(Buffer.concat(ok).toString(), 'hello');
  const drain = async (s: NodeJS.ReadableStream) => {
    for await (const _ of s) void _;
  };
  await t.rejects(drain(verifying(Readable.from([Buffer.from('jello')]), hex, 5)), { code: 'file_checksum_mismatch' });
  await t.rejects(drain(verifying(Readable.from([Buffer.from('hell')]), hex, 5)), { code: 'file_checksum_mismatch' }, 'short');
  await t.rejects(
    drain(
      verifying(
        Readable.from(
          (async function* () {
            yield Buffer.from('he');
            throw new Error('disk');
          })(),
        ),
        hex,
        5,
      ),
    ),
    /disk/,
    'source errors propagate',
  );
});
