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
    /** @type {Record<string, any>} the envelope's specifics (`reason`, `retry_after`, ...) */
    this.details = (body && typeof body.details === 'object' && body.details) || {};
  }
}

/**
 * What went wrong with a call, in words a person can act on (never a header name or a raw
 * browser message such as "Failed to fetch").
 * @param {any} err
 */
function plainError(err) {
  if (err instanceof ApiError) {
    if (err.code && Object.prototype.hasOwnProperty.call(FAILURES, err.code)) return FAILURES[err.code];
    switch (err.status) {
      case 401: return 'The server did not accept your key. Paste a valid key above.';
      case 403: return 'Your key may not do this.';
      case 404: return 'It no longer exists (it may have been deleted).';
      case 413: return `That is too large: ${err.message}`;
      case 429: return 'Too many requests just now. Wait a minute and try again.';
      default:
        if (err.status >= 500) return 'The server had a problem. Try again in a moment.';
        // A refused value: the server names the field first (`url: ...`); a person needs the rest.
        return sentence(err.message.replace(/^[\w.[\]]+: /, ''));
    }
  }
  if (err instanceof TypeError) return UNREACHABLE;
  return String((err && err.message) || err);
}

/** @param {string} text */
function sentence(text) {
  const trimmed = text.trim();
  return `${trimmed.charAt(0).toUpperCase()}${trimmed.slice(1)}${/[.!?]$/.test(trimmed) ? '' : '.'}`;
}

// Whose page it is: a number that grows when another key is used, and a signal that ends every
// call still under way for the previous key. What such a call answers is dropped, never shown.
let person = 0;
let personCalls = new AbortController();
/** Thrown when a task of a previous person's is dropped. */
class Superseded extends Error {}
/** @param {unknown} err whether this failure only means the key changed meanwhile */
const superseded = (err) => err instanceof Superseded || (err instanceof Error && err.name === 'AbortError');

/** @type {import('./vendor/openapi-fetch/index.mjs').Client<import('./api').paths>} */
const client = createClient({ baseUrl: apiBase });
client.use({
  onRequest({ request }) {
    if (apiKey) request.headers.set('Authorization', `Bearer ${apiKey}`);
    // Browsers without AbortSignal.any (before 2024) keep only the checks of `person` below.
    if (typeof AbortSignal.any !== 'function') return request;
    return new Request(request, { signal: AbortSignal.any([request.signal, personCalls.signal]) });
  },
  // The key's status follows the server: a call that gets no answer says the server stopped
  // answering (the key is kept) and the page asks again every few seconds; the first answer
  // says it is back and loads what could not be loaded meanwhile.
  onResponse() {
    if (serverDown) {
      serverDown = false;
      clearInterval(serverWatch);
      recover();
    }
  },
  onError({ error }) {
    if (error instanceof Error && error.name === 'AbortError') return; // Ended on purpose.
    if (!serverDown) {
      serverDown = true;
      showAuth(`${UNREACHABLE} Your key is kept.`, true);
      serverWatch = setInterval(askServer, SERVER_WATCH_MS);
    }
  },
});
/** Whether the last call got no answer at all. */
let serverDown = false;
/** @type {ReturnType<typeof setInterval> | undefined} */
let serverWatch;
const SERVER_WATCH_MS = 3000;
// An idle page asks too, now and then, so its status does not say "accepted" of a server gone.
const IDLE_WATCH_MS = 30_000;
let asking = false;
/** One call that only tells whether the server answers (the client's hooks do the rest). */
function askServer() {
  if (asking) return; // Many streams dropping at once ask once.
  asking = true;
  client.GET('/api/v1/health').catch(() => {}).finally(() => { asking = false; });
}
setInterval(() => {
  if (!serverDown && document.visibilityState === 'visible') askServer();
}, IDLE_WATCH_MS);
// What a person can do when the server does not answer.
const UNREACHABLE = location.origin === apiBase
  ? 'The server is not answering. Check that it is still running (it prints "listening on" when it starts), then reload.'
  : `The API at ${apiBase} is not answering. Check your connection, or that the deployment is up, then reload.`;

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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

// --- downloads -----------------------------------------------------------------------------

/** @typedef {Schemas['ModelFormat']} ModelFormat */

// Every format a completed model downloads in, in the order the cards offer them, said the way a
// person chooses (a Record, so that a format added to the document fails the type check here).
/** @type {Record<ModelFormat, { name: string, label: string }>} */
const FORMATS = {
  glb: { name: 'GLB', label: 'GLB (web, 3D viewers)' },
  usdz: { name: 'USDZ', label: 'USDZ (iPhone/iPad AR)' },
  obj: { name: 'OBJ', label: 'OBJ + texture (Blender, editors) .zip' },
  stl: { name: 'STL', label: 'STL (3D printing)' },
};
const FORMAT_ORDER = /** @type {ModelFormat[]} */ (Object.keys(FORMATS));
// How long a click waits for a format being converted (202 answers) before saying so.
const CONVERSION_DEADLINE_MS = 60_000;
// A signed URL this close to its expiry is not handed to the browser (AR Quick Look opens it late).
const EXPIRY_MARGIN_MS = 30_000;

/** Still converting when the deadline passed. */
class ConversionTimeout extends Error {
  /** @param {ModelFormat} format */
  constructor(format) {
    super(`${FORMATS[format].name} still converting after ${CONVERSION_DEADLINE_MS / 1000} s`);
    this.format = format;
  }
}

/**
 * The seconds a 202 asks to wait: its `Retry-After` header (readable across origins only when
 * the API's CORS exposes it), else the body's copy, kept between 1 and 30.
 * @param {Response} response
 * @param {unknown} body
 */
function retryAfter(response, body) {
  const header = (response.headers.get('Retry-After') || '').trim();
  const inBody = body && typeof body === 'object' && 'retry_after' in body ? Number(body.retry_after) : NaN;
  const seconds = /^\d+$/.test(header) ? Number(header) : Number.isFinite(inBody) ? inBody : 3;
  return Math.min(Math.max(seconds, 1), 30);
}

/**
 * A fresh signed link of a completed job's model in `format`: asked for at each use, never kept,
 * since signed URLs expire in minutes. A format not made yet answers 202 while the worker
 * converts it; this asks again after `Retry-After` seconds until the link comes or
 * CONVERSION_DEADLINE_MS passed (ConversionTimeout). Other answers throw an ApiError.
 * @param {string} jobId
 * @param {ModelFormat} [format]
 * @param {(seconds: number) => void} [converting] told before each wait
 * @returns {Promise<Schemas['DownloadLink']>}
 */
