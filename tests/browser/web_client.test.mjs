// The web client in a real browser: headless Debian Chromium driven by playwright-core against
// the local server that scripts/browser.sh starts. Env: BASE_URL, USER_KEY, PHOTOS,
// SCREENSHOTS. Screenshots land in SCREENSHOTS for a person to look at.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.BASE_URL;
const key = process.env.USER_KEY;
const photos = process.env.PHOTOS;
const shots = process.env.SCREENSHOTS;
const DEADLINE = 90_000;

let browser;

before(async () => {
  await mkdir(shots, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // WebGL without a GPU: SwiftShader, which recent Chromium only uses when asked.
      '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
    ],
  });
});

after(async () => {
  await browser?.close();
});

async function newPage() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  return { page, errors };
}

/// Share of the viewer's pixels that differ clearly from its empty background.
async function drawnShare(page) {
  return page.evaluate(() => {
    const source = document.getElementById('viewer-canvas');
    const copy = document.createElement('canvas');
    copy.width = source.width;
    copy.height = source.height;
    const ctx = copy.getContext('2d');
    ctx.drawImage(source, 0, 0);
    const { data } = ctx.getImageData(0, 0, copy.width, copy.height);
    let drawn = 0;
    for (let i = 0; i < data.length; i += 4) {
      const d = Math.abs(data[i] - 223) + Math.abs(data[i + 1] - 227) + Math.abs(data[i + 2] - 234);
      if (d > 40) drawn += 1;
    }
    return drawn / (data.length / 4);
  });
}

async function viewerPixels(page) {
  return page.evaluate(() => document.getElementById('viewer-canvas').toDataURL());
}

test('a person uploads two photos, watches them finish, turns the model and downloads it', async () => {
  const { page, errors } = await newPage();
  // By another name than the one signed URLs use: the page's policy must let them through.
  await page.goto(`${base.replace('127.0.0.1', 'localhost')}/`);
  await page.fill('#api-key', key);
  await page.click('#save-key');
  await page.waitForFunction(() => document.body.dataset.authenticated === 'true', null, { timeout: DEADLINE });
  await page.waitForSelector('#model-type option', { state: 'attached' });
  await page.screenshot({ path: path.join(shots, '1-signed-in.png') });

  const dropped = Date.now();
  await page.setInputFiles('#files', [path.join(photos, 'horse.png'), path.join(photos, 'rocket.jpg')]);
  await page.waitForFunction(
    () => document.querySelectorAll('li.job.completed').length === 2
      || document.querySelectorAll('li.job.failed').length > 0,
    null, { timeout: DEADLINE, polling: 100 },
  );
  const failed = await page.$$eval('li.job.failed .message', (els) => els.map((e) => e.textContent));
  assert.deepEqual(failed, [], 'no job failed');
  await page.waitForFunction(() => document.getElementById('viewer-canvas').dataset.model, null, { timeout: DEADLINE });
  const toViewer = (Date.now() - dropped) / 1000;
  console.log(`drop to viewer: ${toViewer.toFixed(2)} s for two photos`);
  await page.screenshot({ path: path.join(shots, '2-two-models-done.png'), fullPage: true });

  // The viewer drew the model, and dragging turns it.
  const share = await drawnShare(page);
  assert.ok(share > 0.02, `the viewer drew the model (${(share * 100).toFixed(1)} % of pixels)`);
  const before = await viewerPixels(page);
  const box = await page.locator('#viewer-canvas').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 160, box.y + box.height / 2 + 40, { steps: 8 });
  await page.mouse.up();
  await page.waitForTimeout(300); // Damped orbit: let it settle before the next screenshot.
  assert.notEqual(await viewerPixels(page), before, 'dragging turned the model');
  await page.locator('#viewer').screenshot({ path: path.join(shots, '3-viewer-turned.png') });

  // Each download link is a valid GLB.
  const links = await page.$$eval('li.job a.download', (els) => els.map((a) => a.href));
  assert.equal(links.length, 2);
  for (const link of links) {
    const bytes = Buffer.from(await (await fetch(link)).arrayBuffer());
    assert.equal(bytes.subarray(0, 4).toString('latin1'), 'glTF');
    assert.equal(bytes.readUInt32LE(4), 2, 'glTF 2');
    assert.equal(bytes.readUInt32LE(8), bytes.length, 'the length the header declares');
  }
  // Recent jobs list both.
  await page.click('#refresh-recent');
  await page.waitForFunction(() => document.querySelectorAll('li.recent.completed').length >= 2, null, { timeout: DEADLINE });
  // Each completed job shows its preview image.
  await page.waitForFunction(
    () => [...document.querySelectorAll('li.recent.completed img.preview')].filter((i) => i.complete && i.naturalWidth === 512).length >= 2,
    null, { timeout: DEADLINE },
  );
  await page.screenshot({ path: path.join(shots, '4-recent-jobs.png'), fullPage: true });
  assert.deepEqual(errors, [], 'no script errors');
  await page.close();
});

