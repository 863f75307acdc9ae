/**
 * Reads the `--store` setting: which backend, and a form of the URL that is safe to print.
 */
import { isSecretName } from '../secret-names.js';
import { StoreConfigError } from './errors.js';

export type StoreTarget =
  | { kind: 'embedded'; persistent: boolean; displayUrl: string }
  | { kind: 'postgres'; url: string; displayUrl: string }
  | { kind: 'redis'; url: string; displayUrl: string };

const ALLOWED =
  'Use "embedded" (the default: one process, documents kept in the data dir), "memory" ' +
  '(one process, nothing kept), a PostgreSQL URL such as postgres://user:password@host:5432/database ' +
  'or a Redis URL such as redis://:password@host:6379/0 (rediss:// for TLS).';

const MASK = '***';

/** Removes credentials from a URL-ish string; unparseable input is masked generously. */
export function maskUrl(raw: string): string {
  // Everything up to the last '@' may be credentials; hiding too much is the safe mistake.
  const generous = () =>
    raw.includes('@') ? raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/is, `$1${MASK}@`) : raw;
  // `user:pass@host` parses as a URL with scheme `user:`: only `scheme://` URLs have a userinfo.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) return generous();
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return generous();
  }
  if (url.password) url.password = MASK;
  for (const name of [...url.searchParams.keys()]) {
    if (isSecretName(name)) url.searchParams.set(name, MASK);
  }
  return url.toString();
}

function configError(raw: string, problem: string): StoreConfigError {
  return new StoreConfigError(`--store "${maskUrl(raw)}": ${problem}. ${ALLOWED}`);
}

export function parseStoreUrl(raw: string): StoreTarget {
  const value = raw.trim();
  const lower = value.toLowerCase();
  // An empty value comes from an unset-but-present environment variable: take the default.
  if (lower === '' || lower === 'embedded')
    return { kind: 'embedded', persistent: true, displayUrl: 'embedded' };
  if (lower === 'memory') return { kind: 'embedded', persistent: false, displayUrl: 'memory' };

  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1]?.toLowerCase();
  if (scheme === 'redis' || scheme === 'rediss') return parseRedisUrl(value);
  if (scheme !== 'postgres' && scheme !== 'postgresql') {
    throw configError(value, scheme ? `unknown store type "${scheme}:"` : 'not a store name or URL');
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw configError(value, 'malformed PostgreSQL URL');
  }
  // `postgres:///db` (local socket or libpq defaults) is fine; `postgres:db` is a typo.
  if (!value.slice(url.protocol.length).startsWith('//')) {
    throw configError(value, 'malformed PostgreSQL URL (expected postgres://…)');
  }
  return { kind: 'postgres', url: value, displayUrl: maskUrl(value) };
}

/** `redis[s]://[[user][:password]@]host[:port][/db]`, the form node-redis accepts. */
function parseRedisUrl(value: string): StoreTarget {
  const expected = 'malformed Redis URL (expected redis://[user:password@]host[:port][/database-number])';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw configError(value, expected);
  }
  if (!value.slice(url.protocol.length).startsWith('//') || url.hostname === '') {
    throw configError(value, expected);
  }
  if (!/^\/?(\d+)?$/.test(url.pathname)) {
    throw configError(value, `${expected}: "${url.pathname.slice(1)}" is not a database number`);
  }
  return { kind: 'redis', url: value, displayUrl: maskUrl(value) };
}