async function freshLink(jobId, format = 'glb', converting) {
  const deadline = Date.now() + CONVERSION_DEADLINE_MS;
  for (;;) {
    const left = Math.max(deadline - Date.now(), 1000);
    const { data, error, response } = await client.GET('/api/v1/download/{job_id}', {
      params: { path: { job_id: jobId }, query: { format, redirect: false } },
      // A server that stops answering ends in a TimeoutError instead of a button busy for ever.
      signal: typeof AbortSignal.timeout === 'function' ? AbortSignal.timeout(left) : undefined,
    });
    if (!response.ok || data === undefined) throw new ApiError(response.status, error);
    if (response.status !== 202 && 'url' in data) return data;
    if (response.status !== 202) throw new ApiError(response.status, data);
    const seconds = retryAfter(response, data);
    if (Date.now() + seconds * 1000 >= deadline) throw new ConversionTimeout(format);
    converting?.(seconds);
    await sleep(seconds * 1000);
  }
}

/**
 * Starts the browser's download of a link just signed. The storage answers with
 * `Content-Disposition: attachment`, so the page stays (`download` alone is ignored across
 * origins, as signed URLs are on AWS).
 * @param {Schemas['DownloadLink']} link
 */
function startDownload(link) {
  const a = Object.assign(document.createElement('a'), { href: link.url, download: link.filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}

/**
 * What went wrong, in words a person can act on.
 * @param {any} err
 * @param {ModelFormat} format
 */
function downloadFailure(err, format) {
  const name = FORMATS[format].name;
  if (err instanceof ConversionTimeout) {
    return `${name} is still being made after ${CONVERSION_DEADLINE_MS / 1000} seconds. Try again in a minute.`;
  }
  if (err instanceof ApiError) {
    if (err.code === 'FORMAT_NOT_CONVERTIBLE') {
      const reason = typeof err.details.reason === 'string' ? `: ${err.details.reason}` : '';
      return `This model cannot be made into ${name}${reason}. The GLB still downloads.`;
    }
    switch (err.status) {
      case 401: return 'The server refused your key (it may have expired or been revoked). Paste a valid key above and try again.';
      case 403: return 'Your key may not download models. Ask whoever gave it for one that may.';
      case 404: return 'This job no longer exists (it may have been deleted).';
      case 409: return 'The model is not ready to download yet. Wait until the job is done, then try again.';
      case 429: return 'Too many requests just now. Wait a moment and try again.';
      case 503: return 'The server could not reach the storage or the converter. Try again shortly.';
      default:
        if (err.status >= 500) return `The server had a problem preparing the ${name} download. Try again in a moment.`;
        return `Could not get the ${name} download. Reload the page and try again.`;
    }
  }
  if (err && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `The server did not answer in time for the ${name} download. Try again.`;
  }
  if (err instanceof TypeError) return UNREACHABLE;
  return `Could not download ${name}: ${(err && err.message) || err}`;
}

/** @param {number} bytes */
function humanSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * A format button's text: its label, with the size when known.
 * @param {ModelFormat} format
 * @param {Schemas['ResultFormat'] | undefined} known
 */
function formatLabel(format, known) {
  const { label } = FORMATS[format];
  if (known && known.status === 'failed') return `${label} · not available`;
  return known && typeof known.size === 'number' ? `${label} · ${humanSize(known.size)}` : label;
}

// AR Quick Look (iOS and iPadOS Safari) opens `<a rel="ar">` links whose first child is an image.
const AR_SUPPORTED = (() => {
  try {
    return document.createElement('a').relList.supports('ar');
  } catch {
    return false;
  }
})();
// The AR link's picture when the model has no preview: a cube, inline (the page's policy allows
// data: images).
const AR_ICON = `data:image/svg+xml,${encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><rect width="40" height="40" rx="6" fill="#dfe3ea"/>'
  + '<path d="M20 7 32 13.5v13L20 33 8 26.5v-13z" fill="#fff" stroke="#1d2330" stroke-width="2" stroke-linejoin="round"/>'
  + '<path d="M8 13.5 20 20l12-6.5M20 20v13" fill="none" stroke="#1d2330" stroke-width="2" stroke-linejoin="round"/></svg>',
)}`;

/**
 * A completed job's downloads: a button per format (each asks for a fresh link when clicked and
 * waits through a conversion), the AR Quick Look link, and a status line for what happens.
 * The AR link is in every card, hidden where the browser has no AR Quick Look. Its href must be
 * a fresh signed USDZ URL at the moment of the tap (Safari opens it on the tap itself; a link
 * fetched after the tap is no longer the person's gesture), so: on a device with AR Quick Look a
 * USDZ already made is signed as the card renders; any USDZ link the card fetches later (a USDZ
 * download) is set on it too; and a tap on a missing or nearly expired link fetches one (made
 * first if need be) and asks for another tap. No card converts anything before a person asks.
 * @param {string} jobId
 * @param {string} name the photo's name
 * @param {Schemas['ResultFormat'][] | null} formats the job's `result.formats`, when known
 */
function formatControls(jobId, name, formats) {
  const box = document.createElement('div');
  box.className = 'formats';
  const group = document.createElement('div');
  group.className = 'format-buttons';
  group.setAttribute('role', 'group');
  group.setAttribute('aria-label', `Download the model of ${name} as`);
  const caption = Object.assign(document.createElement('span'), { className: 'formats-label', textContent: 'Download:' });
  caption.setAttribute('aria-hidden', 'true');
  group.append(caption);
  const status = document.createElement('p');
  status.className = 'format-status';
  status.setAttribute('role', 'status');
  status.setAttribute('aria-live', 'polite');

  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let fallbackTimer;
  /**
   * @param {string} text
   * @param {boolean} [error]
   * @param {Schemas['DownloadLink']} [link] offered as a plain link while it is valid
   */
  const say = (text, error = false, link) => {
    clearTimeout(fallbackTimer);
    status.replaceChildren(text);
    status.classList.toggle('error', error);
    if (link) {
      const again = Object.assign(document.createElement('a'), { href: link.url, download: link.filename, textContent: 'save it here' });
      status.append(' Not started? ', again, '.');
      const valid = Date.parse(link.expires_at) - Date.now() - EXPIRY_MARGIN_MS;
      fallbackTimer = setTimeout(() => again.replaceWith('ask again above'), Math.max(valid, 0));
    }
  };

  const ar = document.createElement('a');
  ar.className = 'ar';
  ar.rel = 'ar';
  ar.hidden = !AR_SUPPORTED;
  const arPicture = Object.assign(document.createElement('img'), { src: AR_ICON, alt: '', width: 40, height: 40 });
  const arText = document.createTextNode('View in AR');
  ar.append(arPicture, arText); // The image first: Safari requires it.
  let arExpires = 0;
  let arBusy = false;
  /** @param {Schemas['DownloadLink']} link */
  const setArLink = (link) => {
    ar.href = link.url;
    arExpires = Date.parse(link.expires_at);
    ar.dataset.expiresAt = link.expires_at;
  };
  ar.addEventListener('click', async (event) => {
    if (ar.getAttribute('href') && Date.now() < arExpires - EXPIRY_MARGIN_MS) return; // Safari opens it.
    event.preventDefault();
    if (arBusy) return;
    arBusy = true;
    ar.setAttribute('aria-busy', 'true');
    arText.data = 'Preparing AR…';
    say('Getting the AR model…');
    try {
      setArLink(await freshLink(jobId, 'usdz', () => {
        arText.data = 'Converting…';
        say('Converting the model to USDZ for AR; this usually takes a few seconds…');
      }));
      say('The AR model is ready: tap “View in AR” to open it.');
    } catch (err) {
      say(downloadFailure(err, 'usdz'), true);
    } finally {
      arBusy = false;
      ar.removeAttribute('aria-busy');
      arText.data = 'View in AR';
    }
  });

  for (const format of FORMAT_ORDER) {
    const known = formats?.find((f) => f.format === format);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'format';
    button.dataset.format = format;
    button.dataset.status = known ? known.status : 'unknown';
    button.textContent = formatLabel(format, known);
    if (known && known.reason) button.title = known.reason;
    button.addEventListener('click', async () => {
      if (button.getAttribute('aria-busy') === 'true') return;
      const name = FORMATS[format].name;
      // aria-disabled rather than disabled: the button keeps focus while it works.
      button.setAttribute('aria-busy', 'true');
      button.setAttribute('aria-disabled', 'true');
      say(`Getting the ${name} download…`);
      try {
        const link = await freshLink(jobId, format, () => {
          button.classList.add('converting');
          button.textContent = `Converting… ${FORMATS[format].label}`;
          say(`Converting the model to ${name}; this usually takes a few seconds…`);
        });
        button.dataset.status = 'ready';
        button.textContent = formatLabel(format, { format, status: 'ready', content_type: link.content_type, size: link.size });
        if (format === 'usdz') setArLink(link);
        startDownload(link);
        say(`Downloading ${link.filename} (${humanSize(link.size)}).`, false, link);
      } catch (err) {
        button.textContent = formatLabel(format, known);
        say(downloadFailure(err, format), true);
      } finally {
        button.classList.remove('converting');
        button.removeAttribute('aria-busy');
        button.removeAttribute('aria-disabled');
      }
    });
    group.append(button);
  }

  // Only where Quick Look can open it, and only a USDZ already made: no conversion unasked.
  if (AR_SUPPORTED && formats?.some((f) => f.format === 'usdz' && f.status === 'ready')) {
    freshLink(jobId, 'usdz').then(setArLink).catch(() => {
      // Left without href: a tap fetches the link again and says what went wrong.
    });
  }

  box.append(group, ar, status);
  return {
    box,
    say,
    /** @param {string} url the model's preview, shown in the AR link */
    showPreview(url) {
      arPicture.src = url;
    },
  };
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
    delete document.body.dataset.authenticated;
    return false;
  }
  const me = person;
  try {
    await ok(client.GET('/api/v1/jobs', { params: { query: { limit: 1 } } }));
    showAuth('Key accepted.');
    document.body.dataset.authenticated = 'true';
    return true;
  } catch (err) {
    if (me !== person || superseded(err)) return false;
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      showAuth('This key was not accepted. Check that you pasted all of it, or ask for a new one.', true);
    } else if (err instanceof ApiError && err.status === 429) {
      showAuth('Too many requests just now. Wait a minute, then press “Use key” again.', true);
    } else if (err instanceof ApiError) {
      showAuth('The server could not check the key just now. Try again in a moment.', true);
    } else {
      showAuth(`${UNREACHABLE} Your key is kept.`, true);
    }
    document.body.dataset.authenticated = 'false';
    return false;
  }
}

