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
    for (const e of document.querySelectorAll('button, select, input, a.ar')) {
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

for (const [name, width, height, touch] of [['phone', 390, 844, true], ['desktop', 1280, 800, false]]) {
  test(`the page fits a ${name} (${width}x${height}): no sideways scroll, every control reachable and 44 px to tap`, async () => {
    const page = await browser.newPage({ viewport: { width, height }, isMobile: touch, hasTouch: touch });
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    try {
      await page.goto(base);
      assert.deepEqual(await pageFaults(page), [], 'signed out');
      await page.screenshot({ path: path.join(shots, `${name}-1-signed-out.png`), fullPage: true });
      await signIn(page);
      await completedJob('rocket.jpg', 'image/jpeg');
      await page.click('#refresh-recent');
      await page.waitForSelector('li.recent.completed .formats', { timeout: DEADLINE });
      assert.deepEqual(await pageFaults(page), [], 'signed in, with a completed job');
      // The viewer takes the page's width on a phone, and its hint fits the device.
      const viewer = await page.$eval('#viewer', (v) => v.getBoundingClientRect().width);
      if (touch) assert.ok(viewer >= width * 0.95, `the viewer is ${viewer} px wide on a ${width} px phone`);
      assert.match(await page.textContent('#viewer-status'), touch ? /pinch to zoom/ : /scroll to zoom/);
      await page.screenshot({ path: path.join(shots, `${name}-2-signed-in.png`), fullPage: true });
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
    // It is back: the next answer says so.
    await page.unroute('**/api/v1/**');
    await page.click('#refresh-recent');
    await page.waitForFunction(() => document.getElementById('auth-status').textContent === 'Key accepted.', null, { timeout: DEADLINE });
    assert.deepEqual(errors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)), [], 'no script errors');
  } finally {
    await page.close();
  }
});