test('a client that builds the stream URL from the task id follows it without a key', async () => {
  // A job made the old way (multipart upload with a key); the page then knows only its id.
  const form = new FormData();
  const photo = await readFile(path.join(photos, 'coffee.webp'));
  form.append('files', new Blob([photo], { type: 'image/webp' }), 'coffee.webp');
  const response = await fetch(`${base}/api/v1/upload/`, {
    method: 'POST', headers: { Authorization: `Bearer ${key}` }, body: form,
  });
  assert.equal(response.status, 200);
  const { task_id: taskId } = await response.json();

  const { page, errors } = await newPage();
  await page.goto(`${base}/`);
  const events = await page.evaluate((id) => new Promise((resolve, reject) => {
    const seen = [];
    const source = new EventSource(`/api/v1/status/tasks/${id}/stream`);
    const timer = setTimeout(() => reject(new Error(`no terminal event: ${JSON.stringify(seen)}`)), 60000);
    for (const name of ['task_queued', 'task_progress']) {
      source.addEventListener(name, (e) => seen.push({ name, data: JSON.parse(e.data) }));
    }
    source.addEventListener('task_completed', (e) => {
      clearTimeout(timer);
      source.close();
      resolve([...seen, { name: 'task_completed', data: JSON.parse(e.data), id: e.lastEventId }]);
    });
    source.addEventListener('task_failed', (e) => { clearTimeout(timer); source.close(); reject(new Error(e.data)); });
  }), taskId);
  const done = events.at(-1);
  assert.equal(done.name, 'task_completed');
  assert.equal(done.data.job_id, taskId);
  assert.equal(done.data.summary.successful_files, 1);
  assert.equal(done.data.result, undefined, 'the public view holds no result');
  assert.ok(done.id, 'events carry an id');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a link naming another API repoints the page only when the person says so, and never for good', async () => {
  const { page } = await newPage();
  const foreign = 'http://127.0.0.1:9';
  const asked = [];
  page.on('request', (request) => { if (request.url().startsWith(foreign)) asked.push(request.url()); });
  await page.goto(`${base}/`);
  await page.evaluate(() => localStorage.clear());
  await page.goto(`${base}/?api=${foreign}`);
  await page.waitForSelector('#api-notice:not([hidden])');
  assert.match(await page.textContent('#api-notice'), /127\.0\.0\.1:9/);
  // Until the person answers, the page keeps to its own server.
  await page.waitForSelector('#model-type option', { state: 'attached', timeout: DEADLINE });
  assert.deepEqual(asked, [], 'no request went to the linked server unasked');
  await page.click('#api-decline');
  assert.equal(new URL(page.url()).search, '', 'the link is forgotten');
  await page.goto(`${base}/`);
  await page.waitForSelector('#model-type option', { state: 'attached', timeout: DEADLINE });
  assert.equal(await page.isHidden('#api-notice'), true);
  // Accepted, the choice is kept, and the page offers the way back.
  await page.goto(`${base}/?api=${foreign}`);
  await page.click('#api-accept');
  await page.waitForSelector('#api-home');
  await page.waitForFunction(() => /Could not list models/.test(document.getElementById('auth-status').textContent), null, { timeout: DEADLINE });
  await page.screenshot({ path: path.join(shots, '5-another-api.png') });
  await page.click('#api-home');
  await page.waitForSelector('#model-type option', { state: 'attached', timeout: DEADLINE });
  assert.equal(await page.evaluate(() => localStorage.getItem('image2model.api')), null);
  // Links a person would read as another host than the browser would are no proposal at all.
  asked.length = 0;
  for (const spoof of ['http://evil.example\\.trusted.example', 'http://trusted.example@127.0.0.1:9', 'javascript:alert(1)']) {
    await page.goto(`${base}/?api=${encodeURIComponent(spoof)}`);
    await page.waitForSelector('#model-type option', { state: 'attached', timeout: DEADLINE });
    assert.equal(await page.isHidden('#api-notice'), true, spoof);
  }
  assert.deepEqual(asked, [], 'no request went to a spoofed server');
  await page.close();
});

test('a link naming another API finds no key to send it', async () => {
  const { page } = await newPage();
  const leaked = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(base) && request.headers().authorization) leaked.push(request.url());
  });
  await page.goto(`${base}/`);
  await page.fill('#api-key', key);
  await page.click('#save-key');
  await page.waitForFunction(() => document.body.dataset.authenticated === 'true', null, { timeout: DEADLINE });
  await page.goto(`${base}/?api=http://127.0.0.1:9`);
  await page.click('#api-accept');
  await page.waitForSelector('#api-home');
  await page.waitForFunction(() => document.getElementById('auth-status').textContent !== '', null, { timeout: DEADLINE });
  assert.equal(await page.inputValue('#api-key'), '', 'the key stays with the API it was given for');
  assert.deepEqual(leaked, [], 'no request to another API carried the key');
  await page.click('#api-home');
  await page.waitForFunction(() => document.body.dataset.authenticated === 'true', null, { timeout: DEADLINE });
  await page.close();
});
