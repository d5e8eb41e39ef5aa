// @ts-check
// The reference web client: only the public API (presigned upload, the task's signed stream,
// signed downloads), so it runs against the local server or, hosted anywhere, against an AWS
// deployment (`?api=https://<api-host>`, confirmed once by the person; the origin must be in
// CORS_ORIGINS). A link alone never repoints the page, and a page on another API offers the
// way back to its own server. Every API call goes through openapi-fetch, typed by `api.d.ts`
// (generated from the OpenAPI document; `scripts/typecheck_web.sh` checks both with tsc).
import createClient from './vendor/openapi-fetch/index.mjs';
import * as THREE from './vendor/three/three.module.min.js';
import { GLTFLoader } from './vendor/three/examples/jsm/loaders/GLTFLoader.js';
import { OrbitControls } from './vendor/three/examples/jsm/controls/OrbitControls.js';

/** @typedef {import('./api').components['schemas']} Schemas */

const API_STORE = 'image2model.api';
// An API base as the browser will read it: an http(s) origin and nothing else (no user info,
// no path, no backslash a person would read differently from the browser), else null.
/** @param {string | null} text */
function apiOrigin(text) {
  if (typeof text !== 'string' || !/^https?:\/\/[^/?#\\@]+\/?$/.test(text)) return null;
  try {
    const url = new URL(text);
    return url.username || url.password ? null : url.origin;
  } catch {
    return null;
  }
}
const params = new URLSearchParams(location.search);
const asked = apiOrigin(params.get('api'));
if (asked === location.origin) localStorage.removeItem(API_STORE); // A link home is always safe.
const apiBase = apiOrigin(localStorage.getItem(API_STORE)) || location.origin;
// A link naming another API waits for the person's yes before the page uses or keeps it.
let proposed = asked && asked !== apiBase ? asked : null;
// A key is kept for the API it was given for: a link naming another API finds no key to send.
const keyName = `image2model.key@${apiBase}`;
let apiKey = localStorage.getItem(keyName) || '';

// The page's elements (index.html has them all), untyped: the DOM is not the API's contract.
/** @type {(id: string) => any} */
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  /**
   * @param {number} status
   * @param {any} body the error envelope, or whatever else the server answered
   */
  constructor(status, body) {
    super((body && (body.detail || body.message)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error_code;
  }
}

/** @type {import('./vendor/openapi-fetch/index.mjs').Client<import('./api').paths>} */
const client = createClient({ baseUrl: apiBase });
client.use({
  onRequest({ request }) {
    if (apiKey) request.headers.set('Authorization', `Bearer ${apiKey}`);
  },
});

/**
 * The data of a successful answer; any other answer throws an ApiError.
 * @template T
 * @param {Promise<{ data?: T, error?: unknown, response: Response }>} call
 * @returns {Promise<T>}
 */
async function ok(call) {
  const { data, error, response } = await call;
  if (!response.ok || data === undefined) throw new ApiError(response.status, error);
  return data;
}

/** @param {string} jobId a completed job's */
function downloadLink(jobId) {
  return ok(client.GET('/api/v1/download/{job_id}', {
    params: { path: { job_id: jobId }, query: { redirect: false } },
  }));
}

// --- which API ------------------------------------------------------------------------------

function withoutApiParam() {
  const url = new URL(location.href);
  url.searchParams.delete('api');
  return `${url.pathname}${url.search}${url.hash}`;
}

function showApiNotice() {
  const notice = $('api-notice');
  const text = document.createElement('p');
  const buttons = document.createElement('div');
  buttons.className = 'actions';
  /** @type {(label: string, id: string, onClick: () => void) => void} */
  const button = (label, id, onClick) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: label, id });
    b.addEventListener('click', onClick);
    buttons.append(b);
  };
  if (proposed) {
    const server = proposed;
    text.textContent = `This link asks the page to send your requests, and the key you paste, to another server: ${server}. Use it only if you trust it.`;
    button('Use that server', 'api-accept', () => {
      localStorage.setItem(API_STORE, server);
      location.replace(withoutApiParam());
    });
    button('Stay on this server', 'api-decline', () => {
      history.replaceState(null, '', withoutApiParam());
      proposed = null;
      notice.hidden = true;
      showApiNotice(); // A page on another API still offers the way back.
    });
  } else if (apiBase !== location.origin) {
    text.textContent = `This page sends its requests to another server: ${apiBase}.`;
    button('Back to this server', 'api-home', () => {
      localStorage.removeItem(API_STORE);
      location.replace(withoutApiParam());
    });
  } else {
    return;
  }
  notice.replaceChildren(text, buttons);
  notice.hidden = false;
}

// --- the key -------------------------------------------------------------------------------

/** @param {string} text */
function showAuth(text, error = false) {
  $('auth-status').textContent = text;
  $('auth-status').classList.toggle('error', error);
}

