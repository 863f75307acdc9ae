// @ts-check
/**
 * The dashboard's script (a browser ES module, no framework, no external resource). Type-checked
 * by tsconfig.dashboard.json (DOM types) and linted with the rest; the build copies it to dist and
 * the admin app reads it once at start-up.
 *
 *   - Signs in with the admin token typed into the form: kept in sessionStorage (this tab only),
 *     sent as `Authorization: Bearer …` by fetch, never put in a URL. A proxy without a token
 *     (loopback only) opens straight away.
 *   - Every second: GET /admin/stats/live (this replica's last 60 s) → tiles, two SVG charts and
 *     the top lists. Every 5 s: one GET /admin/dashboard/period → tiles and tables of the chosen
 *     period (all replicas), all from one read so the tiles and tables agree.
 *   - Any text that comes from traffic (routes, IPs, rule ids) is set with textContent only.
 */
/**
 * @typedef {{ t: number, requests: number, rateLimited: number, errors: number, p50Ms: number, p99Ms: number }} LiveSecond
 * @typedef {{ key: string, requests: number }} TopEntry
 * @typedef {{ now?: number, seconds?: LiveSecond[], window?: { p50Ms: number, p99Ms: number },
 *   topRoutes?: TopEntry[], topIps?: TopEntry[], topRules?: TopEntry[] }} Live
 * @typedef {{ key: string, requests: number, bytes: number, latencyMsAvg: number }} StatsRow
 * @typedef {{ requests: number, rateLimited: number, errors: number, bytes: number, latencyMsAvg: number }} Totals
 * @typedef {{ from: string, to: string, totals: Totals,
 *   groups: { route: StatsRow[], status: StatsRow[], rule: StatsRow[], ip: StatsRow[] } }} Period
 * @typedef {(row: StatsRow) => Node} Column
 */
const TOKEN_KEY = 'meli-proxy.adminToken';
const LIVE_MS = 1000;
const PERIOD_MS = 5000;
const WINDOW_SECONDS = 10;
const SVG_NS = 'http://www.w3.org/2000/svg';

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

/**
 * The page's element with this id (index-html.ts declares them all).
 * @param {string} id
 * @returns {HTMLElement}
 */
function $(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}
/**
 * @param {string} id
 * @returns {HTMLInputElement}
 */
function input(id) {
  return /** @type {HTMLInputElement} */ ($(id));
}

// ---------- formatting (the same rules as the CLI's stats-format.ts) ----------
/** @param {number} value */
function fmtCount(value) {
  const rounded = Math.round(value);
  const sign = rounded < 0 ? '-' : '';
  return sign + String(Math.abs(rounded)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
/** @param {number} value */
function fmtRate(value) {
  return value >= 100 ? fmtCount(value) : value.toFixed(1);
}
/** @param {number} value */
function fmtBytes(value) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let scaled = value;
  let unit = 0;
  while (Math.abs(scaled) >= 1000 && unit < units.length - 1) {
    scaled /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.round(scaled)} B` : `${scaled.toFixed(1)} ${units[unit]}`;
}
/** @param {number} value */
function fmtMs(value) {
  if (!Number.isFinite(value)) return '–';
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value < 1) return `${value.toFixed(2)} ms`;
  return `${value.toFixed(1)} ms`;
}
/** @param {number} fraction */
function fmtPercent(fraction) {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(1)}%` : '–';
}
/** @param {number} value */
function fmtTick(value) {
  return value >= 1000 ? fmtCount(value) : String(Math.round(value * 100) / 100);
}
/** @param {number} ms */
function fmtClock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// ---------- DOM helpers ----------
/**
 * @param {string} tag
 * @param {Record<string, string | number | undefined | null> | null} [props]
 * @param {Array<Node | string | null | undefined>} [children]
 */
function el(tag, props, children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name === 'className') node.className = String(value);
      else node.setAttribute(name, String(value));
    }
  }
  for (const child of children || []) if (child) node.append(child);
  return node;
}
/**
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {Array<Node | null | undefined>} [children]
 */
function svg(tag, attrs, children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === 'text') node.textContent = String(value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children || []) if (child) node.append(child);
  return node;
}
/**
 * @param {string} id
 * @param {number} value
 * @param {string} text
 */
