/// <reference lib="dom" />
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startS3, useS3Credentials } from '../helpers/s3.js';
import { http, randomFile, sha256, sleep, startServer, tmpDir, type TestContext } from '../helpers/server.js';

// Browser tests live in test/browser/ and run with the rest of the suite (CI installs Debian's
// chromium first, see .ci/run). playwright-core drives it; its own browser download is not used.
const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `Debian's chromium is not installed at ${CHROMIUM} (.ci/run installs it)`;
const MiB = 1024 * 1024;
/** Screenshots land here (ignored by git): what a reviewer looks at. */
const SHOTS = path.join(import.meta.dirname, '..', '..', '.tap', 'screenshots');

useS3Credentials();

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

/** A page that records every console error and uncaught exception (each test checks none came). */
async function openPage(browser: Browser, url: string, viewport = { width: 1280, height: 800 }): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('dialog', (d) => void d.accept());
  await page.goto(url);
  await page.waitForSelector('body[data-ready=true]');
  return { page, errors };
}

async function addFiles(page: Page, files: string[]) {
  await page.locator('.uppy-Dashboard-input').first().setInputFiles(files);
}

const verified = (page: Page) =>
  page.$$eval('#verified li', (items) => items.map((li) => ({ name: (li as HTMLElement).dataset.name, sha256: (li as HTMLElement).dataset.sha256 })));

async function waitVerified(page: Page, count: number, timeout = 60_000) {
  await page.waitForFunction((n) => document.querySelectorAll('#verified li').length >= n, count, { timeout });
}

t.test('the page: several files at once, pause and resume, each verified; the Files view downloads and deletes', { skip }, async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const files = [await randomFile(work, 12 * MiB, 'holiday.mp4'), await randomFile(work, 3 * MiB, 'notes.pdf'), await randomFile(work, 1000, 'tiny.txt')];
  const { page, errors } = await openPage(await launch(t), `${s.url}/?chunk=${MiB}`);
  t.equal(await page.title(), 'sluice - upload');
  t.equal(await page.isHidden('#auth'), true, 'no token field: this server needs none');
  await fs.mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, 'upload-1280x800.png') });
  // Slow each PATCH a little, so that the upload can be paused mid-way.
  await page.route('**/files/**', async (route) => {
    if (route.request().method() === 'PATCH') await sleep(60);
    await route.continue();
  });
  await addFiles(
    page,
    files.map((f) => f.file),
  );
  t.equal(await page.locator('.uppy-Dashboard-Item').count(), 3, 'three files listed, with previews and sizes');
  await page.click('.uppy-StatusBar-actionBtn--upload');
  await page.waitForFunction(() => Number(document.querySelector('.uppy-StatusBar-progress')?.getAttribute('aria-valuenow') ?? 0) >= 10);
  await page.click('[data-cy=togglePauseResume]');
  await page.waitForSelector('[data-cy=togglePauseResume][title=Resume]');
  const paused = Number(await page.getAttribute('.uppy-StatusBar-progress', 'aria-valuenow'));
  await sleep(500);
  t.equal(Number(await page.getAttribute('.uppy-StatusBar-progress', 'aria-valuenow')), paused, 'paused: no progress');
  t.ok(paused < 100, `paused at ${paused}%`);
  await page.click('[data-cy=togglePauseResume]');
  await waitVerified(page, 3);
  const seen = await verified(page);
  for (const f of files) {
    t.equal(seen.find((v) => v.name === path.basename(f.file))?.sha256, f.sha256, `${path.basename(f.file)}: the server's SHA-256 is the file's`);
  }

  await page.click('.tab[data-view=files]');
  await page.waitForSelector('#files li[data-status=completed]');
  t.equal(await page.locator('#files li[data-status=completed]').count(), 3, 'the Files view lists them');
  t.equal(await page.isHidden('#more'), true, 'one page: no More button');
  await page.screenshot({ path: path.join(SHOTS, 'files-1280x800.png') });
  const row = page.locator('#files li[data-name="notes.pdf"]');
  t.equal(await row.getAttribute('data-sha256'), files[1]?.sha256);
  const [download] = await Promise.all([page.waitForEvent('download'), row.locator('a.download').click()]);
  t.equal(download.suggestedFilename(), 'notes.pdf');
  t.equal(sha256(await fs.readFile(await download.path())), files[1]?.sha256, 'downloaded bytes equal the source');
  const id = (await row.getAttribute('data-id')) as string;
  const stored = path.join(s.dataDir, (await http('GET', `${s.url}/v1/uploads/${id}`)).body.location.path as string);
  t.ok(existsSync(stored), 'stored before the delete');
  await row.locator('button.delete').click();
  await page.waitForSelector(`#files li[data-id="${id}"]`, { state: 'detached' });
  t.equal(await page.locator('#files li').count(), 2, 'it left the list');
  t.equal((await http('GET', `${s.url}/v1/uploads/${id}`)).body.status, 'aborted', 'deleted on the server');
  t.notOk(existsSync(stored), 'its stored file is gone');

  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(SHOTS, 'files-390x844.png'), fullPage: true });
  await page.click('.tab[data-view=upload]');
  await page.screenshot({ path: path.join(SHOTS, 'upload-390x844.png') });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  t.ok(overflow <= 0, `nothing wider than a phone screen (${overflow}px over)`);
  t.same(errors, [], 'no console errors');
});

