/**
 * Request paths as rules see them, and the patterns rules match them with.
 *
 * Normalisation (RFC 3986 §6.2.2) exists so that `/items/%4DLA1`, `/items//MLA1` and
 * `/x/../items/MLA1` cannot dodge a rule on `/items/*`: unreserved percent-encodings are decoded,
 * other encodings get upper-case hex (`%2F` stays encoded: it is data, not a separator), runs of `/`
 * collapse, `.` and `..` segments resolve (also when spelt `%2e`), `..` never climbs above the root,
 * and the query and fragment are dropped. A trailing slash is kept (the origin may tell `/a/` from
 * `/a`), but patterns ignore it: `/items/:id` matches `/items/MLA1/` too.
 *
 * Patterns: literal segments match exactly (case-sensitive, after the same normalisation);
 * `:name` matches exactly one segment; `*` as the last segment matches one or more segments (prefix
 * semantics, what nginx/Kong users expect from `/items/*`), and elsewhere exactly one. `/items/*`
 * therefore matches `/items/MLA1` and `/items/MLA1/pictures` but not `/items` or `/items/`.
 * Matching walks the string with indexOf: no regex, no split, no allocation per request.
 */

export const LITERAL = 0;
export const ONE = 1;
export const REST = 2;

export interface PathPattern {
  /** The pattern as normalised, e.g. `/items/*`; usable as a metrics label. */
  readonly source: string;
  readonly kinds: Uint8Array;
  readonly literals: readonly string[];
}

export const PATH_EXPECTED =
  'a path pattern starting with "/" where ":name" matches one segment and a final "*" matches the rest ' +
  '(e.g. /items/*, /categories/:id)';

/** Normalises a request target (origin-form, or absolute-form as proxies receive it). */
export function normalizePath(target: string): string {
  let path = target;
  if (path.charCodeAt(0) !== 47) path = stripAbsoluteForm(path);
  let end = path.length;
  let clean = true;
  let previous = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 63 || c === 35) {
      end = i;
      break;
    }
    // `%`, `//` and `/.` are the only ways a path can differ from its normal form.
    if (c === 37 || (previous === 47 && (c === 47 || c === 46))) clean = false;
    previous = c;
  }
  if (clean) return end === path.length ? path : path.slice(0, end);
  return normalizeSlow(path.slice(0, end));
}

function stripAbsoluteForm(target: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  if (scheme) {
    const rest = target.slice(scheme[0].length);
    return rest.charCodeAt(0) === 47 ? rest : `/${rest}`;
  }
  return `/${target}`;
}

function normalizeSlow(path: string): string {
  const out: string[] = [];
  const raw = path.split('/');
  // raw[0] is the empty string before the leading slash.
  for (let i = 1; i < raw.length; i++) {
    const segment = decodeUnreserved(raw[i] as string);
    const last = i === raw.length - 1;
    if (segment === '..') {
      out.pop();
      if (last) out.push('');
    } else if (segment === '.') {
      if (last) out.push('');
    } else if (segment === '') {
      if (last) out.push('');
    } else {
      out.push(segment);
    }
  }
  return `/${out.join('/')}`;
}

function decodeUnreserved(segment: string): string {
  if (segment.indexOf('%') < 0) return segment;
  let result = '';
  let from = 0;
  for (let i = segment.indexOf('%'); i >= 0 && i + 2 < segment.length; i = segment.indexOf('%', i + 1)) {
    const hex = segment.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) continue;
    const code = Number.parseInt(hex, 16);
    result += segment.slice(from, i);
    result += isUnreserved(code) ? String.fromCharCode(code) : `%${hex.toUpperCase()}`;
    from = i + 3;
    i += 2;
  }
  return result + segment.slice(from);
}

function isUnreserved(c: number): boolean {
  return (
    (c >= 65 && c <= 90) ||
    (c >= 97 && c <= 122) ||
    (c >= 48 && c <= 57) ||
    c === 45 ||
    c === 46 ||
    c === 95 ||
    c === 126
  );
}

/** Compiles a rule's path pattern; returns the reason as a string when it is not valid. */
export function compilePathPattern(pattern: string): PathPattern | string {
  const text = pattern.trim();
  if (text.charCodeAt(0) !== 47) return 'it must start with "/"';
  if (/[?#]/.test(text)) return 'a pattern matches the path only, without "?" or "#"';
  if (/\s/.test(text)) return 'it must not contain spaces';
  const normal = normalizePath(text);
  const segments = normal === '/' ? [] : normal.slice(1).split('/');
  if (segments.length > 0 && segments[segments.length - 1] === '') segments.pop();
  const kinds = new Uint8Array(segments.length);
  const literals: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    if (segment === '*') {
      kinds[i] = i === segments.length - 1 ? REST : ONE;
    } else if (segment.startsWith(':')) {
      if (!/^:[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) return `"${segment}" is not a parameter like :id`;
      kinds[i] = ONE;
    } else if (segment.includes('*')) {
      return `"*" must be a whole segment, as in /items/*`;
    } else {
      kinds[i] = LITERAL;
    }
    literals.push(segment);
  }
  return { source: segments.length === 0 ? '/' : `/${segments.join('/')}`, kinds, literals };
}

/** Matches a normalised path (see normalizePath) against a compiled pattern. */
export function matchPath(pattern: PathPattern, path: string): boolean {
  const { kinds, literals } = pattern;
  const length = path.length;
  let pos = 1;
  for (let i = 0; i < kinds.length; i++) {
    if (pos >= length) return false;
    let end = path.indexOf('/', pos);
    if (end < 0) end = length;
    if (end === pos) return false;
    const kind = kinds[i];
    if (kind === REST) return true;
    if (kind === LITERAL) {
      const literal = literals[i] as string;
      if (end - pos !== literal.length || !path.startsWith(literal, pos)) return false;
    }
    pos = end + 1;
  }
  return pos >= length;
}
