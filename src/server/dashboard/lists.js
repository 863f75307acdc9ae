// @ts-check
/** The top lists and tables both views fill: one row per key, with its count and share. */
import { $, bar, el } from './dom.js';
import { fmtCount, fmtPercent } from './format.js';

/**
 * @typedef {{ key: string, requests: number }} TopEntry
 * @typedef {{ key: string, name?: string, requests: number, bytes: number, latencyMsAvg: number }} StatsRow
 * @typedef {(row: StatsRow) => Node} Column
 */

// A shadow rule's hits are exceedances it let through, an enforced rule's are rejections.
/**
 * @param {string} key
 * @param {ReadonlyMap<string, string>} ruleModes rule id → 'enforce' | 'shadow'
 */
export function ruleKey(key, ruleModes) {
  const shadow = ruleModes.get(key) === 'shadow';
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
export function fillTopList(id, entries, emptyText, keyOf) {
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

/**
 * @param {number} columns
 * @param {string} text
 */
export function emptyRow(columns, text) {
  return el('tr', { className: 'empty' }, [el('td', { colspan: columns, text: text })]);
}

/**
 * @param {string} id
 * @param {StatsRow[]} rows
 * @param {Column[]} columns
 * @param {string} emptyText
 */
export function fillTable(id, rows, columns, emptyText) {
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
export const keyCell = (row) => el('td', { className: 'key', text: row.key, title: row.key });
/** @type {Column} */
export const countCell = (row) => el('td', { className: 'num', text: fmtCount(row.requests) });
/**
 * @param {number} total
 * @param {(row: StatsRow) => string} [kindOf]
 * @returns {Column}
 */
export function shareCell(total, kindOf) {
  return (row) =>
    el('td', { className: 'bar-col' }, [
      el('div', { className: 'bar-wrap' }, [
        bar(total > 0 ? row.requests / total : 0, kindOf ? kindOf(row) : ''),
        el('span', { className: 'share', text: fmtPercent(total > 0 ? row.requests / total : Number.NaN) }),
      ]),
    ]);
}
/** @param {StatsRow} row */
export function statusKind(row) {
  if (row.key === '429') return 'warn';
  if (row.key.startsWith('5')) return 'bad';
  if (row.key.startsWith('4')) return 'muted';
  return '';
}
