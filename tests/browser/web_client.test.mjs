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
const otherKey = process.env.OTHER_KEY;
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

async function signIn(page) {
  await page.fill('#api-key', key);
  await page.click('#save-key');
  await page.waitForFunction(() => document.body.dataset.authenticated === 'true', null, { timeout: DEADLINE });
}

/// The download that `click` starts, and its bytes.
async function downloadBy(page, click) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: DEADLINE }), click()]);
  assert.equal(await download.failure(), null, 'the download completed');
  return { download, bytes: await readFile(await download.path()) };
}

/// A job of one photo (uploaded in one request, then a job on it, with the key), once it completed.
async function completedJob(photo, type) {
  const form = new FormData();
  form.append('file', new Blob([await readFile(path.join(photos, photo))], { type }), photo);
  const auth = { Authorization: `Bearer ${key}` };
  const uploaded = await fetch(`${base}/api/v1/upload/image`, { method: 'POST', headers: auth, body: form });
  assert.ok(uploaded.ok, `upload: ${uploaded.status}`);
  const { file_id: fileId } = await uploaded.json();
  const created = await fetch(`${base}/api/v1/jobs`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ file_id: fileId }),
  });
  assert.equal(created.status, 202);
  const { job_id: jobId } = await created.json();
  const deadline = Date.now() + DEADLINE;
  for (;;) {
    const job = await (await fetch(`${base}/api/v1/jobs/${jobId}`, { headers: auth })).json();
    if (job.status === 'completed') return job;
    assert.ok(!['failed', 'cancelled'].includes(job.status), `job ${jobId}: ${JSON.stringify(job.error)}`);
    assert.ok(Date.now() < deadline, `job ${jobId} still ${job.status}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

test('a person uploads two photos, watches them finish, turns the model and downloads it', async () => {
  const { page, errors } = await newPage();
  // By another name than the one signed URLs use: the page's policy must let them through.
  await page.goto(`${base.replace('127.0.0.1', 'localhost')}/`);
  await signIn(page);
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

  // Each card's GLB button downloads a valid GLB, from a link signed at the click.
  const cards = await page.$$('li.job.completed');
  assert.equal(cards.length, 2);
  for (const card of cards) {
    const glb = await card.waitForSelector('button[data-format="glb"]', { timeout: DEADLINE });
    const { download, bytes } = await downloadBy(page, () => glb.click());
    assert.match(download.suggestedFilename(), /\.glb$/);
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
  await page.waitForFunction(() => /The API at http:\/\/127\.0\.0\.1:9 is not answering/.test(document.getElementById('auth-status').textContent), null, { timeout: DEADLINE });
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

test('a completed job downloads as USDZ, made on its first request, and links it for AR Quick Look', async () => {
  const job = await completedJob('rocket.jpg', 'image/jpeg');
  const jobId = job.job_id;
  const formats = Object.fromEntries(job.result.formats.map((f) => [f.format, f.status]));
  assert.deepEqual(formats, { glb: 'ready', usdz: 'on_request', obj: 'on_request', stl: 'on_request' });

  const { page, errors } = await newPage();
  const asked = []; // The page's requests for this job's USDZ, and their answers.
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.pathname === `/api/v1/download/${jobId}` && url.searchParams.get('format') === 'usdz') {
      asked.push({ status: response.status(), redirect: url.searchParams.get('redirect') });
    }
  });
  await page.goto(`${base}/`);
  await signIn(page);
  const card = `li.recent.completed[data-job-id="${jobId}"]`;
  const usdz = `${card} button[data-format="usdz"]`;
  await page.waitForSelector(usdz, { timeout: DEADLINE });

  // Four formats, in plain words, the sizes of those made; every control 44 px tall at least.
  const labels = await page.$$eval(`${card} button.format`, (els) => els.map((b) => [b.dataset.format, b.textContent]));
  assert.deepEqual(labels.map(([format]) => format), ['glb', 'usdz', 'obj', 'stl']);
  assert.match(labels[0][1], /^GLB \(web, 3D viewers\) · [\d.]+ (B|kB|MB)$/);
  assert.equal(labels[1][1], 'USDZ (iPhone/iPad AR)', 'no size before the USDZ is made');
  assert.equal(labels[2][1], 'OBJ + texture (Blender, editors) .zip');
  assert.equal(labels[3][1], 'STL (3D printing)');
  for (const control of await page.$$(`${card} button`)) {
    const box = await control.boundingBox();
    assert.ok(box.height >= 44, `${await control.textContent()}: ${box.height} px tall`);
  }
  // The AR link is there from the start (hidden where there is no AR Quick Look, as in
  // Chromium), with its image first; nothing signed or converted before anyone asked.
  const ar = `${card} a[rel="ar"]`;
  const arBefore = await page.$eval(ar, (a) => ({
    hidden: a.hidden, first: a.firstChild?.nodeName, href: a.getAttribute('href'),
    supported: document.createElement('a').relList.supports('ar'),
  }));
  assert.equal(arBefore.first, 'IMG');
  assert.equal(arBefore.hidden, !arBefore.supported);
  if (!arBefore.supported) {
    assert.equal(arBefore.href, null);
    assert.deepEqual(asked, []);
  }

  // The click waits through the conversion, saying so on the button, then downloads the USDZ.
  const { download, bytes } = await downloadBy(page, async () => {
    await page.click(usdz);
    await page.waitForFunction((selector) => document.querySelector(selector).textContent.startsWith('Converting…'),
      usdz, { timeout: DEADLINE, polling: 50 });
  });
  assert.match(download.suggestedFilename(), /\.usdz$/);
  assert.equal(bytes.subarray(0, 4).toString('latin1'), 'PK\x03\x04', 'a USDZ is a zip');
  const firstName = bytes.subarray(30, 30 + bytes.readUInt16LE(26)).toString('latin1');
  assert.match(firstName, /\.usd[ac]?$/, 'whose first file is the USD layer');
  assert.equal(asked[0].status, 202, 'the first request converts');
  assert.equal(asked.at(-1).status, 200);
  assert.ok(asked.every((a) => a.redirect === 'false'), JSON.stringify(asked));
  console.log(`usdz: ${asked.length} requests (${asked.map((a) => a.status).join(', ')}), ${bytes.length} bytes`);
  await page.waitForFunction((selector) => /Downloading .+\.usdz/.test(document.querySelector(selector).textContent),
    `${card} .format-status`, { timeout: DEADLINE });
  await page.waitForFunction((selector) => !document.querySelector(selector).textContent.startsWith('Converting'),
    usdz, { timeout: DEADLINE });
  assert.match(await page.textContent(usdz), /^USDZ \(iPhone\/iPad AR\) · [\d.]+ (B|kB|MB)$/, 'the size once made');

  // The AR link now holds that fresh signed URL of the USDZ, its image still first.
  const arAfter = await page.$eval(ar, (a) => ({ href: a.href, first: a.firstChild?.nodeName, src: a.firstChild?.getAttribute('src') }));
  assert.match(arAfter.href, /model(\.|%2E)usdz/);
  assert.equal(arAfter.first, 'IMG');
  assert.ok(arAfter.src, 'the image shows something (the preview, or the inline icon)');
  await page.locator(card).screenshot({ path: path.join(shots, '6-formats.png') });
  assert.deepEqual(errors, [], 'no script errors');
  await page.close();
});

test('a person adds a webhook endpoint, sends it a test, sees the delivery and deletes it', async () => {
  // A receiver on loopback (the server runs with WEBHOOK_ALLOW_PRIVATE for it).
  const { createServer } = await import('node:http');
  const received = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      received.push({ id: req.headers['webhook-id'], signature: req.headers['webhook-signature'], body: JSON.parse(body) });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${receiver.address().port}/hooks`;
  const { page, errors } = await newPage();
  try {
    await page.goto(base);
    await signIn(page);
    await page.fill('#webhook-url', url);
    await page.uncheck('#webhook-form input[value="batch.completed"]');
    await page.click('#add-webhook');
    await page.waitForSelector('#webhook-secret:not([hidden])', { timeout: DEADLINE });
    assert.match(await page.textContent('#webhook-secret-value'), /^whsec_[A-Za-z0-9+/=]+$/);
    const item = `li.endpoint:has-text("${url}")`;
    await page.waitForSelector(item, { timeout: DEADLINE });
    assert.match(await page.textContent(`${item} .state`), /Receives: job completed, job failed, job cancelled\./);

    await page.click(`${item} button:has-text("Send test")`);
    const deadline = Date.now() + DEADLINE;
    while (!received.length) {
      assert.ok(Date.now() < deadline, 'the test event never arrived');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(received[0].body.type, 'ping');
    assert.match(received[0].signature, /^v1,/);
    await page.click(`${item} button:has-text("Deliveries")`);
    await page.waitForSelector(`${item} tr.delivery.delivered`, { timeout: DEADLINE });
    assert.match(await page.textContent(`${item} tr.delivery`), /test.*delivered.*1.*HTTP 204/);
    await page.locator('#webhooks').screenshot({ path: path.join(shots, '7-webhooks.png') });

    page.once('dialog', (dialog) => dialog.accept());
    await page.click(`${item} button:has-text("Delete")`);
    await page.waitForSelector(item, { state: 'detached', timeout: DEADLINE });
    assert.match(await page.textContent('#webhook-status'), /deleted/);
    assert.deepEqual(errors, [], 'no script errors');
  } finally {
    await page.close();
    receiver.close();
  }
});

/// What a page at this size shows that a person cannot use: horizontal scroll, controls under
/// 44 px to tap, or covered by something else where a finger lands.
async function layoutFaults(page) {
  return page.evaluate(() => {
    const faults = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth) faults.push(`the page is ${root.scrollWidth} px wide in ${root.clientWidth}`);
    const visible = (e) => {
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
    };
    // Links inside a sentence (class "inline") are exempt, as WCAG's target size allows.
    for (const e of document.querySelectorAll('button, select, input, a:not(.inline), canvas[tabindex]')) {
      if (!visible(e)) continue;
      const r = e.getBoundingClientRect();
      const name = `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''} "${(e.textContent || e.value || e.name || '').trim().slice(0, 30)}"`;
      // A checkbox is tapped through its label.
      const target = e.type === 'checkbox' ? e.closest('label') : e;
      if (target.getBoundingClientRect().height < 44) faults.push(`${name} is ${Math.round(target.getBoundingClientRect().height)} px high`);
      if (r.right > root.clientWidth + 1 || r.left < -1) faults.push(`${name} reaches past the screen`);
      const x = r.left + r.width / 2;
      const y = r.top + r.height / 2;
      if (y >= 0 && y <= innerHeight) {
        const hit = document.elementFromPoint(x, y);
        if (hit && hit !== e && !e.contains(hit) && !target.contains(hit)) faults.push(`${name} is covered by ${hit.tagName.toLowerCase()}${hit.id ? `#${hit.id}` : ''}`);
      }
    }
    return faults;
  });
}

/// Scrolls through the whole page, checking each screenful.
async function pageFaults(page) {
  const faults = new Set();
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  for (let y = 0; y < height; y += 400) {
    await page.evaluate((top) => window.scrollTo(0, top), y);
    for (const fault of await layoutFaults(page)) faults.add(fault);
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  return [...faults];
}

for (const [name, width, height, touch] of [['phone', 390, 844, true], ['small phone', 320, 640, true], ['desktop', 1280, 800, false]]) {
  test(`the page fits a ${name} (${width}x${height}): no sideways scroll, every control reachable and 44 px to tap, long names wrapped`, async () => {
    const page = await browser.newPage({ viewport: { width, height }, isMobile: touch, hasTouch: touch });
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    try {
      await page.goto(base);
      assert.deepEqual(await pageFaults(page), [], 'signed out');
      await page.screenshot({ path: path.join(shots, `${name.replace(' ', '-')}-1-signed-out.png`), fullPage: true });
      await signIn(page);
      await completedJob('rocket.jpg', 'image/jpeg');
      await page.click('#refresh-recent');
      await page.waitForSelector('li.recent.completed .formats', { timeout: DEADLINE });
      assert.deepEqual(await pageFaults(page), [], 'signed in, with a completed job');
      // A photo with a very long name, uploaded and shown: every line it is on wraps.
      const long = `${'a-very-long-photo-name-'.repeat(10)}end.jpg`;
      await page.setInputFiles('#files', { name: long, mimeType: 'image/jpeg', buffer: await readFile(path.join(photos, 'rocket.jpg')) });
      await page.waitForFunction((n) => document.getElementById('viewer-canvas').dataset.model === n, long, { timeout: DEADLINE });
      await page.waitForSelector('li.job.completed .formats', { timeout: DEADLINE });
      assert.deepEqual(await pageFaults(page), [], 'with a long file name on its cards and in the viewer');
      // The viewer takes the page's width on a phone, and its hint fits the device.
      const viewer = await page.$eval('#viewer', (v) => v.getBoundingClientRect().width);
      if (touch) assert.equal(viewer, width, `the viewer is ${viewer} px wide on a ${width} px phone`);
      assert.match(await page.textContent('#viewer-status'), touch ? /pinch to zoom/ : /arrow keys to turn, scroll or \+ and - to zoom/);
      await page.screenshot({ path: path.join(shots, `${name.replace(' ', '-')}-2-signed-in.png`), fullPage: true });
      assert.deepEqual(errors, [], 'no script errors');
    } finally {
      await page.close();
    }
  });
}

test('the key status says in plain words when a key is refused, when the server stops answering, and when it is back', async () => {
  const { page, errors } = await newPage();
  try {
    await page.goto(base);
    assert.match(await page.textContent('#key-help'), /local server prints one when it starts/);
    await page.fill('#api-key', 'not-a-key-at-all-0123456789');
    await page.click('#save-key');
    await page.waitForFunction(() => document.body.dataset.authenticated === 'false', null, { timeout: DEADLINE });
    const refused = await page.textContent('#auth-status');
    assert.match(refused, /not accepted/);
    assert.doesNotMatch(refused, /Authorization|X-API-Key|Bearer|HTTP 401/, 'no header names or codes for a person');
    await signIn(page);
    // The server goes away: the next call gets no answer.
    await page.route('**/api/v1/**', (route) => route.abort('connectionrefused'));
    await page.click('#refresh-recent');
    await page.waitForFunction(() => /not answering/.test(document.getElementById('auth-status').textContent), null, { timeout: DEADLINE });
    assert.match(await page.textContent('#auth-status'), /Your key is kept\./);
    assert.doesNotMatch(await page.textContent('#auth-status'), /Failed to fetch/);
    assert.match(await page.textContent('#recent-list'), /Could not list your jobs: The server is not answering/);
    // It is back: the page notices on its own (it asks every few seconds) and says so.
    await page.unroute('**/api/v1/**');
    await page.waitForFunction(() => document.getElementById('auth-status').textContent === 'Key accepted.', null, { timeout: DEADLINE });
    await page.waitForSelector('#recent-list li[data-job-id]', { timeout: DEADLINE });
    assert.deepEqual(errors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)), [], 'no script errors');
  } finally {
    await page.close();
  }
});

