// @ts-check
/**
 * The dashboard's script (browser ES modules, no framework, no external resource). Type-checked
 * by tsconfig.dashboard.json (DOM types) and linted with the rest; the build copies every module
 * to dist and the admin app reads them once at start-up.
 *
 *   - Signs in with the admin token typed into the form: kept in sessionStorage (this tab only),
 *     sent as `Authorization: Bearer …` by fetch, never put in a URL. A proxy without a token
 *     (loopback only) opens straight away.
 *   - Every second: GET /admin/stats/live (this replica's last 60 s) → tiles, two SVG charts and
 *     the top lists. Every 5 s: one GET /admin/dashboard/period → tiles and tables of the chosen
 *     period (all replicas), all from one read so the tiles and tables agree.
 *   - Any text that comes from traffic (routes, IPs, rule ids, account nicknames) is set with
 *     textContent only.
 *
 * Modules: format.js (numbers, times), dom.js (nodes), lists.js (top lists, tables), live.js
 * (the live view), period.js (the usage view); this one signs in, polls and wires the page.
 */
import { $, input } from './dom.js';
import { renderLive } from './live.js';
import { renderPeriod } from './period.js';

/** @typedef {import('./period.js').Period} Period */
const TOKEN_KEY = 'meli-proxy.adminToken';
const LIVE_MS = 1000;
const PERIOD_MS = 5000;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  rangeMs: 3600000,
  running: false,
  liveTimer: 0,
  periodTimer: 0,
  generation: 0,
  // Rule id → 'enforce' | 'shadow', from GET /admin/limits at each period refresh.
  ruleModes: new Map(),
};

class AuthError extends Error {}

/** @param {unknown} error */
function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

// ---------- the admin API ----------
/**
 * @param {string} path
 * @returns {Promise<any>} the parsed JSON answer; each caller names its shape
 */
async function api(path) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  let response;
  try {
    response = await fetch(path, { headers, cache: 'no-store', credentials: 'omit' });
  } catch {
    throw new Error('cannot reach the admin API');
  }
  if (response.status === 401) throw new AuthError('token rejected');
  if (!response.ok) throw new Error(`${path.split('?')[0]} answered ${response.status}`);
  return response.json();
}

// ---------- status and views ----------
/**
 * @param {string} kind
 * @param {string} text
 */
function setStatus(kind, text) {
  $('status').dataset.state = kind;
  $('status-text').textContent = text;
}
/** @param {string} text */
function showBanner(text) {
  const banner = $('banner');
  banner.hidden = !text;
  banner.textContent = text || '';
}
/** @param {string} message */
function showLogin(message) {
  stopPolling();
  $('dashboard').hidden = true;
  $('sign-out').hidden = true;
  $('login').hidden = false;
  const error = $('login-error');
  error.hidden = !message;
  error.textContent = message || '';
  setStatus('locked', 'signed out');
  input('token').value = '';
  $('token').focus();
}
function showDashboard() {
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('sign-out').hidden = !state.token;
  startPolling();
}
function tokenRejected() {
  const hadToken = Boolean(state.token);
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(hadToken ? 'The admin token was rejected: sign in again.' : '');
}

// ---------- usage over a period: every replica ----------
function periodPath() {
  return `/admin/dashboard/period?from=${Date.now() - state.rangeMs}&limit=10`;
}

// ---------- polling ----------
/**
 * @param {unknown} error
 * @param {number} generation
 * @returns {boolean} whether to keep polling
 */
function failed(error, generation) {
  if (generation !== state.generation) return false;
  if (error instanceof AuthError) {
    tokenRejected();
    return false;
  }
  setStatus('offline', 'offline, retrying');
  showBanner(`Cannot load statistics: ${messageOf(error)}. Retrying…`);
  return true;
}

/** @param {number} generation */
async function refreshLive(generation) {
  try {
    const live = await api('/admin/stats/live');
    if (generation !== state.generation) return;
    renderLive(live, state.ruleModes);
    setStatus('live', 'live');
    showBanner('');
  } catch (error) {
    if (!failed(error, generation)) return;
  }
  if (generation === state.generation) state.liveTimer = setTimeout(() => refreshLive(generation), LIVE_MS);
}

/** @param {number} generation */
async function refreshPeriod(generation) {
  try {
    /** @type {Period} */
    const period = await api(periodPath());
    // Which rules are shadow rules; an older server or a failure leaves the last known modes.
    const limits = await api('/admin/limits').catch((error) => {
      if (error instanceof AuthError) throw error;
      return undefined;
    });
    if (generation !== state.generation) return;
    if (limits && Array.isArray(limits.rules)) {
      state.ruleModes = new Map(
        limits.rules.map((/** @type {{ id: string, mode: string }} */ rule) => [rule.id, rule.mode]),
      );
    }
    renderPeriod(period, state.ruleModes);
    document.body.dataset.loaded = 'true';
  } catch (error) {
    if (!failed(error, generation)) return;
  }
  if (generation === state.generation)
    state.periodTimer = setTimeout(() => refreshPeriod(generation), PERIOD_MS);
}

function startPolling() {
  stopPolling();
  const generation = state.generation;
  refreshLive(generation);
  refreshPeriod(generation);
}

function stopPolling() {
  state.generation++;
  clearTimeout(state.liveTimer);
  clearTimeout(state.periodTimer);
}

// ---------- wiring ----------
$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = input('token').value.trim();
  const error = $('login-error');
  if (!token) {
    error.hidden = false;
    error.textContent = 'Enter the admin token.';
    return;
  }
  input('login-submit').disabled = true;
  state.token = token;
  try {
    await api('/admin/stats/live');
    sessionStorage.setItem(TOKEN_KEY, token);
    showDashboard();
  } catch (failure) {
    state.token = '';
    error.hidden = false;
    error.textContent =
      failure instanceof AuthError
        ? 'That token was rejected. Use the admin token the proxy was started with.'
        : 'Cannot reach the admin API: is meli-proxy still running?';
    input('token').select();
  } finally {
    input('login-submit').disabled = false;
  }
});

$('sign-out').addEventListener('click', () => {
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin('');
});

$('ranges').addEventListener('click', (event) => {
  const button = event.target instanceof Element ? event.target.closest('button[data-range]') : null;
  if (!(button instanceof HTMLButtonElement)) return;
  state.rangeMs = Number(button.dataset.range);
  for (const other of $('ranges').querySelectorAll('button'))
    other.setAttribute('aria-pressed', String(other === button));
  $('period-label').textContent = 'loading…';
  startPolling();
});

async function start() {
  try {
    await api('/admin/stats/live');
    showDashboard();
  } catch (error) {
    if (error instanceof AuthError) {
      const hadToken = Boolean(state.token);
      state.token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(hadToken ? 'The saved admin token was rejected: sign in again.' : '');
    } else {
      setStatus('offline', 'offline');
      $('dashboard').hidden = false;
      showBanner(`Cannot load statistics: ${messageOf(error)}. Retrying…`);
      setTimeout(start, 2000);
    }
  }
}

start();
