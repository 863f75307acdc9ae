// @ts-check
/** The usage view: every replica's statistics over the chosen period, as tiles and tables. */
import { $, el, setValue } from './dom.js';
import { fmtBytes, fmtCount, fmtMs } from './format.js';
import { countCell, fillTable, keyCell, ruleKey, shareCell, statusKind } from './lists.js';

/**
 * @typedef {import('./lists.js').StatsRow} StatsRow
 * @typedef {import('./lists.js').Column} Column
 * @typedef {{ requests: number, rateLimited: number, errors: number, bytes: number, latencyMsAvg: number }} Totals
 * @typedef {{ from: string, to: string, totals: Totals, groups: { route: StatsRow[], status: StatsRow[],
 *   rule: StatsRow[], ip: StatsRow[], account?: StatsRow[] } }} Period
 */

/**
 * An account by user id, with its nickname when the proxy holds it.
 * @type {Column}
 */
const accountCell = (row) =>
  el('td', { className: 'key', title: row.name ? `${row.name} (${row.key})` : row.key }, [
    document.createTextNode(row.key),
    ...(row.name
      ? [el('span', { className: 'chip muted mode', text: row.name, 'data-testid': 'account-name' })]
      : []),
  ]);

/**
 * @param {Period} period one read of the store: the tiles and every table agree
 * @param {ReadonlyMap<string, string>} ruleModes rule id → 'enforce' | 'shadow'
 */
export function renderPeriod(period, ruleModes) {
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
    [(row) => el('td', {}, [ruleKey(row.key, ruleModes)]), countCell],
    'No rule rejected a request.',
  );
  fillTable(
    'ips-body',
    groups.ip,
    [keyCell, countCell, shareCell(totals.requests)],
    'No requests in this period.',
  );
  // The share is of every request: those sent with no injected token are in no account's row.
  fillTable(
    'accounts-body',
    groups.account ?? [],
    [
      accountCell,
      countCell,
      shareCell(totals.requests),
      (row) => el('td', { className: 'num', text: fmtBytes(row.bytes) }),
    ],
    'No request was sent with an injected token in this period.',
  );
  const from = new Date(period.from);
  const to = new Date(period.to);
  $('period-label').textContent =
    from.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) +
    ' → ' +
    to.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
