/// <reference lib="dom" />
import { existsSync } from 'node:fs';
import t from 'tap';
import { chromium, type Browser } from 'playwright-core';
import { http, randomFile, sleep, startServer, tmpDir, type TestContext } from '../helpers/server.js';

// Browser tests live in test/browser/ and run with the rest of the suite (CI installs Debian's
// chromium first, see .ci/run). playwright-core drives it; its own browser download is not used.
const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `Debian's chromium is not installed at ${CHROMIUM} (.ci/run installs it)`;
const MiB = 1024 * 1024;

async function launch(t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());
  return browser;
}

t.test('the uploader page: a 40 MiB upload with progress, a reload mid-upload, resumed, SHA-256 verified by the server', { skip }, async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const src = await randomFile(work, 40 * MiB, 'holiday.mp4');
  const browser = await launch(t);
  const page = await (await browser.newContext()).newPage();
  // Slow each PATCH down a little, so that the test can watch the progress and reload mid-way.
  await page.route('**/files/**', async (route) => {
    if (route.request().method() === 'PATCH') await sleep(120);
    await route.continue();
  });
  await page.goto(`${s.url}/?chunk=${2 * MiB}`);
  t.equal(await page.title(), 'sluice - upload');
  await page.setInputFiles('#files', src.file);
  await page.waitForFunction(() => Number((document.querySelector('.row') as HTMLElement | null)?.dataset.progress ?? 0) >= 25, null, { timeout: 30_000 });
  const info = await page.textContent('.row .info');
  t.match(info, /^\d+% - [\d.]+ MiB of 40\.0 MiB - [\d.]+ (KiB|MiB)\/s$/, `progress with rate: ${info}`);

  await page.reload();
  t.match(await page.textContent('#pending'), /1 unfinished upload\(s\)/, 'the page remembers the unfinished upload');
  const offsets: number[] = [];
  page.on('request', (r) => {
    if (r.method() === 'PATCH') offsets.push(Number(r.headers()['upload-offset']));
  });
  await page.setInputFiles('#files', src.file);
  await page.waitForFunction(() => (document.querySelector('.row') as HTMLElement | null)?.dataset.state === 'done', null, { timeout: 60_000 });
  const row = await page.$eval('.row', (el) => ({ ...(el as HTMLElement).dataset }));
  t.equal(row.resumed, 'true', 'resumed after the reload');
  t.ok((offsets[0] ?? 0) >= 10 * MiB, `the first PATCH after the reload started at ${offsets[0]}`);
  t.equal(row.sha256, src.sha256, "the server's SHA-256 equals the file's");
  const ids = s.db.prepare("SELECT id FROM uploads WHERE protocol = 'tus'").all() as { id: string }[];
  t.same(
    ids.map((r) => r.id),
    [row.id],
    'one upload, continued - not started again',
  );
  t.equal((await http('GET', `${s.url}/v1/uploads/${row.id}`)).body.file_name, 'holiday.mp4');
});

t.test('the uploader page with a token; pause, resume and cancel', { skip }, async (t) => {
  const token = 'browser-token-0123456789abcdef';
  const s = await startServer(t, { env: { AUTH_TOKENS: `${token}:web` } });
  const work = await tmpDir(t);
  const src = await randomFile(work, 12 * MiB, 'report.pdf');
  const other = await randomFile(work, 6 * MiB, 'draft.bin');
  const page = await (await (await launch(t)).newContext()).newPage();
  await page.route('**/files/**', async (route) => {
    if (route.request().method() === 'PATCH') await sleep(150);
    await route.continue();
  });
  await page.goto(`${s.url}/?chunk=${1 * MiB}`);
  await page.fill('#token', token);
  await page.dispatchEvent('#token', 'change');
  await page.setInputFiles('#files', src.file);
  await page.waitForFunction(() => Number((document.querySelector('.row') as HTMLElement | null)?.dataset.progress ?? 0) >= 20, null, { timeout: 30_000 });
  await page.click('.row button:text("Pause")');
  t.equal(await page.$eval('.row', (el) => (el as HTMLElement).dataset.state), 'paused');
  await page.click('.row button:text("Resume")');
  await page.waitForFunction(() => (document.querySelector('.row') as HTMLElement | null)?.dataset.state === 'done', null, { timeout: 60_000 });
  t.equal(await page.$eval('.row', (el) => (el as HTMLElement).dataset.sha256), src.sha256, 'paused, resumed, verified');
  const owner = s.db.prepare("SELECT owner FROM uploads WHERE protocol = 'tus'").get() as { owner: string };
  t.equal(owner.owner, 'web', "uploaded as the token's user");

  await page.setInputFiles('#files', other.file);
  const second = page.locator('.row').nth(1);
  await page.waitForFunction(() => Number((document.querySelectorAll('.row')[1] as HTMLElement | undefined)?.dataset.progress ?? 0) >= 10, null, {
    timeout: 30_000,
  });
  await second.locator('button:text("Cancel")').click();
  await page.waitForFunction(() => (document.querySelectorAll('.row')[1] as HTMLElement | undefined)?.dataset.state === 'cancelled');
  await sleep(200);
  const statuses = (s.db.prepare("SELECT status FROM uploads WHERE protocol = 'tus' ORDER BY created_at").all() as { status: string }[]).map((r) => r.status);
  t.same(statuses, ['completed', 'aborted'], 'cancel terminates the upload on the server');
});