/** Loads what the person's key shows: recent jobs, webhooks, the model last viewed. */
function loadPerson() {
  refreshRecent();
  refreshWebhooks();
  restoreViewer();
}

/** After the server answers again: whatever could not load while it was away. */
async function recover() {
  if (!catalog.size) await loadModels().catch(() => {});
  // What failed while the server was away is tried again, not left saying so.
  if ($('webhook-status').classList.contains('error')) sayWebhooks('');
  if ($('viewer').dataset.state === 'error') clearViewer();
  if (await checkKey()) loadPerson();
}

/**
 * Another key is another person: nothing of the previous one stays on the page (cards, streams,
 * the model in view, webhooks and their secret).
 */
function forgetPerson() {
  person += 1;
  personCalls.abort();
  personCalls = new AbortController();
  for (const source of streams) source.close();
  streams.clear();
  $('job-list').replaceChildren();
  $('recent-list').replaceChildren();
  $('webhook-list').replaceChildren();
  $('webhook-secret').hidden = true;
  $('webhook-secret-value').textContent = '';
  sayWebhooks('');
  localStorage.removeItem(VIEWED_STORE);
  clearViewer();
}

$('key-form').addEventListener('submit', async (/** @type {SubmitEvent} */ event) => {
  event.preventDefault();
  const previous = apiKey;
  apiKey = $('api-key').value.trim();
  if (apiKey) localStorage.setItem(keyName, apiKey);
  else localStorage.removeItem(keyName);
  if (apiKey !== previous) forgetPerson();
  if (await checkKey()) loadPerson();
});

// --- models, detail and failures in words -------------------------------------------------