async function checkKey() {
  if (!apiKey) {
    showAuth('Paste an API key to start.');
    return false;
  }
  try {
    await ok(client.GET('/api/v1/jobs', { params: { query: { limit: 1 } } }));
    showAuth('Key accepted.');
    document.body.dataset.authenticated = 'true';
    return true;
  } catch (err) {
    showAuth(`Key refused: ${err.message}`, true);
    document.body.dataset.authenticated = 'false';
    return false;
  }
}

$('key-form').addEventListener('submit', async (/** @type {SubmitEvent} */ event) => {
  event.preventDefault();
  apiKey = $('api-key').value.trim();
  localStorage.setItem(keyName, apiKey);
  if (await checkKey()) refreshRecent();
});

// --- models --------------------------------------------------------------------------------

async function loadModels() {
  const models = await ok(client.GET('/api/v1/models/available'));
  const select = $('model-type');
  select.replaceChildren();
  for (const model of models.filter((m) => m.available)) {
    const option = new Option(model.name, model.name, model.default, model.default);
    option.title = model.description;
    select.append(option);
  }
}

// --- uploads and progress ------------------------------------------------------------------

/** @param {string} name */
function jobItem(name) {
  const li = document.createElement('li');
  li.className = 'job queued';
  const title = document.createElement('span');
  title.className = 'name';
  title.textContent = name;
  const actions = document.createElement('span');
  actions.className = 'actions';
  const bar = document.createElement('progress');
  bar.max = 100;
  bar.value = 0;
  const message = document.createElement('span');
  message.className = 'message';
  message.textContent = 'Uploading…';
  li.append(title, actions, bar, message);
  $('job-list').prepend(li);
  return li;
}

/**
 * @param {HTMLLIElement} li
 * @param {string} status
 * @param {number} progress
 * @param {string} text
 */
function setJob(li, status, progress, text) {
  li.className = `job ${status}`;
  /** @type {HTMLProgressElement} */ (li.querySelector('progress')).value = progress;
  /** @type {HTMLElement} */ (li.querySelector('.message')).textContent = text;
}

/** @param {File} file */
async function upload(file) {
  const li = jobItem(file.name);
  try {
    /** @type {Schemas['GenerateSpec']} */
    const generate = { model_type: $('model-type').value || undefined };
    const faces = $('face-limit').value;
    if (faces) generate.options = { face_limit: Number(faces) };
    const presigned = await ok(client.POST('/api/v1/uploads/presign', {
      body: {
        // The server reads the bytes' type and refuses any but the image types it names.
        files: [{ filename: file.name, content_type: /** @type {Schemas['ImageType']} */ (file.type), size: file.size }],
        generate,
      },
    }));
    const { job_id: jobId, upload: signed, events_url: eventsUrl } = presigned.files[0];
    // Asked for a job (`generate`, which brings its links) and the default upload method, a PUT.
    if (!jobId || !eventsUrl || !('headers' in signed)) throw new Error('the server signed no PUT for a job');
    li.dataset.jobId = jobId;
    const put = await fetch(signed.url, { method: 'PUT', headers: signed.headers, body: file });
    if (!put.ok) throw new Error(`the upload was refused (HTTP ${put.status})`);
    setJob(li, 'queued', 0, 'Uploaded; waiting for the generator…');
    follow(li, jobId, eventsUrl);
  } catch (err) {
    setJob(li, 'failed', 0, `Failed: ${err.message}`);
  }
}

// EventSource sends no headers: the signed events_url opens this job's stream alone. Its
// events' data are typed by the document too (`StreamEvent`).
/**
 * @param {HTMLLIElement} li
 * @param {string} jobId
 * @param {string} eventsUrl
 */
function follow(li, jobId, eventsUrl) {
  const started = performance.now();
  const source = new EventSource(eventsUrl);
  /** @param {MessageEvent} event */
  const update = (event) => {
    /** @type {Schemas['TaskEventData']} */
    const data = JSON.parse(event.data);
    setJob(li, data.status, data.progress, data.message || data.status);
  };
  source.addEventListener('task_queued', update);
  source.addEventListener('task_progress', update);
  source.addEventListener('task_completed', (event) => {
    source.close();
    update(event);
    li.dataset.seconds = ((performance.now() - started) / 1000).toFixed(2);
    showResult(li, jobId);
  });
  source.addEventListener('task_failed', (event) => {
    source.close();
    /** @type {Schemas['FailedEventData']} */
    const data = JSON.parse(event.data);
    const reason = ('error' in data && data.error) || data.error_code; // The public view has no `error`.
    setJob(li, 'failed', data.progress || 0, `Failed: ${reason}`);
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && !li.classList.contains('completed')) {
      setJob(li, 'failed', 0, 'Connection lost');
    }
  };
}

/**
 * @param {HTMLLIElement} li
 * @param {string} jobId
 */
