// The reference web client: only the public API (presigned upload, the task's signed stream,
// signed downloads), so it runs against the local server or, hosted anywhere, against an AWS
// deployment (`?api=https://<api-host>`, confirmed once by the person; the origin must be in
// CORS_ORIGINS). A link alone never repoints the page, and a page on another API offers the
// way back to its own server.
import * as THREE from './vendor/three/three.module.min.js';
import { GLTFLoader } from './vendor/three/examples/jsm/loaders/GLTFLoader.js';
import { OrbitControls } from './vendor/three/examples/jsm/controls/OrbitControls.js';

const API_STORE = 'image2model.api';
// An API base as the browser will read it: an http(s) origin and nothing else (no user info,
// no path, no backslash a person would read differently from the browser), else null.
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

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.message)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error_code;
  }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  const response = await fetch(`${apiBase}/api/v1${path}`, { ...options, headers });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
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
  const button = (label, id, onClick) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: label, id });
    b.addEventListener('click', onClick);
    buttons.append(b);
  };
  if (proposed) {
    text.textContent = `This link asks the page to send your requests, and the key you paste, to another server: ${proposed}. Use it only if you trust it.`;
    button('Use that server', 'api-accept', () => {
      localStorage.setItem(API_STORE, proposed);
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
    await api('/jobs?limit=1');
    showAuth('Key accepted.');
    document.body.dataset.authenticated = 'true';
    return true;
  } catch (err) {
    showAuth(`Key refused: ${err.message}`, true);
    document.body.dataset.authenticated = 'false';
    return false;
  }
}

$('key-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  apiKey = $('api-key').value.trim();
  localStorage.setItem(keyName, apiKey);
  if (await checkKey()) refreshRecent();
});

// --- models --------------------------------------------------------------------------------

async function loadModels() {
  const models = await api('/models/available');
  const select = $('model-type');
  select.replaceChildren();
  for (const model of models.filter((m) => m.available)) {
    const option = new Option(model.name, model.name, model.default, model.default);
    option.title = model.description;
    select.append(option);
  }
}

// --- uploads and progress ------------------------------------------------------------------

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

function setJob(li, status, progress, text) {
  li.className = `job ${status}`;
  li.querySelector('progress').value = progress;
  li.querySelector('.message').textContent = text;
}

async function upload(file) {
  const li = jobItem(file.name);
  try {
    const generate = { model_type: $('model-type').value || undefined };
    const faces = $('face-limit').value;
    if (faces) generate.options = { face_limit: Number(faces) };
    const presigned = await api('/uploads/presign', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        files: [{ filename: file.name, content_type: file.type, size: file.size }],
        generate,
      }),
    });
    const entry = presigned.files[0];
    li.dataset.jobId = entry.job_id;
    const put = await fetch(entry.upload.url, { method: 'PUT', headers: entry.upload.headers, body: file });
    if (!put.ok) throw new Error(`the upload was refused (HTTP ${put.status})`);
    setJob(li, 'queued', 0, 'Uploaded; waiting for the generator…');
    follow(li, entry.job_id, entry.events_url);
  } catch (err) {
    setJob(li, 'failed', 0, `Failed: ${err.message}`);
  }
}

// EventSource sends no headers: the signed events_url opens this job's stream alone.
function follow(li, jobId, eventsUrl) {
  const started = performance.now();
  const source = new EventSource(eventsUrl);
  const update = (event) => {
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
    const data = JSON.parse(event.data);
    setJob(li, 'failed', data.progress || 0, `Failed: ${data.error || data.error_code}`);
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && !li.classList.contains('completed')) {
      setJob(li, 'failed', 0, 'Connection lost');
    }
  };
}

async function showResult(li, jobId) {
  const link = await api(`/download/${jobId}?redirect=false`);
  const actions = li.querySelector('.actions');
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

function dropped(files) {
  for (const file of files) upload(file);
}

$('files').addEventListener('change', (event) => {
  dropped([...event.target.files]);
  event.target.value = '';
});
const zone = $('drop-zone');
zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('over'); });
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', (event) => {
  event.preventDefault();
  zone.classList.remove('over');
  dropped([...event.dataTransfer.files]);
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
    const page = await api('/jobs?limit=10');
    list.replaceChildren(...page.jobs.map((job) => {
      const li = document.createElement('li');
      li.className = `recent ${job.status}`;
      const label = document.createElement('span');
      const when = new Date(job.created_at).toLocaleString();
      label.textContent = `${job.result ? job.result.filename : job.model_type} · ${job.status} · ${when}`;
      const actions = document.createElement('span');
      actions.className = 'actions';
      if (job.status === 'completed') {
        const preview = document.createElement('img');
        preview.className = 'preview';
        preview.alt = `Preview of ${job.result.filename}`;
        api(`/download/${job.job_id}?redirect=false`).then((link) => {
          if (link.preview_url) preview.src = link.preview_url;
        }).catch(() => preview.remove());
        actions.append(preview);
        const view = document.createElement('button');
        view.type = 'button';
        view.textContent = 'View';
        view.addEventListener('click', async () => {
          const link = await api(`/download/${job.job_id}?redirect=false`);
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
checkKey().then((ok) => { if (ok) refreshRecent(); });
window.image2model = { showModel, apiBase };