// --- the page for people: its states, axe-core, the keyboard, a viewer that stays put ---------

const SIZES = [['phone', 390, 844, true], ['desktop', 1280, 800, false]];
const AXE = await readFile(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
// What each state's axe-core run found, printed at the end for the closing note.
const axeReport = [];

async function pageAt([, width, height, touch]) {
  const page = await browser.newPage({ viewport: { width, height }, isMobile: touch, hasTouch: touch });
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  return { page, errors };
}

/// axe-core's violations of this state, by impact; fails on any serious or critical one.
async function axeCheck(page, size, state) {
  // Evaluated, not added as a script tag: the page's Content-Security-Policy stays as it is.
  if (!(await page.evaluate(() => 'axe' in window))) {
    await page.evaluate(AXE);
    // A canary: an image without a text alternative must be found, or axe is not checking.
    const canary = await page.evaluate(async () => {
      const img = Object.assign(document.createElement('img'), { id: 'axe-canary', src: 'data:,' });
      document.body.append(img);
      const found = await window.axe.run({ include: [['#axe-canary']] }, { runOnly: ['image-alt'] });
      img.remove();
      return found.violations.map((v) => v.id);
    });
    assert.deepEqual(canary, ['image-alt'], 'axe-core finds a known violation');
  }
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const counts = { critical: 0, serious: 0, moderate: 0, minor: 0 };
  for (const v of violations) counts[v.impact] += v.nodes.length;
  axeReport.push(`${size} ${state}: ${Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
  assert.deepEqual(bad, [], `axe-core, ${size}, ${state}`);
}

after(() => {
  if (axeReport.length) console.log(`axe-core violations per state:\n  ${axeReport.join('\n  ')}`);
});

/// Holds requests matching `match` until `release()` is called.
async function hold(page, match) {
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route(match, async (route) => {
    await held;
    await route.continue().catch(() => {});
  });
  return async () => {
    release();
    await page.unroute(match);
  };
}

// The local storage's signed URLs, by what they hold (keys are percent-encoded in the path).
const isModel = (url) => /^\/local-storage\/results\/.+\.glb$/.test(decodeURIComponent(url.pathname));
const isUpload = (url) => decodeURIComponent(url.pathname).startsWith('/local-storage/uploads/');
const viewerState = (page) => page.$eval('#viewer', (v) => v.dataset.state);
const waitViewer = (page, state, jobName) => page.waitForFunction(
  ([want, name]) => document.getElementById('viewer').dataset.state === want
    && (!name || document.getElementById('viewer-canvas').dataset.model === name),
  [state, jobName], { timeout: DEADLINE, polling: 50 },
);

for (const size of SIZES) {
  const [name] = size;
  test(`each state of the page at ${name} size (empty, signed in, result, progress, error) passes axe-core; a model shows after a drop and stays put`, async () => {
    const { page, errors } = await pageAt(size);
    try {
      await page.goto(base);
      await page.waitForSelector('#model-type option', { state: 'attached', timeout: DEADLINE });
      assert.equal(await viewerState(page), 'empty');
      assert.match(await page.textContent('#viewer-state'), /No model yet/);
      await axeCheck(page, name, 'empty');
      await page.screenshot({ path: path.join(shots, `${name}-state-1-empty.png`), fullPage: true });

      // Every section filled: a webhook endpoint (nobody listens on port 9) with its deliveries.
      const auth = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
      const made = await fetch(`${base}/api/v1/webhooks/endpoints`, {
        method: 'POST', headers: auth, body: JSON.stringify({ url: `http://127.0.0.1:9/${name}` }),
      });
      assert.equal(made.status, 201);
      const { endpoint_id: endpointId } = await made.json();
      assert.equal((await fetch(`${base}/api/v1/webhooks/endpoints/${endpointId}/test`, { method: 'POST', headers: auth })).status, 202);
      await signIn(page);
      await page.waitForSelector('#recent-list li', { timeout: DEADLINE });
      const endpoint = `li.endpoint[data-endpoint-id="${endpointId}"]`;
      await page.click(`${endpoint} button:text-is("Deliveries")`);
      await page.waitForSelector(`${endpoint} tr.delivery`, { timeout: DEADLINE });
      await axeCheck(page, name, 'signed in');

      // Result: a photo dropped becomes a model in the empty viewer.
      const dropped = Date.now();
      await page.setInputFiles('#files', path.join(photos, 'rocket.jpg'));
      await waitViewer(page, 'shown', 'rocket.jpg');
      console.log(`drop to a model in the viewer at ${name} (${size[1]}x${size[2]}): ${((Date.now() - dropped) / 1000).toFixed(2)} s`);
      const card = 'li.job.completed:has(.name:text-is("rocket.jpg"))';
      await page.waitForSelector(`${card} button[data-format="glb"]`, { timeout: DEADLINE });
      assert.match(await page.textContent(`${card} .meta`), /^Relief from one photo, built in · standard detail$/);
      assert.match(await page.textContent('#viewer-status'), /^The model of rocket\.jpg: drag/);
      await axeCheck(page, name, 'result');
      await page.screenshot({ path: path.join(shots, `${name}-state-2-result.png`), fullPage: true });

      // Progress: the upload held on its way, the card says so with a bar.
      await page.selectOption('#face-limit', '10000');
      const releaseUpload = await hold(page, isUpload);
      await page.setInputFiles('#files', path.join(photos, 'horse.png'));
      const horse = 'li.job:has(.name:text-is("horse.png"))';
      await page.waitForSelector(`${horse} progress`, { timeout: DEADLINE });
      assert.equal(await page.textContent(`${horse} .message`), 'Uploading…');
      assert.match(await page.textContent(`${horse} .meta`), /· light detail$/);
      await axeCheck(page, name, 'progress');
      await page.screenshot({ path: path.join(shots, `${name}-state-3-progress.png`), fullPage: true });
      await releaseUpload();

      // The new model is announced, not swapped in: the viewer keeps the rocket until asked.
      await page.waitForSelector('#viewer-news button:text-is("Show horse.png")', { timeout: DEADLINE });
      assert.equal(await page.$eval('#viewer-canvas', (c) => c.dataset.model), 'rocket.jpg', 'the viewer stayed put');
      assert.match(await page.textContent('#viewer-news'), /The model of horse\.png is ready/);

      // Error: a file that is no photo fails, said in words on its card; a model that does not
      // load says so in the viewer, with a way to try again.
      await page.setInputFiles('#files', { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('notes, not a photo\n'.repeat(40)) });
      const notes = 'li.job.failed:has(.name:text-is("notes.png"))';
      await page.waitForSelector(notes, { timeout: DEADLINE });
      const why = await page.textContent(`${notes} .message`);
      assert.match(why, /JPEG, PNG or WebP|photo that can be read/, why);
      assert.doesNotMatch(why, /[A-Z]{2,}_[A-Z]/, 'no error code for a person');
      await page.route((url) => isUpload(url), (route) => route.abort('connectionreset'));
      await page.setInputFiles('#files', path.join(photos, 'coffee.png'));
      const cut = 'li.job.failed:has(.name:text-is("coffee.png"))';
      await page.waitForSelector(`${cut} button:text-is("Try again")`, { timeout: DEADLINE });
      assert.match(await page.textContent(`${cut} .message`), /^Not uploaded\. The upload was cut off/);
      await page.unrouteAll({ behavior: 'ignoreErrors' });
      await page.route((url) => isModel(url), (route) => route.abort('connectionreset'));
      await page.click('#viewer-news button');
      await waitViewer(page, 'error');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'viewer-canvas', 'the focus follows to the viewer');
      assert.match(await page.textContent('#viewer-state'), /^The model file of horse\.png could not be loaded\.Try again$/);
      await axeCheck(page, name, 'error');
      await page.screenshot({ path: path.join(shots, `${name}-state-4-error.png`), fullPage: true });
      await page.unrouteAll({ behavior: 'ignoreErrors' });
      await page.click('#viewer-state button:text-is("Try again")');
      await waitViewer(page, 'shown', 'horse.png');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'viewer-canvas');
      // The cut-off upload, tried again, becomes a model; the focus goes to its new card.
      await page.click(`${cut} button:text-is("Try again")`);
      assert.equal(await page.evaluate(() => document.activeElement?.matches('li.job')), true, 'the focus is on the new card');
      await page.waitForSelector('li.job.completed:has(.name:text-is("coffee.png"))', { timeout: DEADLINE });
      await fetch(`${base}/api/v1/webhooks/endpoints/${endpointId}`, { method: 'DELETE', headers: auth });
      assert.deepEqual(errors, [], 'no script errors');
    } finally {
      await page.close();
    }
  });

  test(`the viewer at ${name} size shows the preview while a model loads and the last model after a reload; each download asks for a fresh link and says any failure on its card`, async () => {
    const [a, b] = [await completedJob('rocket.jpg', 'image/jpeg'), await completedJob('horse.png', 'image/png')];
    const { page, errors } = await pageAt(size);
    const asked = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === `/api/v1/download/${a.job_id}`) asked.push(url.searchParams.get('format'));
    });
    try {
      await page.goto(base);
      await signIn(page);
      const cardOf = (job) => `li.recent[data-job-id="${job.job_id}"]`;
      await page.waitForSelector(`${cardOf(a)} button.view`, { timeout: DEADLINE });
      await page.waitForSelector(`${cardOf(b)} button.view`, { timeout: DEADLINE });
      assert.equal(await page.textContent(`${cardOf(a)} .name`), 'rocket.jpg', 'the card names the photo');
      assert.equal(await page.textContent(`${cardOf(b)} .name`), 'horse.png');
      await page.click(`${cardOf(a)} button.view`);
      await waitViewer(page, 'shown', 'rocket.jpg');

      // The preview stands in while the model loads.
      const releaseModel = await hold(page, isModel);
      await page.click(`${cardOf(b)} button.view`);
      await waitViewer(page, 'loading');
      await page.waitForFunction(() => {
        const img = document.getElementById('viewer-preview');
        return !img.hidden && img.complete && img.naturalWidth > 0;
      }, null, { timeout: DEADLINE });
      assert.match(await page.textContent('#viewer-state'), /Loading the model of horse\.png/);
      await page.screenshot({ path: path.join(shots, `${name}-viewer-loading.png`) });
      await releaseModel();
      await waitViewer(page, 'shown', 'horse.png');
      assert.equal(await page.isHidden('#viewer-preview'), true, 'the preview gives way to the model');

      // A reload brings the last model back.
      await page.reload();
      await waitViewer(page, 'shown', 'horse.png');
      assert.equal(await page.$eval('#viewer-canvas', (c) => c.dataset.jobId), b.job_id);

      // Every click asks for a fresh link; a failure is said on that job's card.
      const glb = `${cardOf(a)} button[data-format="glb"]`;
      await page.waitForSelector(glb, { timeout: DEADLINE });
      // A card in use stays as it is when the list is refreshed for a job that ended.
      const c = await completedJob('coffee.png', 'image/png');
      await page.focus(glb);
      await page.$eval(cardOf(a), (li) => { li.dataset.marker = 'kept'; });
      // Clicked by script: the person's focus stays where it is.
      await page.evaluate(() => document.getElementById('refresh-recent').click());
      await page.waitForSelector(cardOf(c), { timeout: DEADLINE });
      assert.equal(await page.$eval(cardOf(a), (li) => li.dataset.marker), 'kept', 'the same card, not a new one');
      assert.equal(await page.evaluate((s) => document.activeElement === document.querySelector(s), glb), true, 'the focus stayed');
      asked.length = 0;
      for (let i = 0; i < 2; i += 1) {
        const { bytes } = await downloadBy(page, () => page.click(glb));
        assert.equal(bytes.subarray(0, 4).toString('latin1'), 'glTF');
      }
      assert.deepEqual(asked, ['glb', 'glb'], 'one fresh link per click');
      const status = `${cardOf(a)} .format-status`;
      await page.route(`**/api/v1/download/${a.job_id}**`, (route) => route.fulfill({
        status: 503, contentType: 'application/json',
        body: JSON.stringify({ error: true, error_code: 'SERVICE_UNAVAILABLE', message: 'object storage did not answer', details: { component: 'storage' } }),
      }));
      await page.click(glb);
      await page.waitForFunction((s) => /could not reach the storage/.test(document.querySelector(s).textContent), status, { timeout: DEADLINE });
      await page.unrouteAll({ behavior: 'ignoreErrors' });
      await page.route(`**/api/v1/download/${a.job_id}**`, (route) => route.abort('connectionrefused'));
      await page.click(glb);
      await page.waitForFunction((s) => /not answering/.test(document.querySelector(s).textContent), status, { timeout: DEADLINE });
      assert.equal(await page.$eval(status, (p) => p.classList.contains('error')), true);
      await page.locator(cardOf(a)).screenshot({ path: path.join(shots, `${name}-card-failure.png`) });
      assert.deepEqual(errors, [], 'no script errors');
    } finally {
      await page.close();
    }
  });

  test(`at ${name} size a person with only a keyboard pastes the key, uploads a photo and downloads its model, always seeing where the focus is`, async () => {
    const { page, errors } = await pageAt(size);
    const unseen = new Set();
    /// Presses Tab until `selector` has the focus, noting any stop without a visible outline.
    const tabTo = async (selector) => {
      for (let i = 0; i < 400; i += 1) {
        await page.keyboard.press('Tab');
        const at = await page.evaluate((want) => {
          const e = document.activeElement;
          if (!e || e === document.body) return { here: false };
          const style = getComputedStyle(e);
          return {
            here: e.matches(want),
            shown: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
            name: `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''} "${(e.textContent || e.getAttribute('aria-label') || '').trim().slice(0, 30)}"`,
          };
        }, selector);
        if (at.name && !at.shown) unseen.add(at.name);
        if (at.here) return;
      }
      assert.fail(`${selector} cannot be reached with Tab`);
    };
    try {
      await page.goto(base);
      await page.waitForSelector('#model-type option', { state: 'attached', timeout: DEADLINE });
      await tabTo('#api-key');
      await page.keyboard.insertText(key); // As a paste does.
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.body.dataset.authenticated === 'true', null, { timeout: DEADLINE });
      await tabTo('#files');
      // Space opens the chooser; Chromium now and then lets a first key press pass without one,
      // so the key is pressed again (Space, then Enter, each a keyboard activation) until it opens.
      let chooser = null;
      for (const keyName of ['Space', 'Enter', 'Space', 'Enter']) {
        assert.equal(await page.evaluate(() => document.activeElement?.id), 'files', 'the focus is on the file input');
        [chooser] = await Promise.all([
          page.waitForEvent('filechooser', { timeout: 10_000 }).catch(() => null),
          page.keyboard.press(keyName),
        ]);
        if (chooser) break;
      }
      assert.ok(chooser, 'the keyboard opened the file chooser');
      await chooser.setFiles(path.join(photos, 'coffee.webp'));
      const card = 'li.job.completed:has(.name:text-is("coffee.webp"))';
      await page.waitForSelector(`${card} button[data-format="glb"]`, { timeout: DEADLINE });
      await waitViewer(page, 'shown', 'coffee.webp');
      const jobId = await page.$eval(card, (li) => li.dataset.jobId);
      await tabTo(`li.job[data-job-id="${jobId}"] button[data-format="glb"]`);
      await page.screenshot({ path: path.join(shots, `${name}-keyboard-focus.png`) });
      const { download, bytes } = await downloadBy(page, () => page.keyboard.press('Enter'));
      assert.match(download.suggestedFilename(), /\.glb$/);
      assert.equal(bytes.subarray(0, 4).toString('latin1'), 'glTF');
      // The viewer turns with the arrow keys.
      await tabTo('#viewer-canvas');
      const still = await viewerPixels(page);
      for (const arrow of ['ArrowLeft', 'ArrowLeft', 'ArrowUp']) await page.keyboard.press(arrow);
      await page.waitForFunction((before) => document.getElementById('viewer-canvas').toDataURL() !== before, still, { timeout: DEADLINE });
      assert.deepEqual([...unseen], [], 'every stop of the focus has a visible outline');
      assert.deepEqual(errors, [], 'no script errors');
    } finally {
      await page.close();
    }
  });
}

