// @ts-check
/** The live view: this replica's last 60 s as tiles, two SVG charts and the top lists. */
import { $, setValue, svg } from './dom.js';
import { fmtClock, fmtCount, fmtMs, fmtPercent, fmtRate, fmtTick } from './format.js';
import { fillTopList, ruleKey } from './lists.js';

/**
 * @typedef {import('./lists.js').TopEntry} TopEntry
 * @typedef {{ t: number, requests: number, rateLimited: number, errors: number, p50Ms: number, p99Ms: number }} LiveSecond
 * @typedef {{ now?: number, seconds?: LiveSecond[], window?: { p50Ms: number, p99Ms: number },
 *   topRoutes?: TopEntry[], topIps?: TopEntry[], topRules?: TopEntry[] }} Live
 */

/** The window the headline figures claim, as the server's live window has it. */
const WINDOW_SECONDS = 10;

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

/**
 * @param {Live} live
 * @param {ReadonlyMap<string, string>} ruleModes rule id → 'enforce' | 'shadow'
 */
export function renderLive(live, ruleModes) {
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
  fillTopList('live-rules', live.topRules, 'no rule hit in the last minute', (key) =>
    ruleKey(key, ruleModes),
  );
  $('live-updated').textContent = `updated ${fmtClock(live.now || Date.now())}`;
}
