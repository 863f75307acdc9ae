// @ts-check
/** Number and time formatting for the dashboard: the same rules as the CLI's stats-format.ts. */
/** @param {number} value */
export function fmtCount(value) {
  const rounded = Math.round(value);
  const sign = rounded < 0 ? '-' : '';
  return sign + String(Math.abs(rounded)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
/** @param {number} value */
export function fmtRate(value) {
  return value >= 100 ? fmtCount(value) : value.toFixed(1);
}
/** @param {number} value */
export function fmtBytes(value) {
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
export function fmtMs(value) {
  if (!Number.isFinite(value)) return '–';
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value < 1) return `${value.toFixed(2)} ms`;
  return `${value.toFixed(1)} ms`;
}
/** @param {number} fraction */
export function fmtPercent(fraction) {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(1)}%` : '–';
}
/** @param {number} value */
export function fmtTick(value) {
  return value >= 1000 ? fmtCount(value) : String(Math.round(value * 100) / 100);
}
/** @param {number} ms */
export function fmtClock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