test('another key is another person: nothing of the first stays on the page', async () => {
  const { page, errors } = await newPage();
  try {
    await page.goto(base);
    await signIn(page);
    await page.setInputFiles('#files', path.join(photos, 'rocket.jpg'));
    await waitViewer(page, 'shown', 'rocket.jpg');
    await page.fill('#webhook-url', 'http://127.0.0.1:9/alice-private');
    await page.click('#add-webhook');
    await page.waitForSelector('#webhook-secret:not([hidden])', { timeout: DEADLINE });
    await page.waitForSelector('#recent-list li[data-job-id]', { timeout: DEADLINE });
    // Caught in flight by the switch: an upload (its bytes held) and a listing of jobs and of
    // webhooks (their answers held); none may land in the second person's page or account.
    const releaseUpload = await hold(page, isUpload);
    await page.setInputFiles('#files', path.join(photos, 'horse.png'));
    await page.waitForSelector('li.job:has(.name:text-is("horse.png"))[data-job-id]', { timeout: DEADLINE });
    const aliceListing = (url) => url.pathname === '/api/v1/jobs' || url.pathname === '/api/v1/webhooks/endpoints';
    const releaseListing = await hold(page, aliceListing);
    await page.click('#refresh-recent');

    await page.fill('#api-key', otherKey);
    await page.click('#save-key');
    await page.waitForTimeout(200); // The switch happened with both still held.
    await releaseUpload();
    await releaseListing();
    await page.waitForFunction(() => document.body.dataset.authenticated === 'true', null, { timeout: DEADLINE });
    await page.waitForFunction(() => /No jobs yet/.test(document.getElementById('recent-list').textContent), null, { timeout: DEADLINE });
    const left = await page.evaluate(() => ({
      cards: document.querySelectorAll('#job-list li').length,
      viewer: document.getElementById('viewer').dataset.state,
      model: document.getElementById('viewer-canvas').dataset.model ?? null,
      secretShown: !document.getElementById('webhook-secret').hidden,
      secret: document.getElementById('webhook-secret-value').textContent,
      endpoints: document.querySelectorAll('#webhook-list li').length,
      status: document.getElementById('webhook-status').textContent,
    }));
    assert.deepEqual(left, { cards: 0, viewer: 'empty', model: null, secretShown: false, secret: '', endpoints: 0, status: '' });
    const bobs = await (await fetch(`${base}/api/v1/jobs`, { headers: { Authorization: `Bearer ${otherKey}` } })).json();
    assert.deepEqual(bobs.jobs, [], 'nothing of the first person went into the second one\'s account');
    await page.waitForTimeout(1500); // Anything late would have landed by now.
    assert.equal(await page.$$eval('#recent-list li[data-job-id], #job-list li, #webhook-list li', (l) => l.length), 0);
    // Bob's reload does not bring Alice's model back.
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.authenticated === 'true', null, { timeout: DEADLINE });
    await page.waitForSelector('#recent-list li', { timeout: DEADLINE });
    assert.equal(await viewerState(page), 'empty');
    // No key at all: nothing listed.
    await page.fill('#api-key', '');
    await page.click('#save-key');
    await page.waitForFunction(() => document.body.dataset.authenticated === 'false' || /Paste an API key/.test(document.getElementById('auth-status').textContent), null, { timeout: DEADLINE });
    assert.equal(await page.$$eval('#recent-list li', (l) => l.length), 0);
    assert.deepEqual(errors, [], 'no script errors');
  } finally {
    await page.close();
  }
});