function setValue(id, value, text) {
  const node = $(id);
  node.textContent = text;
  node.dataset.value = String(value);
}
/**
 * @param {number} fraction
 * @param {string} [kind]
 */
function bar(fraction, kind) {
  const fill = el('span', { className: `bar-fill${kind ? ` ${kind}` : ''}` });
  fill.style.width = `${Math.max(0, Math.min(100, fraction * 100)).toFixed(1)}%`;
  return el('span', { className: 'bar' }, [fill]);
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

// ---------- live: this replica, last 60 s ----------
/** @param {Live} live */
function summarize(live) {
  const seconds = live.seconds || [];
  const complete = seconds.length > 1 ? seconds.slice(0, -1) : seconds;
  const window = complete.slice(-WINDOW_SECONDS);
  const span = Math.max(1, window.length);
  let requests = 0;
  let limited = 0;
  let errors = 0;
  for (const second of window) {
    requests += second.requests;
    limited += second.rateLimited;
    errors += second.errors;
  }
  const latest = complete.findLast((second) => second.requests > 0);
  // Latency over the same 10 s as the rates, from the server's merged buckets; an older server
  // sends only per-second figures: then the latest second that saw traffic.
  const windowed = live.window && requests > 0 ? live.window : undefined;
  return {
    rps: requests / span,
    limited: limited / span,
    errorRate: requests > 0 ? errors / requests : Number.NaN,
    p50: windowed ? windowed.p50Ms : latest ? latest.p50Ms : Number.NaN,
    p99: windowed ? windowed.p99Ms : latest ? latest.p99Ms : Number.NaN,
  };
}

/** @param {number} value */
function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

const CHART = { width: 640, height: 190, left: 46, right: 10, top: 10, bottom: 24 };

/**
 * @param {number} max
 * @param {(value: number) => string} formatTick
 */
function chartFrame(max, formatTick) {
  const plotH = CHART.height - CHART.top - CHART.bottom;
  const root = svg('svg', {
    viewBox: `0 0 ${CHART.width} ${CHART.height}`,
    class: 'chart-svg',
    role: 'img',
  });
  for (let i = 0; i <= 4; i++) {
    const y = CHART.top + plotH - (plotH * i) / 4;
    root.append(svg('line', { x1: CHART.left, x2: CHART.width - CHART.right, y1: y, y2: y, class: 'grid' }));
    root.append(
      svg('text', {
        x: CHART.left - 6,
        y: y + 4,
        class: 'tick',
        'text-anchor': 'end',
        text: formatTick((max * i) / 4),
      }),
    );
  }
  const plotW = CHART.width - CHART.left - CHART.right;
  for (const [fraction, label] of /** @type {Array<[number, string]>} */ ([
    [0, '-60 s'],
    [0.5, '-30 s'],
    [1, 'now'],
  ])) {
    root.append(
      svg('text', {
        x: CHART.left + plotW * fraction,
        y: CHART.height - 6,
        class: 'tick',
        'text-anchor': fraction === 0 ? 'start' : fraction === 1 ? 'end' : 'middle',
        text: label,
      }),
    );
  }
  return root;
}

/** @param {LiveSecond[]} seconds */
function drawRequests(seconds) {
  const max = niceMax(Math.max(0, ...seconds.map((s) => s.requests)));
  const root = chartFrame(max, fmtTick);
  root.setAttribute('aria-label', 'requests per second over the last 60 seconds');
  const plotW = CHART.width - CHART.left - CHART.right;
  const plotH = CHART.height - CHART.top - CHART.bottom;
  const slot = plotW / Math.max(1, seconds.length);
  const base = CHART.top + plotH;
  seconds.forEach((second, index) => {
    const x = CHART.left + index * slot + 1;
    const w = Math.max(1, slot - 2);
    const errors = Math.min(second.errors, second.requests);
    const limited = Math.min(second.rateLimited, second.requests - errors);
    const ok = second.requests - errors - limited;
    let y = base;
    for (const [value, kind] of /** @type {Array<[number, string]>} */ ([
      [ok, 'ok'],
      [limited, 'warn'],
      [errors, 'bad'],
    ])) {
      if (value <= 0) continue;
      const h = (value / max) * plotH;
      y -= h;
      const rect = svg('rect', { x: x, y: y, width: w, height: Math.max(0.5, h), class: `bar-${kind}` });
      rect.append(
        svg('title', {
          text: `${new Date(second.t * 1000).toLocaleTimeString()} · ${fmtCount(value)} ${kind}`,
        }),
      );
      root.append(rect);
    }
  });
  $('chart-requests').replaceChildren(root);
}

/** @param {LiveSecond[]} seconds */
function drawLatency(seconds) {
  const max = niceMax(Math.max(0, ...seconds.map((s) => (s.requests > 0 ? s.p99Ms : 0))));
  const root = chartFrame(max, fmtTick);
  root.setAttribute('aria-label', 'latency p50 and p99 over the last 60 seconds, in milliseconds');
  const plotW = CHART.width - CHART.left - CHART.right;
  const plotH = CHART.height - CHART.top - CHART.bottom;
  const slot = plotW / Math.max(1, seconds.length);
  for (const [field, kind] of /** @type {Array<['p99Ms' | 'p50Ms', string]>} */ ([
    ['p99Ms', 'p99'],
    ['p50Ms', 'p50'],
  ])) {
    let path = '';
    let pen = false;
    seconds.forEach((second, index) => {
      if (second.requests <= 0) {
        pen = false;
        return;
      }
      const x = CHART.left + index * slot + slot / 2;
      const y = CHART.top + plotH - (Math.min(second[field], max) / max) * plotH;
      path += `${(pen ? 'L' : 'M') + x.toFixed(1)} ${y.toFixed(1)} `;
      pen = true;
    });
    if (path) root.append(svg('path', { d: path.trim(), class: `line-${kind}` }));
    // Lone points (a second with traffic between idle ones) still show.
    seconds.forEach((second, index) => {
      const before = seconds[index - 1];
      const after = seconds[index + 1];
      if (second.requests <= 0 || (before && before.requests > 0) || (after && after.requests > 0)) return;
      const x = CHART.left + index * slot + slot / 2;
      const y = CHART.top + plotH - (Math.min(second[field], max) / max) * plotH;
      root.append(svg('circle', { cx: x, cy: y, r: 2.5, class: `dot-${kind}` }));
    });
  }
  $('chart-latency').replaceChildren(root);
}

// A shadow rule's hits are exceedances it let through, an enforced rule's are rejections.
/** @param {string} key */
function ruleKey(key) {
  const shadow = state.ruleModes.get(key) === 'shadow';
  return el('span', { className: 'key', title: key + (shadow ? ' (shadow: exceeded, let through)' : '') }, [
    document.createTextNode(key),
    ...(shadow ? [el('span', { className: 'chip muted mode', text: 'shadow' })] : []),
  ]);
}

/**
 * @param {string} id
 * @param {TopEntry[] | undefined} entries
 * @param {string} emptyText
 * @param {(key: string) => HTMLElement} [keyOf]
 */
function fillTopList(id, entries, emptyText, keyOf) {
  const list = $(id);
  if (!entries || entries.length === 0) {
    list.replaceChildren(el('li', { className: 'empty', text: emptyText }));
    return;
  }
  const max = Math.max(...entries.map((entry) => entry.requests));
  list.replaceChildren(
    ...entries.map((entry) =>
      el('li', { 'data-key': entry.key, 'data-value': entry.requests }, [
        keyOf ? keyOf(entry.key) : el('span', { className: 'key', text: entry.key, title: entry.key }),
        el('span', { className: 'num', text: fmtCount(entry.requests) }),
        bar(max > 0 ? entry.requests / max : 0),
      ]),
    ),
  );
}

/** @param {Live} live */
function renderLive(live) {
  const seconds = live.seconds || [];
  const summary = summarize(live);
  setValue('live-rps', summary.rps, fmtRate(summary.rps));
  setValue('live-429', summary.limited, fmtRate(summary.limited));
  setValue('live-5xx', summary.errorRate, fmtPercent(summary.errorRate));
  setValue('live-p50', summary.p50, fmtMs(summary.p50));
  setValue('live-p99', summary.p99, fmtMs(summary.p99));
  drawRequests(seconds);
  drawLatency(seconds);
  fillTopList('live-routes', live.topRoutes, 'no traffic in the last minute');
  fillTopList('live-ips', live.topIps, 'no traffic in the last minute');
  fillTopList('live-rules', live.topRules, 'no rule hit in the last minute', ruleKey);
  $('live-updated').textContent = `updated ${fmtClock(live.now || Date.now())}`;
}

// ---------- usage over a period: every replica ----------
function periodPath() {
  return `/admin/dashboard/period?from=${Date.now() - state.rangeMs}&limit=10`;
}

/**
 * @param {number} columns
 * @param {string} text
 */
function emptyRow(columns, text) {
  return el('tr', { className: 'empty' }, [el('td', { colspan: columns, text: text })]);
}

/**
 * @param {string} id
 * @param {StatsRow[]} rows
 * @param {Column[]} columns
 * @param {string} emptyText
 */
function fillTable(id, rows, columns, emptyText) {
  const body = $(id);
  if (rows.length === 0) {
    body.replaceChildren(emptyRow(columns.length, emptyText));
    return;
  }
  body.replaceChildren(
    ...rows.map((row) =>
      el(
        'tr',
        { 'data-key': row.key, 'data-value': row.requests },
        columns.map((column) => column(row)),
      ),
    ),
  );
}

/** @type {Column} */
const keyCell = (row) => el('td', { className: 'key', text: row.key, title: row.key });
/** @type {Column} */
const countCell = (row) => el('td', { className: 'num', text: fmtCount(row.requests) });
/**
 * @param {number} total
 * @param {(row: StatsRow) => string} [kindOf]
 * @returns {Column}
 */
function shareCell(total, kindOf) {
  return (row) =>
    el('td', { className: 'bar-col' }, [
      el('div', { className: 'bar-wrap' }, [
        bar(total > 0 ? row.requests / total : 0, kindOf ? kindOf(row) : ''),
        el('span', { className: 'share', text: fmtPercent(total > 0 ? row.requests / total : Number.NaN) }),
      ]),
    ]);
}
/** @param {StatsRow} row */
function statusKind(row) {
  if (row.key === '429') return 'warn';
  if (row.key.startsWith('5')) return 'bad';
  if (row.key.startsWith('4')) return 'muted';
  return '';
}

/** @param {Period} period one read of the store: the tiles and every table agree */
function renderPeriod(period) {
  const { totals, groups } = period;
  setValue('total-requests', totals.requests, fmtCount(totals.requests));
  setValue('total-rate-limited', totals.rateLimited, fmtCount(totals.rateLimited));
  setValue('total-errors', totals.errors, fmtCount(totals.errors));
  setValue('total-bytes', totals.bytes, fmtBytes(totals.bytes));
  setValue('total-latency', totals.latencyMsAvg, totals.requests > 0 ? fmtMs(totals.latencyMsAvg) : '–');
  fillTable(
    'routes-body',
    groups.route,
    [
      keyCell,
      countCell,
      shareCell(totals.requests),
      (row) => el('td', { className: 'num', text: fmtBytes(row.bytes) }),
      (row) => el('td', { className: 'num', text: fmtMs(row.latencyMsAvg) }),
    ],
    'No requests in this period.',
  );
  fillTable(
    'status-body',
    groups.status,
    [
      (row) =>
        el('td', { className: 'key' }, [el('span', { className: `chip ${statusKind(row)}`, text: row.key })]),
      countCell,
      shareCell(totals.requests, statusKind),
    ],
    'No requests in this period.',
  );
  fillTable(
    'rules-body',
    groups.rule,
    [(row) => el('td', {}, [ruleKey(row.key)]), countCell],
    'No rule rejected a request.',
  );
  fillTable(
    'ips-body',
    groups.ip,
    [keyCell, countCell, shareCell(totals.requests)],
    'No requests in this period.',
  );
  const from = new Date(period.from);
  const to = new Date(period.to);
  $('period-label').textContent =
    from.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) +
    ' → ' +
    to.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
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
    renderLive(live);
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
    renderPeriod(period);
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