t.test('the page: a reload mid-upload, the same file added again, resumed where the server is', { skip }, async (t) => {
  const s = await startServer(t);
  const work = await tmpDir(t);
  const src = await randomFile(work, 24 * MiB, 'movie.mov');
  const browser = await launch(t);
  const { page, errors } = await openPage(browser, `${s.url}/?chunk=${MiB}`);
  await page.route('**/files/**', async (route) => {
    if (route.request().method() === 'PATCH') await sleep(120);
    await route.continue();
  });
  await addFiles(page, [src.file]);
  await page.click('.uppy-StatusBar-actionBtn--upload');
  const received = () => (s.db.prepare("SELECT bytes_received AS n FROM uploads WHERE protocol = 'tus'").get() as { n: number } | undefined)?.n ?? 0;
  for (let i = 0; i < 200 && received() < 6 * MiB; i++) await sleep(100);
  t.ok(received() >= 6 * MiB, 'a quarter is on the server');
  await page.reload();
  await page.waitForSelector('body[data-ready=true]');
  const offsets: number[] = [];
  page.on('request', (r) => {
    if (r.method() === 'PATCH') offsets.push(Number(r.headers()['upload-offset']));
  });
  await addFiles(page, [src.file]);
  await page.click('.uppy-StatusBar-actionBtn--upload');
  await waitVerified(page, 1);
  t.ok((offsets[0] ?? 0) >= 6 * MiB, `the first PATCH after the reload started at ${offsets[0]}`);
  t.equal((await verified(page))[0]?.sha256, src.sha256, "the server's SHA-256 equals the file's");
  const rows = s.db.prepare("SELECT status FROM uploads WHERE protocol = 'tus'").all() as { status: string }[];
  t.same(
    rows.map((r) => r.status),
    ['completed'],
    'one upload, continued - not started again',
  );
  t.same(errors, [], 'no console errors');
});

t.test('the page with a token and limits: the token field, uploads as its user, restrictions from the server', { skip }, async (t) => {
  const token = 'browser-token-0123456789abcdef';
  const s = await startServer(t, { env: { AUTH_TOKENS: `${token}:web`, MAX_UPLOAD_SIZE: '4MiB' } });
  const work = await tmpDir(t);
  const ok = await randomFile(work, 2 * MiB, 'report.pdf');
  const big = await randomFile(work, 5 * MiB, 'too-big.bin');
  const { page, errors } = await openPage(await launch(t), s.url);
  t.equal(await page.isVisible('#auth'), true, 'the server needs a token: the field is shown');
  await page.fill('#token', token);
  await page.click('#token-save');
  await page.waitForFunction(() => document.querySelector('#auth-state')?.textContent === 'Token accepted.');
  t.match(await page.textContent('.uppy-Dashboard-note'), /Up to 4\.0 MiB per file/);
  await addFiles(page, [big.file]);
  t.equal(await page.locator('.uppy-Dashboard-Item').count(), 0, 'a file over MAX_UPLOAD_SIZE is refused before any request');
  await addFiles(page, [ok.file]);
  await page.click('.uppy-StatusBar-actionBtn--upload');
  await waitVerified(page, 1);
  t.equal((await verified(page))[0]?.sha256, ok.sha256);
  const owner = s.db.prepare("SELECT owner FROM uploads WHERE protocol = 'tus'").get() as { owner: string };
  t.equal(owner.owner, 'web', "uploaded as the token's user");
  t.same(errors, [], 'no console errors');
});

t.test('the page with S3: @uppy/aws-s3 sends the parts straight to the bucket; the server checks each part', { skip }, async (t) => {
  const s3 = await startS3(t, 'sluice-test', { corsOrigins: ['*'] });
  const s = await startServer(t, { env: { ...s3.env, S3_PART_SIZE: '5MiB' } });
  const work = await tmpDir(t);
  const src = await randomFile(work, 12 * MiB + 7, 'scan.tiff');
  const { page, errors } = await openPage(await launch(t), s.url);
  t.match(await page.textContent('#mode'), /straight to the bucket/);
  const puts: string[] = [];
  page.on('request', (r) => {
    if (r.method() === 'PUT') puts.push(new URL(r.url()).origin);
  });
  await addFiles(page, [src.file]);
  await page.click('.uppy-StatusBar-actionBtn--upload');
  await waitVerified(page, 1);
  t.equal((await verified(page))[0]?.sha256, src.sha256, 'verified part by part, finished with the right SHA-256');
  t.same([...new Set(puts)], [s3.endpoint], 'every part went to the bucket, none to this server');
  t.equal(puts.length, 3, 'three parts of 5 MiB');
  const keys = await s3.keys();
  t.equal(keys.length, 1, 'one object, nothing staged left');
  t.equal(sha256((await s3.get(keys[0] as string)).body), src.sha256, 'the bucket holds the source');
  const metrics = (await http('GET', `${s.url}/metrics`)).text;
  t.equal(Number(/^sluice_bytes_received_total(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0), 0, 'no file byte came through the server');
  t.same(errors, [], 'no console errors');
});

t.test('/docs: the API reference, branded sluice, renders every tag with no console error', { skip }, async (t) => {
  const s = await startServer(t);
  const browser = await launch(t);
  for (const viewport of [
    { width: 1280, height: 800 },
    { width: 390, height: 844 },
  ]) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${s.url}/docs`);
    await page.waitForSelector('.opblock-tag', { timeout: 20_000 });
    t.equal(await page.title(), 'sluice API');
    t.equal((await page.textContent('.sluice-brand'))?.trim(), 'sluice');
    const tags = await page.$$eval('.opblock-tag', (els) => els.map((e) => (e as HTMLElement).dataset.tag));
    t.same(
      tags,
      ['uploads', 'chunks', 'direct', 'files', 'events', 'operations'].filter((tag) => tags.includes(tag)),
      'in the order the document lists them',
    );
    t.ok(tags.includes('events') && tags.includes('files'), `tags: ${tags.join(', ')}`);
    await page.screenshot({ path: path.join(SHOTS, `docs-${viewport.width}x${viewport.height}.png`) });
    t.same(errors, [], 'no console errors');
    await context.close();
  }
});