/** Every model's name for people, as `/models/available` last said (available or not). @type {Map<string, Schemas['ModelInfo']>} */
const catalog = new Map();

async function loadModels() {
  const models = await ok(client.GET('/api/v1/models/available'));
  const select = $('model-type');
  select.replaceChildren();
  catalog.clear();
  for (const model of models) {
    catalog.set(model.name, model);
    if (!model.available) continue;
    // The name fits the menu; what it makes and how shows on hover.
    const option = new Option(model.display_name, model.name, model.default, model.default);
    option.title = `${model.makes}. ${model.description}`;
    select.append(option);
  }
}

/** @param {string} id a model's id */
function modelName(id) {
  return catalog.get(id)?.display_name || id;
}

// The detail menu's levels by their face limit (index.html's options).
const DETAIL_LEVELS = new Map([[10000, 'light detail'], [200000, 'fine detail'], [800000, 'finest detail']]);

/** @param {number | null | undefined} faces the job's `face_limit` */
function detailName(faces) {
  if (!faces) return 'standard detail';
  return DETAIL_LEVELS.get(faces) || `at most ${faces.toLocaleString('en')} faces`;
}

// Why a job failed, said for a person, with what to do; one entry per job error code (a test
// holds this table to the codes the README lists). A code added later reads as its message.
/** @type {Record<string, string>} */
const FAILURES = {
  INVALID_IMAGE: 'The file is not a photo that can be read (damaged, cut short, or another kind of file). Try another photo.',
  INVALID_FILE_TYPE: 'The file is not a JPEG, PNG or WebP photo. Choose a photo of one of these types.',
  EMPTY_FILE: 'The file is empty. Choose the photo again.',
  FILE_TOO_LARGE: 'The photo is too large to upload. Use a smaller one.',
  IMAGE_TOO_LARGE: 'The photo has too many pixels. Use a smaller one.',
  FILE_REJECTED: 'The photo was refused. Try another photo.',
  UPLOAD_TAMPERED: 'The photo was changed after it was checked, so it was not used. Upload it again.',
  FILE_NOT_FOUND: 'The photo is no longer kept (uploads are removed after a while). Upload it again.',
  MODEL_UNAVAILABLE: 'This model cannot run on this server now. Choose another model and try again.',
  GENERATION_FAILED: 'No model could be made of this photo. Try another photo or another model.',
  GENERATOR_CRASHED: 'The built-in generator cannot make a model of this photo. Try another photo.',
  JOB_DEADLINE_EXCEEDED: 'It took too long and was stopped. Try again later.',
  GENERATION_TIMEOUT: 'The model service took too long and the job was stopped. Try again later.',
  CANCELLED: 'It was cancelled.',
  FAL_UNAUTHORIZED: 'The model service refused this server’s account. Tell whoever runs the server.',
  FAL_ACCOUNT_LOCKED: 'The model service’s account is locked (often a billing matter). Tell whoever runs the server.',
  FAL_INVALID_INPUT: 'The model service could not use this photo. Try another photo.',
  FAL_REQUEST_REJECTED: 'The model service refused the request. Try again later, or another model.',
  FAL_RATE_LIMITED: 'The model service is busy. Try again in a few minutes.',
  FAL_UNAVAILABLE: 'The model service did not answer. Try again in a few minutes.',
  FAL_BAD_RESPONSE: 'The model service sent back an answer that could not be read. Try again.',
  FAL_OUTPUT_MISSING: 'The model service finished without a model. Try again, or another model.',
  FAL_BAD_OUTPUT: 'The model service sent back something that is not a model. Try again, or another model.',
  FAL_RESULT_EXPIRED: 'The model was made, but expired at the model service before it was saved. Try again.',
  FAL_RESULT_TOO_LARGE: 'The model made was too large to keep. Try a lower detail.',
};

/**
 * @param {string | null | undefined} code the job's `error.code`
 * @param {string | null | undefined} [message] the server's own words, when the code is new
 */
function failureWords(code, message) {
  if (code && Object.prototype.hasOwnProperty.call(FAILURES, code)) return FAILURES[code];
  return message ? `It failed: ${message}.` : 'It failed.';
}

// --- job cards -----------------------------------------------------------------------------

/**
 * A job's card: the photo's name (extension included), the model and detail it was made with,
 * what is happening or why it failed, then (once completed) its downloads.
 * @param {string} kind `job` (an upload of this page) or `recent`
 * @param {string} name the photo's name
 * @param {string} about the model, the detail, and for recent jobs when
 */
function jobCard(kind, name, about) {
  const li = document.createElement('li');
  li.className = kind;
  const title = Object.assign(document.createElement('span'), { className: 'name', textContent: name });
  const actions = Object.assign(document.createElement('span'), { className: 'actions' });
  const meta = Object.assign(document.createElement('span'), { className: 'meta', textContent: about });
  const message = Object.assign(document.createElement('span'), { className: 'message' });
  li.append(title, actions, meta, message);
  return li;
}

/**
 * @param {HTMLLIElement} li
 * @param {string} status
 * @param {string} text what is happening, or why it failed
 * @param {number} [progress] shown as a bar while the job runs
 */
function setJob(li, status, text, progress) {
  li.className = `${li.classList.contains('recent') ? 'recent' : 'job'} ${status}`;
  let bar = /** @type {HTMLProgressElement | null} */ (li.querySelector('progress'));
  if (progress === undefined || status === 'completed' || status === 'failed') {
    bar?.remove();
  } else {
    if (!bar) {
      bar = Object.assign(document.createElement('progress'), { max: 100 });
      bar.setAttribute('aria-label', `Progress of ${/** @type {HTMLElement} */ (li.querySelector('.name')).textContent}`);
      li.querySelector('.meta')?.after(bar);
    }
    bar.value = progress;
  }
  /** @type {HTMLElement} */ (li.querySelector('.message')).textContent = text;
}

/**
 * A completed job's card gets its downloads, its preview and a View button.
 * @param {HTMLLIElement} li
 * @param {string} jobId
 * @param {string} name the photo's name
 * @param {Schemas['ResultFormat'][] | null} formats
 */
