// @ts-check
/** Building the page's nodes: every text from traffic is set with textContent, never as markup. */
const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * The page's element with this id (index-html.ts declares them all).
 * @param {string} id
 * @returns {HTMLElement}
 */
export function $(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node;
}
/**
 * @param {string} id
 * @returns {HTMLInputElement}
 */
export function input(id) {
  return /** @type {HTMLInputElement} */ ($(id));
}

/**
 * @param {string} tag
 * @param {Record<string, string | number | undefined | null> | null} [props]
 * @param {Array<Node | string | null | undefined>} [children]
 */
export function el(tag, props, children) {
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
export function svg(tag, attrs, children) {
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
export function setValue(id, value, text) {
  const node = $(id);
  node.textContent = text;
  node.dataset.value = String(value);
}
/**
 * @param {number} fraction
 * @param {string} [kind]
 */
export function bar(fraction, kind) {
  const fill = el('span', { className: `bar-fill${kind ? ` ${kind}` : ''}` });
  fill.style.width = `${Math.max(0, Math.min(100, fraction * 100)).toFixed(1)}%`;
  return el('span', { className: 'bar' }, [fill]);
}