test('a page opened while the server is away fills itself in once it answers', async () => {
  const { page, errors } = await newPage();
  try {
    await page.goto(base);
    await signIn(page);
    await page.route('**/api/v1/**', (route) => route.abort('connectionrefused'));
    await page.reload();
    await page.waitForFunction(() => /not answering/.test(document.getElementById('auth-status').textContent), null, { timeout: DEADLINE });
    assert.equal(await page.$$eval('#model-type option', (o) => o.length), 0);
    await page.unroute('**/api/v1/**');
    // Without a click: the models, the key's status and the jobs arrive.
    await page.waitForFunction(() => document.getElementById('auth-status').textContent === 'Key accepted.', null, { timeout: DEADLINE });
    await page.waitForSelector('#model-type option', { state: 'attached', timeout: DEADLINE });
    await page.waitForSelector('#recent-list li[data-job-id]', { timeout: DEADLINE });
    assert.deepEqual(errors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)), [], 'no script errors');
  } finally {
    await page.close();
  }
});

test('a browser from before AbortSignal.any and Object.hasOwn (Safari 15, Chrome 115) still signs in, uploads and shows the model', async () => {
  const { page, errors } = await newPage();
  try {
    await page.addInitScript(() => {
      delete AbortSignal.any;
      delete Object.hasOwn;
    });
    await page.goto(base);
    await signIn(page);
    await page.setInputFiles('#files', path.join(photos, 'coffee.webp'));
    await waitViewer(page, 'shown', 'coffee.webp');
    assert.deepEqual(errors, [], 'no script errors');
  } finally {
    await page.close();
  }
});