function addResult(li, jobId, name, formats) {
  const controls = formatControls(jobId, name, formats);
  li.querySelector('.formats')?.remove();
  li.append(controls.box);
  const preview = Object.assign(document.createElement('img'), { className: 'preview', alt: `Preview of the model of ${name}` });
  freshLink(jobId).then((link) => {
    if (!link.preview_url) return preview.remove();
    preview.src = link.preview_url;
    controls.showPreview(link.preview_url);
  }).catch(() => preview.remove());
  const view = Object.assign(document.createElement('button'), { type: 'button', textContent: 'View', className: 'view' });
  view.setAttribute('aria-label', `View the model of ${name}`);
  view.addEventListener('click', () => showInViewer(jobId, name, true));
  /** @type {HTMLElement} */ (li.querySelector('.actions')).replaceChildren(preview, view);
}

/**
 * Says an event to screen readers once (a job done or failed), without making every progress
 * step of every card a live region.
 * @param {string} text
 */
function announce(text) {
  $('announcer').textContent = text;
}

// --- uploads and progress ------------------------------------------------------------------

/** The streams of the jobs this page follows (closed when another key is used). @type {Set<EventSource>} */
const streams = new Set();
// How long an upload refused for too many at once keeps waiting its turn.
const UPLOAD_WAIT_MS = 120_000;

// Presigns run one at a time: photos dropped together meet a rate limit once, the first waits
// out its `retry_after` and the others queue behind it instead of all asking again together.
/** @type {Promise<unknown>} */
let presignTurn = Promise.resolve();

/**
 * The presigned upload of one file, in its turn, waiting (`retry_after`) when the key's rate
 * limit refuses it, until UPLOAD_WAIT_MS passed; dropped when another key is used meanwhile.
 * @param {Schemas['PresignRequest']} body
 * @param {number} me the person it is for
 * @param {(seconds: number) => void} waiting told before each wait
 */
function presign(body, me, waiting) {
  const deadline = Date.now() + UPLOAD_WAIT_MS;
  const mine = presignTurn.then(async () => {
    for (;;) {
      if (me !== person) throw new Superseded();
      try {
        return await ok(client.POST('/api/v1/uploads/presign', { body }));
      } catch (err) {
        const seconds = err instanceof ApiError && err.status === 429 ? Number(err.details.retry_after) : NaN;
        if (!(seconds > 0) || Date.now() + seconds * 1000 > deadline) throw err;
        waiting(seconds);
        await sleep(seconds * 1000);
      }
    }
  });
  presignTurn = mine.catch(() => {});
  return mine;
}

/**
 * Uploads one photo for a new job, and follows the job; the card says each step.
 * @param {File} file
 * @returns {HTMLLIElement} the job's card
 */
function upload(file) {
  const model = /** @type {HTMLSelectElement} */ ($('model-type')).value;
  const faces = $('face-limit').value;
  // Detail goes only to a model that takes it, and never past its maximum.
  const max = catalog.get(model)?.face_limit_max;
  const faceLimit = faces && max ? Math.min(Number(faces), max) : undefined;
  const li = jobCard('job', file.name, `${modelName(model)} · ${detailName(faceLimit)}`);
  setJob(li, 'queued', 'Uploading…', 0);
  $('job-list').prepend(li);
  send(li, file, model, faceLimit);
  return li;
}

/**
 * @param {HTMLLIElement} li the job's card
 * @param {File} file
 * @param {string} model
 * @param {number | undefined} faceLimit
 */
async function send(li, file, model, faceLimit) {
  const me = person;
  /** @type {string | undefined} */
  let jobId;
  try {
    /** @type {Schemas['GenerateSpec']} */
    const generate = { model_type: /** @type {any} */ (model) || undefined };
    /** @type {Schemas['JobOptions']} */
    const options = {};
    if (faceLimit) options.face_limit = faceLimit;
    // Where AR Quick Look opens models, the USDZ is made with the model: "View in AR" works at once.
    if (AR_SUPPORTED) options.formats = ['glb', 'usdz'];
    if (Object.keys(options).length > 0) generate.options = options;
    const presigned = await presign({
      // The server reads the bytes' type and refuses any but the image types it names.
      files: [{ filename: file.name, content_type: /** @type {Schemas['ImageType']} */ (file.type), size: file.size }],
      generate,
    }, me, (seconds) => setJob(li, 'queued', `Many uploads at once: this one waits its turn (${seconds} s)…`, 0));
    const { upload: signed, events_url: eventsUrl } = presigned.files[0];
    jobId = presigned.files[0].job_id || undefined;
    // Asked for a job (`generate`, which brings its links) and the default upload method, a PUT.
    if (!jobId || !eventsUrl || !('headers' in signed)) throw new Error('The server offered no way to upload this photo. Try again.');
    li.dataset.jobId = jobId;
    const put = await fetch(signed.url, { method: 'PUT', headers: signed.headers, body: file, signal: personCalls.signal })
      .catch((err) => {
        if (superseded(err)) throw err;
        throw new Error('The upload was cut off before it finished. Check your connection and try again.');
      });
    if (!put.ok) throw new Error('The storage refused the upload. Try again.');
    if (me !== person) return;
    setJob(li, 'queued', 'Uploaded; waiting for the generator…', 0);
    follow(li, jobId, file.name, eventsUrl);
  } catch (err) {
    if (me !== person || superseded(err)) return; // Another key: this card is gone already.
    // A job whose photo never arrived would wait for it in vain: it is cancelled.
    if (jobId) client.DELETE('/api/v1/jobs/{job_id}', { params: { path: { job_id: jobId } } }).catch(() => {});
    setJob(li, 'failed', `Not uploaded. ${plainError(err)}`);
    announce(`${file.name} was not uploaded.`);
    const again = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Try again' });
    again.setAttribute('aria-label', `Try again: upload ${file.name}`);
    again.addEventListener('click', () => {
      const card = upload(file);
      li.replaceWith(card);
      card.tabIndex = -1;
      card.focus(); // The focus goes to the new card, not to the page.
    });
    /** @type {HTMLElement} */ (li.querySelector('.actions')).replaceChildren(again);
  }
}

// EventSource sends no headers: the signed events_url opens this job's stream alone. Its
// events' data are typed by the document too (`StreamEvent`).
/**
 * @param {HTMLLIElement} li
 * @param {string} jobId
 * @param {string} name the photo's name
 * @param {string} eventsUrl
 */
