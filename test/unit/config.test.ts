import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';
import { parseBytes, parseDuration } from '../../src/lib/units.js';

t.test('parseBytes: plain bytes, decimal and binary suffixes', async (t) => {
  const cases: [string, number | undefined][] = [
    ['1048576', 1048576],
    ['64KiB', 65536],
    ['5GiB', 5 * 1024 ** 3],
    ['1.5 MiB', 1.5 * 1024 ** 2],
    ['2GB', 2e9],
    ['10k', 10_000],
    ['1tib', 1024 ** 4],
    ['', undefined],
    ['-5', undefined],
    ['5XB', undefined],
    ['1e9', undefined],
    ['99999999999TiB', undefined],
  ];
  for (const [input, want] of cases) t.equal(parseBytes(input), want, JSON.stringify(input));
});

t.test('parseDuration: ms strings and plain milliseconds', async (t) => {
  t.equal(parseDuration('24h'), 86_400_000);
  t.equal(parseDuration('90s'), 90_000);
  t.equal(parseDuration('1500'), 1500);
  t.equal(parseDuration('soon'), undefined);
});

t.test('loadConfig: defaults', async (t) => {
  const c = loadConfig({}, '/srv');
  t.same(
    [c.port, c.host, c.dataDir, c.logLevel, c.maxUploadSize, c.defaultChunkSize, c.minChunkSize, c.maxChunkSize, c.maxChunks, c.uploadTtlMs, c.storage],
    [8080, '127.0.0.1', '/srv/data', 'info', 100 * 1024 ** 3, 8 * 1024 ** 2, 64 * 1024, 256 * 1024 ** 2, 10_000, 86_400_000, { backend: 'local' }],
  );
});

t.test('loadConfig: values from the environment', async (t) => {
  const c = loadConfig({
    PORT: '9000',
    HOST: '0.0.0.0',
    DATA_DIR: '/var/lib/sluice',
    MAX_UPLOAD_SIZE: '5GiB',
    UPLOAD_TTL: '2h',
    PUBLIC_URL: 'https://up.example.com/',
  });
  t.same(
    [c.port, c.host, c.dataDir, c.maxUploadSize, c.uploadTtlMs, c.publicUrl],
    [9000, '0.0.0.0', '/var/lib/sluice', 5 * 1024 ** 3, 7_200_000, 'https://up.example.com'],
  );
});

t.test('loadConfig: every bad value is reported at once', async (t) => {
  const err = t.throws(() =>
    loadConfig({ PORT: 'http', LOG_LEVEL: 'loud', MAX_CHUNKS: '0', STORAGE_BACKEND: 'ftp', PUBLIC_URL: 'ftp://x', DEFAULT_CHUNK_SIZE: '1GiB' }),
  ) as ConfigError;
  t.type(err, ConfigError);
  t.equal(err.problems.length, 6, err.message);
  t.match(err.message, /PORT="http"/);
  t.match(err.message, /STORAGE_BACKEND="ftp"/);
  t.match(err.message, /DEFAULT_CHUNK_SIZE .* must lie between/);
});

t.test('loadConfig: memory profile and GC pacing', async (t) => {
  const d = loadConfig({});
  t.same([d.memoryProfile, d.gcEveryBytes], ['small', 4 * 1024 ** 2], 'small footprint and pacing by default');
  const c = loadConfig({ MEMORY_PROFILE: 'fast', GC_EVERY: '0' });
  t.same([c.memoryProfile, c.gcEveryBytes], ['fast', 0]);
  t.equal(loadConfig({ GC_EVERY: '8MiB' }).gcEveryBytes, 8 * 1024 ** 2);
  const err = t.throws(() => loadConfig({ MEMORY_PROFILE: 'tiny', GC_EVERY: 'often' })) as ConfigError;
  t.same(err.problems, ['MEMORY_PROFILE="tiny" is not small or fast', 'GC_EVERY="often" is not a byte size (e.g. 1MiB) or 0']);
});