/// The CORS origins `template.yaml` gives the status function's streaming URL.
async function functionUrlOrigins() {
  const template = await readFile(new URL('../../template.yaml', import.meta.url), 'utf8');
  const status = template.slice(template.indexOf('\n  StatusFunction:\n'));
  const line = status.split('\n').find((l) => l.trim().startsWith('AllowOrigins:'));
  return JSON.parse(line.split('AllowOrigins:')[1].trim());
}

test('on AWS, an EventSource on the API\'s address follows its redirect to the streaming URL and gets the whole stream', async () => {
  const { createServer, request } = await import('node:http');
  const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`)));
  // The old site, on an origin of its own.
  const site = createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<!doctype html><title>site</title>'); });
  const siteOrigin = await listen(site);
  // The streaming function URL: the stream itself comes from the local server, and CORS is
  // answered as Lambda answers a function URL's configuration (`*`, or the listed origins).
  const seenOrigins = [];
  let allowed = await functionUrlOrigins();
  const functionUrl = createServer((req, res) => {
    seenOrigins.push(req.headers.origin);
    const cors = allowed.includes('*') ? '*' : (allowed.includes(req.headers.origin) ? req.headers.origin : null);
    const upstream = request(`${base}${req.url}`, { headers: { accept: 'text/event-stream' } }, (answer) => {
      res.writeHead(answer.statusCode, { ...answer.headers, ...(cors ? { 'access-control-allow-origin': cors } : {}) });
      answer.pipe(res);
    });
    upstream.end();
  });
  const streams = await listen(functionUrl);
  // The HTTP API: CORS for the site's origin, and a stream answered by the status function as
  // it answers behind API Gateway (functions/status route tests, scripts/lambda_invoke.sh).
  const api = createServer((req, res) => {
    res.writeHead(307, {
      location: `${streams}${req.url}`,
      'cache-control': 'no-store',
      ...(req.headers.origin === siteOrigin ? { 'access-control-allow-origin': siteOrigin } : {}),
    });
    res.end();
  });
  const apiBase = await listen(api);
  const { page, errors } = await newPage();
  try {
    const job = await completedJob('coffee.webp', 'image/webp');
    await page.goto(`${siteOrigin}/`);
    const follow = (url) => page.evaluate((u) => new Promise((resolve) => {
      const source = new EventSource(u);
      const timer = setTimeout(() => { source.close(); resolve('no terminal event'); }, 30000);
      source.addEventListener('task_completed', (e) => { clearTimeout(timer); source.close(); resolve(JSON.parse(e.data).job_id); });
      source.onerror = () => { clearTimeout(timer); source.close(); resolve('error'); };
    }), url);
    // The old site's URL (the API's base and the id) and the signed one, both on the API.
    const signed = job.status_url.replace(/^https?:\/\/[^/]+/, apiBase).replace('/status?', '/stream?');
    for (const url of [`${apiBase}/api/v1/status/tasks/${job.job_id}/stream`, signed]) {
      assert.equal(await follow(url), job.job_id, url);
    }
    // Redirected across origins, the request arrives with `Origin: null`: a function URL that
    // listed the site's origins instead would refuse it.
    assert.deepEqual([...new Set(seenOrigins)], ['null']);
    allowed = [siteOrigin];
    assert.equal(await follow(signed), 'error');
    errors.length = 0; // the refused stream's console error is the point
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
    for (const server of [site, api, functionUrl]) server.close();
  }
});
