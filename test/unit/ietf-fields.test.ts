import { parseDictionary } from 'structured-headers';
import t from 'tap';
import { completeField, integerField, interopVersion, limitField } from '../../src/routes/tus/ietf.js';

t.test('interopVersion: an Integer among 5 to 8; anything else is refused', async (t) => {
  t.equal(interopVersion({}), undefined, 'not a draft request');
  for (const v of [5, 6, 7, 8]) t.equal(interopVersion({ 'upload-draft-interop-version': String(v) }), v);
  for (const bad of ['4', '9', '8.0', 'eight', '?1']) t.throws(() => interopVersion({ 'upload-draft-interop-version': bad }), { code: 'invalid_request' }, bad);
});

t.test('completeField: a Boolean; from interop 7 anything else is ignored as a whole, before it is refused', async (t) => {
  t.equal(completeField({ 'upload-complete': '?1' }, 8), true);
  t.equal(completeField({ 'upload-complete': '?0;note=1' }, 7), false, 'parameters do not change the value');
  t.equal(completeField({ 'upload-complete': 'true' }, 8), undefined);
  t.equal(completeField({ 'upload-complete': '1' }, 7), undefined, 'an Integer is not a Boolean');
  t.throws(() => completeField({ 'upload-complete': 'true' }, 6), { code: 'invalid_request' });
  t.equal(completeField({}, 8), undefined);
});

t.test('integerField: a non-negative Integer from interop 7; before, a plain number', async (t) => {
  t.equal(integerField({ 'upload-offset': '123' }, 'upload-offset', 8), 123);
  t.equal(integerField({ 'upload-offset': '123;x' }, 'upload-offset', 8), 123);
  for (const bad of ['-1', '1.5', '"12"', 'abc', '1234567890123456']) t.equal(integerField({ 'upload-offset': bad }, 'upload-offset', 7), undefined, bad);
  t.equal(integerField({ 'upload-offset': '42' }, 'upload-offset', 6), 42);
  t.throws(() => integerField({ 'upload-offset': 'abc' }, 'upload-offset', 6), { code: 'invalid_request' });
});

t.test('limitField: a Dictionary; expires at interop 6, max-age after; min-size=0 with no limit at all', async (t) => {
  const at7 = parseDictionary(limitField(7, { maxSize: 1000, maxAge: 59.9 }));
  t.same([at7.get('max-size')?.[0], at7.get('max-age')?.[0], at7.has('expires')], [1000, 59, false]);
  const at6 = parseDictionary(limitField(6, { maxSize: 1000, maxAge: 60 }));
  t.same([at6.get('expires')?.[0], at6.has('max-age')], [60, false]);
  t.equal(limitField(8, { maxSize: 5, maxAge: -3 }), 'max-size=5, max-age=0', 'an expired lifetime is 0, not negative');
  t.equal(limitField(8, { maxSize: Number.POSITIVE_INFINITY }), 'min-size=0');
});