async function showResult(li, jobId) {
  const link = await downloadLink(jobId);
  const actions = /** @type {HTMLElement} */ (li.querySelector('.actions'));
  actions.replaceChildren();
  const download = document.createElement('a');
  download.className = 'download';
  download.href = link.url;
  download.download = link.filename;
  download.textContent = `Download ${link.filename}`;
  const view = document.createElement('button');
  view.type = 'button';
  view.textContent = 'View';
  view.addEventListener('click', () => showModel(link.url, link.filename));
  actions.append(download, view);
  await showModel(link.url, link.filename);
  refreshRecent();
}

/** @param {File[]} files */
function dropped(files) {
  for (const file of files) upload(file);
}

const picker = $('files');
picker.addEventListener('change', () => {
  dropped([...picker.files]);
  picker.value = '';
});
const zone = $('drop-zone');
zone.addEventListener('dragover', (/** @type {DragEvent} */ event) => { event.preventDefault(); zone.classList.add('over'); });
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', (/** @type {DragEvent} */ event) => {
  event.preventDefault();
  zone.classList.remove('over');
  dropped([...(event.dataTransfer?.files ?? [])]);
});

// --- the viewer ----------------------------------------------------------------------------

const canvas = $('viewer-canvas');
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
const scene = new THREE.Scene();
scene.background = new THREE.Color(0xdfe3ea);
scene.add(new THREE.HemisphereLight(0xffffff, 0x667080, 2.2));
const sun = new THREE.DirectionalLight(0xffffff, 2.0);
sun.position.set(2, 3, 4);
scene.add(sun);
const camera = new THREE.PerspectiveCamera(40, 4 / 3, 0.01, 100);
camera.position.set(1.2, 0.8, 1.8);
const controls = new OrbitControls(camera, canvas);
controls.enableDamping = true;
const loader = new GLTFLoader();
/** @type {any} the model in view */
let shown = null;

function resize() {
  const { clientWidth: w, clientHeight: h } = canvas;
  if (w && h && (canvas.width !== w || canvas.height !== h)) {
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  }
}

renderer.setAnimationLoop(() => {
  resize();
  controls.update();
  renderer.render(scene, camera);
});

/**
 * @param {string} url
 * @param {string} name
 * @returns {Promise<void>}
 */
function showModel(url, name) {
  const status = $('viewer-status');
  status.textContent = `Loading ${name}…`;
  status.classList.remove('error');
  return new Promise((resolve) => {
    loader.load(url, (gltf) => {
      if (shown) scene.remove(shown);
      shown = gltf.scene;
      // Centre the model and fit it in view, seen from three-quarters above.
      const box = new THREE.Box3().setFromObject(shown);
      const size = box.getSize(new THREE.Vector3()).length() || 1;
      shown.position.sub(box.getCenter(new THREE.Vector3()));
      scene.add(shown);
      camera.near = size / 100;
      camera.far = size * 100;
      camera.position.set(size * 0.6, size * 0.45, size * 0.9);
      camera.updateProjectionMatrix();
      controls.target.set(0, 0, 0);
      controls.update();
      renderer.render(scene, camera);
      canvas.dataset.model = name;
      status.textContent = `${name}: drag to turn, scroll to zoom.`;
      resolve();
    }, undefined, (err) => {
      status.textContent = `Could not show ${name}: ${err.message || err}`;
      status.classList.add('error');
      resolve();
    });
  });
}

// --- recent jobs ---------------------------------------------------------------------------

async function refreshRecent() {
  if (!apiKey) return;
  const list = $('recent-list');
  try {
    const page = await ok(client.GET('/api/v1/jobs', { params: { query: { limit: 10 } } }));
    list.replaceChildren(...page.jobs.map((job) => {
      const li = document.createElement('li');
      li.className = `recent ${job.status}`;
      const label = document.createElement('span');
      const when = new Date(job.created_at).toLocaleString();
      const name = job.result ? job.result.filename : job.model_type;
      label.textContent = `${name} · ${job.status} · ${when}`;
      const actions = document.createElement('span');
      actions.className = 'actions';
      if (job.status === 'completed') {
        const preview = document.createElement('img');
        preview.className = 'preview';
        preview.alt = `Preview of ${name}`;
        downloadLink(job.job_id).then((link) => {
          if (link.preview_url) preview.src = link.preview_url;
        }).catch(() => preview.remove());
        actions.append(preview);
        const view = document.createElement('button');
        view.type = 'button';
        view.textContent = 'View';
        view.addEventListener('click', async () => {
          const link = await downloadLink(job.job_id);
          showModel(link.url, link.filename);
        });
        actions.append(view);
      }
      li.append(label, actions);
      return li;
    }));
  } catch (err) {
    list.replaceChildren(Object.assign(document.createElement('li'), { textContent: err.message }));
  }
}
$('refresh-recent').addEventListener('click', refreshRecent);

// --- start ---------------------------------------------------------------------------------

showApiNotice();
$('api-key').value = apiKey;
loadModels().catch((err) => showAuth(`Could not list models: ${err.message}`, true));
checkKey().then((accepted) => { if (accepted) refreshRecent(); });
Object.assign(window, { image2model: { showModel, apiBase } });