function follow(li, jobId, name, eventsUrl) {
  const LOST = 'Lost the connection to the server; reconnecting…';
  const started = performance.now();
  const source = new EventSource(eventsUrl);
  streams.add(source);
  const end = () => {
    source.close();
    streams.delete(source);
  };
  /** @param {MessageEvent} event */
  const update = (event) => {
    /** @type {Schemas['TaskEventData']} */
    const data = JSON.parse(event.data);
    setJob(li, data.status, data.message || data.status, data.progress);
  };
  source.addEventListener('task_queued', update);
  source.addEventListener('task_progress', update);
  source.onopen = () => {
    const message = /** @type {HTMLElement} */ (li.querySelector('.message'));
    if (message.textContent === LOST) message.textContent = 'Connected again; waiting for news of the job…';
  };
  source.addEventListener('task_completed', async (event) => {
    end();
    setJob(li, 'completed', 'Done.');
    announce(`The model of ${name} is done.`);
    li.dataset.seconds = ((performance.now() - started) / 1000).toFixed(2);
    // The formats and their sizes come with the job; the card works without them.
    const job = await ok(client.GET('/api/v1/jobs/{job_id}', { params: { path: { job_id: jobId } } })).catch(() => null);
    addResult(li, jobId, name, job?.result ? job.result.formats : null);
    offerToViewer(jobId, name);
    refreshRecentSoon();
  });
  source.addEventListener('task_failed', (event) => {
    end();
    /** @type {Schemas['FailedEventData']} */
    const data = JSON.parse(event.data);
    // The public view has no `error`, only the code.
    setJob(li, 'failed', failureWords(data.error_code, 'error' in data ? data.error : null));
    announce(`${name} failed: ${failureWords(data.error_code, 'error' in data ? data.error : null)}`);
    refreshRecentSoon();
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CONNECTING) {
      // The browser reconnects by itself; the card says so, and the key status learns whether
      // the server is away.
      /** @type {HTMLElement} */ (li.querySelector('.message')).textContent = LOST;
      askServer();
    } else if (!li.classList.contains('completed')) {
      end();
      setJob(li, 'failed', 'The connection to the server was lost before the job ended. Reload to see how it ended.');
    }
  };
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
// On a touch screen: one finger turns at a comfortable pace, two pinch to zoom (OrbitControls'
// touch gestures); with a keyboard, the arrows turn and + and - zoom. The hints say so.
const touch = matchMedia('(pointer: coarse)').matches;
if (touch) controls.rotateSpeed = 0.6;
const HOW_TO_TURN = touch ? 'drag to turn, pinch to zoom' : 'drag or use the arrow keys to turn, scroll or + and - to zoom';
const HOW_TO_TURN_SENTENCE = `${HOW_TO_TURN[0].toUpperCase()}${HOW_TO_TURN.slice(1)}.`;
canvas.setAttribute('aria-label', touch
  ? 'The model in 3D: drag to turn it, pinch to zoom'
  : 'The model in 3D: the arrow keys turn it, + and - zoom');
const EMPTY_VIEWER = touch
  ? 'No model yet: choose a photo above, or tap View on a finished job.'
  : 'No model yet: drop a photo above, or choose View on a finished job.';
$('drop-hint').textContent = touch
  ? 'Tap to choose JPEG, PNG or WebP photos'
  : 'Drop JPEG, PNG or WebP photos here, or click to choose';
const loader = new GLTFLoader();
/** @type {any} the model in view */
let shown = null;
// The model last shown is shown again after a reload (per API, as keys are).
const VIEWED_STORE = `image2model.viewed@${apiBase}`;
// Each showing gets a number; a slower, older one that finishes late is dropped.
let showing = 0;

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

// The keyboard turns the model as a drag does: arrows by 10 degrees, + and - zoom.
canvas.addEventListener('keydown', (/** @type {KeyboardEvent} */ event) => {
  const step = Math.PI / 18;
  const around = new THREE.Spherical().setFromVector3(camera.position.clone().sub(controls.target));
  switch (event.key) {
    case 'ArrowLeft': around.theta -= step; break;
    case 'ArrowRight': around.theta += step; break;
    case 'ArrowUp': around.phi -= step; break;
    case 'ArrowDown': around.phi += step; break;
    case '+': case '=': around.radius *= 0.85; break;
    case '-': case '_': around.radius /= 0.85; break;
    default: return;
  }
  event.preventDefault();
  around.phi = Math.min(Math.max(around.phi, 0.05), Math.PI - 0.05);
  camera.position.copy(controls.target).add(new THREE.Vector3().setFromSpherical(around));
  camera.lookAt(controls.target);
});

/**
 * Draws the viewer's state over the canvas: `empty` (nothing chosen yet), `loading` (the
 * preview, when there is one, until the model is in), `shown`, or `error` (what happened and
 * a way to try again).
 * @param {'empty' | 'loading' | 'shown' | 'error'} state
 * @param {string} text
 * @param {{ preview?: string | null, retry?: () => void }} [extra]
 */
function setViewer(state, text, extra = {}) {
  $('viewer').dataset.state = state;
  const preview = $('viewer-preview');
  if (state === 'loading' && extra.preview) preview.src = extra.preview;
  preview.hidden = state !== 'loading' || !preview.getAttribute('src');
  if (state !== 'loading') preview.removeAttribute('src');
  const words = Object.assign(document.createElement('p'), { textContent: text });
  const overlay = $('viewer-state');
  overlay.replaceChildren(words);
  if (extra.retry) {
    const again = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Try again' });
    again.addEventListener('click', extra.retry);
    overlay.append(again);
  }
  overlay.hidden = state === 'shown';
  // Below the viewer, always: what turning does (naming the model once one is in view).
  $('viewer-status').textContent = state === 'shown' ? `${text}: ${HOW_TO_TURN}.` : HOW_TO_TURN_SENTENCE;
}

/** Nothing in view: no model, no pending load, nothing remembered on the canvas. */
function clearViewer() {
  showing += 1;
  if (shown) scene.remove(shown);
  shown = null;
  delete canvas.dataset.model;
  delete canvas.dataset.jobId;
  $('viewer-news').replaceChildren();
  setViewer('empty', EMPTY_VIEWER);
}

/**
 * Puts a loaded model in view: centred, fitted, seen from three-quarters above.
 * @param {any} model
 */
function place(model) {
  if (shown) scene.remove(shown);
  shown = model;
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
}

/**
 * Shows a completed job's model, from a link signed now.
 * @param {string} jobId
 * @param {string} name the photo's name
 * @param {boolean} asked whether the person asked for it (the focus then moves to the viewer,
 *   which scrolls into view)
 */
async function showInViewer(jobId, name, asked) {
  const mine = ++showing;
  if (asked) canvas.focus();
  $('viewer-news').replaceChildren();
  const retry = () => showInViewer(jobId, name, true);
  setViewer('loading', `Loading the model of ${name}…`);
  /** @type {Schemas['DownloadLink']} */
  let link;
  try {
    link = await freshLink(jobId);
  } catch (err) {
    if (mine !== showing) return;
    // A job that is gone (or an id that never was) is forgotten; the viewer says so once.
    if (err instanceof ApiError && (err.status === 404 || err.status === 400)) {
      localStorage.removeItem(VIEWED_STORE);
      setViewer('error', `The model of ${name} is no longer available (its job was deleted).`);
      return;
    }
    setViewer('error', `The model of ${name} could not be shown. ${downloadFailure(err, 'glb')}`, { retry });
    return;
  }
  if (mine !== showing) return;
  setViewer('loading', `Loading the model of ${name}…`, { preview: link.preview_url });
  try {
    /** @type {any} */
    const gltf = await new Promise((resolve, reject) => loader.load(link.url, resolve, undefined, reject));
    if (mine !== showing) return;
    place(gltf.scene);
    canvas.dataset.model = name;
    canvas.dataset.jobId = jobId;
    localStorage.setItem(VIEWED_STORE, JSON.stringify({ jobId, name }));
    setViewer('shown', `The model of ${name}`);
  } catch {
    if (mine !== showing) return;
    setViewer('error', `The model file of ${name} could not be loaded.`, { retry });
  }
}

/**
 * A model just made: shown at once when the viewer holds nothing, else announced with a button
 * to show it, so that no model is swapped in under the person's hands.
 * @param {string} jobId
 * @param {string} name the photo's name
 */
function offerToViewer(jobId, name) {
  if ($('viewer').dataset.state === 'empty') {
    showInViewer(jobId, name, false);
    return;
  }
  const show = Object.assign(document.createElement('button'), { type: 'button', textContent: `Show ${name}` });
  show.addEventListener('click', () => showInViewer(jobId, name, true));
  $('viewer-news').replaceChildren(`The model of ${name} is ready. `, show);
}

/** After a reload, the model last viewed comes back (when its job still exists). */
function restoreViewer() {
  try {
    const { jobId, name } = JSON.parse(localStorage.getItem(VIEWED_STORE) || 'null') || {};
    if (typeof jobId === 'string' && typeof name === 'string' && $('viewer').dataset.state === 'empty') {
      showInViewer(jobId, name, false);
    }
  } catch {
    localStorage.removeItem(VIEWED_STORE);
  }
}

// --- recent jobs ---------------------------------------------------------------------------

/** @param {Schemas['JobView']} job */
function photoName(job) {
  return job.source_filename || (job.result ? job.result.filename : 'a photo');
}

/** @param {Schemas['JobView']} job */
function recentCard(job) {
  const name = photoName(job);
  const when = new Date(job.created_at).toLocaleString();
  const li = jobCard('recent', name, `${modelName(job.model_type)} · ${detailName(job.options.face_limit)} · ${when}`);
  li.dataset.jobId = job.job_id;
  li.dataset.version = String(job.version);
  if (job.status === 'failed') {
    setJob(li, 'failed', failureWords(job.error?.code, job.error?.message));
  } else if (job.status === 'completed') {
    setJob(li, 'completed', 'Done.');
    addResult(li, job.job_id, name, job.result ? job.result.formats : null);
  } else {
    setJob(li, job.status, job.message, job.status === 'cancelled' ? undefined : job.progress);
  }
  return li;
}

/**
 * The key's latest jobs. A card whose job did not change, or that the person is using (it has
 * the focus, or a download under way), is kept as it is: nothing moves under their hands, and
 * its links are not signed again.
 */
async function refreshRecent() {
  if (!apiKey) return;
  const list = $('recent-list');
  const me = person;
  try {
    const page = await ok(client.GET('/api/v1/jobs', { params: { query: { limit: 10 } } }));
    if (me !== person) return;
    /** @type {Map<string, HTMLElement>} */
    const cards = new Map();
    for (const li of list.querySelectorAll(':scope > li[data-job-id]')) cards.set(li.dataset.jobId, li);
    const wanted = page.jobs.map((job) => {
      const old = cards.get(job.job_id);
      const inUse = old && (old.contains(document.activeElement) || old.querySelector('[aria-busy="true"]'));
      return old && (old.dataset.version === String(job.version) || inUse) ? old : recentCard(job);
    });
    if (!wanted.length) wanted.push(Object.assign(document.createElement('li'), { textContent: 'No jobs yet.' }));
    wanted.forEach((li, i) => {
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    while (list.children.length > wanted.length) list.lastElementChild?.remove();
  } catch (err) {
    if (me !== person || superseded(err)) return;
    list.replaceChildren(Object.assign(document.createElement('li'), { textContent: `Could not list your jobs: ${plainError(err)}` }));
  }
}
/** @type {ReturnType<typeof setTimeout> | undefined} */
let recentTimer;
/** One listing for jobs that end together. */
function refreshRecentSoon() {
  clearTimeout(recentTimer);
  recentTimer = setTimeout(refreshRecent, 1000);
}
$('refresh-recent').addEventListener('click', refreshRecent);

// --- webhooks ------------------------------------------------------------------------------

/** @typedef {Schemas['EventType']} EventType */

// Said the way a person reads them.
/** @type {Record<EventType, string>} */
const EVENT_NAMES = {
  'job.completed': 'job completed',
  'job.failed': 'job failed',
  'job.cancelled': 'job cancelled',
  'batch.completed': 'batch completed',
  ping: 'test',
};

/** @param {string} text */
function sayWebhooks(text, error = false) {
  $('webhook-status').textContent = text;
  $('webhook-status').classList.toggle('error', error);
}

/** @param {string | null | undefined} at */
function when(at) {
  return at ? new Date(at).toLocaleString() : '';
}

/**
 * The deliveries of one endpoint, newest first, as a table with a resend button per row.
 * @param {Schemas['EndpointView']} endpoint
 * @param {HTMLElement} box
 */
async function showDeliveries(endpoint, box) {
  const { deliveries } = await ok(client.GET('/api/v1/webhooks/endpoints/{endpoint_id}/deliveries', {
    params: { path: { endpoint_id: endpoint.endpoint_id }, query: { limit: 20 } },
  }));
  if (!deliveries.length) {
    box.replaceChildren(Object.assign(document.createElement('p'), { textContent: 'No deliveries yet.' }));
    return;
  }
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  for (const title of ['Event', 'Status', 'Tries', 'Last answer', 'Next try', 'Action']) {
    head.append(Object.assign(document.createElement('th'), { textContent: title, scope: 'col' }));
  }
  const body = table.createTBody();
  for (const delivery of deliveries) {
    const row = body.insertRow();
    row.className = `delivery ${delivery.status}`;
    const answer = delivery.last_status_code ? `HTTP ${delivery.last_status_code}` : (delivery.last_error || '');
    for (const text of [EVENT_NAMES[delivery.event_type], delivery.status, String(delivery.attempts), answer,
      when(delivery.next_attempt_at)]) {
      row.insertCell().textContent = text;
    }
    const resend = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Resend' });
    resend.setAttribute('aria-label', `Resend the ${EVENT_NAMES[delivery.event_type]} delivery of ${when(delivery.created_at)}`);
    resend.addEventListener('click', async () => {
      try {
        await ok(client.POST('/api/v1/webhooks/deliveries/{delivery_id}/retry', {
          params: { path: { delivery_id: delivery.delivery_id } },
        }));
        sayWebhooks(`Sent again to ${endpoint.url}.`);
        await showDeliveries(endpoint, box);
      } catch (err) {
        sayWebhooks(`Could not send it again: ${plainError(err)}`, true);
      }
    });
    row.insertCell().append(resend);
  }
  box.replaceChildren(table);
}

/** @param {Schemas['EndpointView']} endpoint */
function endpointItem(endpoint) {
  const li = document.createElement('li');
  li.className = `endpoint ${endpoint.state}`;
  li.dataset.endpointId = endpoint.endpoint_id;
  const url = Object.assign(document.createElement('strong'), { textContent: endpoint.url });
  const state = document.createElement('p');
  state.className = 'state';
  const events = endpoint.events.map((e) => EVENT_NAMES[e]).join(', ');
  state.textContent = endpoint.state === 'enabled'
    ? `Receives: ${events}.${endpoint.failing_since ? ` Failing since ${when(endpoint.failing_since)}.` : ''}`
    : `Disabled ${when(endpoint.disabled_at)}: ${endpoint.disabled_reason === 'gone'
      ? 'your server answered 410 Gone' : 'every delivery failed for five days'}. Add it again to resume.`;
  const actions = document.createElement('span');
  actions.className = 'actions';
  const deliveries = document.createElement('div');
  deliveries.className = 'deliveries';
  // Each button's name starts with its visible words, then says which endpoint.
  /** @param {string} text @param {string} label @param {() => Promise<void>} act */
  const button = (text, label, act) => {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: text });
    b.setAttribute('aria-label', `${text} ${label} ${endpoint.url}`);
    b.addEventListener('click', () => {
      const me = person;
      act().catch((err) => {
        if (me === person && !superseded(err)) sayWebhooks(`${text} failed: ${plainError(err)}`, true);
      });
    });
    actions.append(b);
  };
  button('Send test', 'to', async () => {
    await ok(client.POST('/api/v1/webhooks/endpoints/{endpoint_id}/test', {
      params: { path: { endpoint_id: endpoint.endpoint_id } },
    }));
    sayWebhooks(`Test event sent to ${endpoint.url}; see its deliveries.`);
    await showDeliveries(endpoint, deliveries);
  });
  button('Deliveries', 'to', () => showDeliveries(endpoint, deliveries));
  button('Delete', 'the endpoint', async () => {
    if (!confirm(`Stop sending events to ${endpoint.url}?`)) return;
    await ok(client.DELETE('/api/v1/webhooks/endpoints/{endpoint_id}', {
      params: { path: { endpoint_id: endpoint.endpoint_id } },
    }).then((answer) => ({ ...answer, data: answer.response.ok ? {} : undefined })));
    sayWebhooks(`${endpoint.url} deleted.`);
    await refreshWebhooks();
    $('webhook-url').focus(); // Its buttons are gone: the focus goes back to the form.
  });
  li.append(url, state, actions, deliveries);
  return li;
}

async function refreshWebhooks() {
  if (!apiKey) return;
  const me = person;
  try {
    const { endpoints } = await ok(client.GET('/api/v1/webhooks/endpoints'));
    if (me !== person) return;
    $('webhook-list').replaceChildren(...endpoints.map(endpointItem));
  } catch (err) {
    if (me !== person || superseded(err)) return;
    sayWebhooks(`Could not list your webhooks: ${plainError(err)}`, true);
  }
}

$('webhook-form').addEventListener('submit', async (/** @type {SubmitEvent} */ event) => {
  event.preventDefault();
  /** @type {Schemas['EndpointEvent'][]} */
  const events = [...document.querySelectorAll('#webhook-form input[name="event"]:checked')]
    .map((box) => /** @type {Schemas['EndpointEvent']} */ (/** @type {HTMLInputElement} */ (box).value));
  if (!events.length) {
    sayWebhooks('Choose at least one event.', true);
    return;
  }
  const description = $('webhook-description').value.trim();
  const me = person;
  try {
    const made = await ok(client.POST('/api/v1/webhooks/endpoints', {
      body: { url: $('webhook-url').value.trim(), events, ...(description ? { description } : {}) },
    }));
    if (me !== person) return;
    $('webhook-secret-url').textContent = made.url;
    $('webhook-secret-value').textContent = made.secret;
    $('webhook-secret').hidden = false;
    sayWebhooks(`Added ${made.url}. Its signing secret is below, shown this once: copy it now.`);
    $('webhook-form').reset();
    await refreshWebhooks();
  } catch (err) {
    if (me !== person || superseded(err)) return;
    sayWebhooks(`Could not add it: ${plainError(err)}`, true);
  }
});

// --- start ---------------------------------------------------------------------------------

showApiNotice();
$('api-key').value = apiKey;
loadModels().catch((err) => showAuth(`Could not list the models: ${plainError(err)}`, true));
clearViewer();
checkKey().then((accepted) => {
  if (accepted) loadPerson();
});