t.test('loadConfig: MIN_BODY_RATE is bytes per duration, or 0 for off', async (t) => {
  t.same(loadConfig({}, '/srv').minBodyRate, { bytes: 1024, windowMs: 30_000 });
  t.same(loadConfig({ MIN_BODY_RATE: '64KiB/10s' }, '/srv').minBodyRate, { bytes: 64 * 1024, windowMs: 10_000 });
  t.equal(loadConfig({ MIN_BODY_RATE: '0' }, '/srv').minBodyRate, undefined, '0 turns the guard off');
  t.throws(() => loadConfig({ MIN_BODY_RATE: 'fast' }, '/srv'), ConfigError);
});

t.test('loadConfig: events, webhooks and hooks', async (t) => {
  const secret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
  const c = loadConfig({
    WEBHOOK_URLS: 'http://a.example/hook, https://b.example/h',
    WEBHOOK_SECRET: secret,
    WEBHOOK_RETRY_FOR: '2h',
    EVENT_PROGRESS_INTERVAL: '5s',
    HOOK_PRE_CREATE_URL: 'http://hooks.example/pre',
    HOOK_FAIL_OPEN: 'true',
    POST_PROCESS_URL: 'http://proc.example/',
    PROCESSOR_TOKEN: 'p'.repeat(20),
  }).events;
  t.same(c.webhookUrls, ['http://a.example/hook', 'https://b.example/h']);
  t.same([c.retryForMs, c.retryMinMs, c.timeoutMs, c.progressIntervalMs, c.retentionMs], [7_200_000, 1000, 10_000, 5000, 7 * 24 * 3600_000]);
  t.same([c.hooks.preCreateUrl, c.hooks.failOpen, c.postProcessUrl], ['http://hooks.example/pre', true, 'http://proc.example/']);
  t.same(loadConfig({}).events.webhookUrls, [], 'nothing is sent by default');

  const err = t.throws(() =>
    loadConfig({ WEBHOOK_URLS: 'ftp://x, http://y', POST_PROCESS_URL: 'http://p/', PROCESSOR_TOKEN: 'short', HOOK_TIMEOUT: 'soon' }),
  ) as ConfigError;
  t.match(err.problems.join('\n'), /WEBHOOK_URLS="ftp:\/\/x, http:\/\/y" is not a comma-separated list of http\(s\) URLs/);
  t.match(err.problems.join('\n'), /PROCESSOR_TOKEN must be at least 16 characters/);
  t.match(err.problems.join('\n'), /WEBHOOK_SECRET is required/);
  t.match(err.problems.join('\n'), /HOOK_TIMEOUT="soon"/);
  const noToken = t.throws(() => loadConfig({ POST_PROCESS_URL: 'http://p/', WEBHOOK_SECRET: secret })) as ConfigError;
  t.match(noToken.problems.join('\n'), /POST_PROCESS_URL needs PROCESSOR_TOKEN/);
  for (const bad of ['not-a-secret', 'whsec_!!!', `whsec_${Buffer.alloc(8).toString('base64')}`]) {
    const e = t.throws(() => loadConfig({ WEBHOOK_SECRET: bad })) as ConfigError;
    t.match(e.problems.join('\n'), /WEBHOOK_SECRET must be "whsec_"/, bad);
  }
});

t.test('loadConfig: token introspection needs its client credentials', async (t) => {
  const ok = loadConfig({ AUTH_INTROSPECTION_URL: 'https://idp.example/introspect', AUTH_INTROSPECTION_CLIENT_ID: 'c', AUTH_INTROSPECTION_CLIENT_SECRET: 's' });
  t.same(ok.auth.introspection, { url: 'https://idp.example/introspect', clientId: 'c', clientSecret: 's', cacheMs: 60_000 });
  const err = t.throws(() => loadConfig({ AUTH_INTROSPECTION_URL: 'https://idp.example/introspect', AUTH_INTROSPECTION_CACHE: 'forever' })) as ConfigError;
  t.match(err.problems.join('\n'), /needs AUTH_INTROSPECTION_CLIENT_ID and AUTH_INTROSPECTION_CLIENT_SECRET/);
  t.match(err.problems.join('\n'), /AUTH_INTROSPECTION_CACHE="forever"/);
});
