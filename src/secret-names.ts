/**
 * Which parameter names carry credentials, for everything that prints a URL: request targets in
 * logs (query and `;name=value` path parameters) and store URLs. Hiding a harmless value is the
 * safe mistake, so names are matched by the usual words as well as by a list of exact spellings.
 */
const EXACT = new Set([
  'code',
  'key',
  'sig',
  'sid',
  'auth',
  'jwt',
  'pwd',
  'credential',
  'credentials',
  'authorization',
]);

const WORDS = /pass|secret|token|session|api[-_]?key|signature|private[-_]?key/;

/** The name as a server reads it: percent-decoded, `+` as space, trimmed and lower-cased. */
function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' ')).trim().toLowerCase();
  } catch {
    return name.trim().toLowerCase();
  }
}

/** Whether a parameter called `name` (as written in a URL) may hold a secret. */
export function isSecretName(name: string): boolean {
  const decoded = decodedName(name);
  return EXACT.has(decoded) || WORDS.test(decoded);
}
