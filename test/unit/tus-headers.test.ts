import t from 'tap';
import { checksumValue, idFromUrl, nonNegativeInteger, parseConcat, parseMetadata } from '../../src/routes/tus/tus-headers.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('Upload-Metadata', async (t) => {
  t.equal(parseMetadata({}), undefined);
  const m = parseMetadata({ 'upload-metadata': `filename ${b64('a b.txt')},empty,also_empty ,type ${b64('text/plain')}` });
  t.same(m?.values, { filename: 'a b.txt', empty: '', also_empty: '', type: 'text/plain' });
  t.equal(m?.raw, `filename ${b64('a b.txt')},empty,also_empty ,type ${b64('text/plain')}`);
  for (const bad of ['k v!', 'k abc', `k ${b64('x')},k ${b64('y')}`, ' ', `a b c`]) {
    if (bad === ' ') continue; // blank metadata is allowed and empty
    t.throws(() => parseMetadata({ 'upload-metadata': bad }), { code: 'invalid_request' }, JSON.stringify(bad));
  }
  t.same(parseMetadata({ 'upload-metadata': ' ' })?.values, {});
});

t.test('Upload-Checksum', async (t) => {
  t.same(checksumValue('sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0='), { algorithm: 'sha1', digest: Buffer.from('Kq5sNclPz7QV2+lfQIuc6R7oRu0=', 'base64') });
  t.throws(() => checksumValue('crc32 AAAA'), { code: 'checksum_algorithm_unsupported' });
  t.throws(() => checksumValue('SHA1 AAAA'), { code: 'invalid_request' }, 'algorithm names are lowercase');
  t.throws(() => checksumValue('sha1'), { code: 'invalid_request' });
});

t.test('Upload-Concat and partial URLs', async (t) => {
  t.same(parseConcat({ 'upload-concat': 'partial' }), { kind: 'partial' });
  t.same(parseConcat({ 'upload-concat': 'final;/files/a http://h/files/b' }), {
    kind: 'final',
    urls: ['/files/a', 'http://h/files/b'],
    raw: 'final;/files/a http://h/files/b',
  });
  t.throws(() => parseConcat({ 'upload-concat': 'final;' }), { code: 'invalid_request' });
  const id = '0f8fad5b-d9cb-469f-a165-70867728950e';
  t.equal(idFromUrl(`/files/${id}`, '/files'), id);
  t.equal(idFromUrl(`https://up.example/files/${id}`, '/files'), id);
  t.throws(() => idFromUrl(`/other/${id}`, '/files'), { code: 'invalid_request' });
  t.throws(() => idFromUrl('/files/../etc/passwd', '/files'), { code: 'invalid_request' });
});

t.test('non-negative integer headers', async (t) => {
  t.equal(nonNegativeInteger({ 'upload-offset': '0' }, 'upload-offset'), 0);
  t.equal(nonNegativeInteger({}, 'upload-offset'), undefined);
  for (const bad of ['-1', '1.5', 'x', '99999999999999999', '']) {
    t.throws(() => nonNegativeInteger({ 'upload-offset': bad }, 'upload-offset'), { code: 'invalid_request' }, bad);
  }
  t.throws(() => nonNegativeInteger({ 'upload-offset': ['1', '2'] }, 'upload-offset'), { code: 'invalid_request' }, 'sent twice');
});
