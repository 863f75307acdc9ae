import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.js';
import { prettyDestination } from './log-pretty.js';
import { isSecretName } from './secret-names.js';

/**
 * Paths that could ever carry a secret if someone logged a whole object by mistake; our own log
 * lines never include headers, tokens or the admin token in the first place.
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'adminToken',
  'clientSecret',
  'client_secret',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'password',
];

/** Whether a log format setting means human lines on this output (`auto`: when it is a terminal). */
export function isPrettyLog(
  format: 'auto' | 'json' | 'pretty',
  out: { isTTY?: boolean } = process.stdout,
): boolean {
  return format === 'pretty' || (format === 'auto' && out.isTTY === true);
}

/** Standard output as the log's destination, in the chosen format. */
export function logDestination(format: 'auto' | 'json' | 'pretty'): DestinationStream | undefined {
  return isPrettyLog(format) ? prettyDestination(process.stdout) : undefined;
}

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'meli-proxy' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** Masks the values of secret `name=value` pairs in `part`, split on `separator`. */
function maskPairs(part: string, separator: string, skipFirst: boolean): string {
  const pairs = part.split(separator);
  let masked = false;
  for (let i = skipFirst ? 1 : 0; i < pairs.length; i++) {
    const pair = pairs[i]!;
    const equals = pair.indexOf('=');
    const name = equals === -1 ? pair : pair.slice(0, equals);
    if (isSecretName(name)) {
      pairs[i] = `${name}=[redacted]`;
      masked = true;
    }
  }
  return masked ? pairs.join(separator) : part;
}

/**
 * A request target safe to log: query parameters and path parameters (`/a;access_token=…`) that
 * carry credentials are masked, whatever the spelling of their name (`access%5Ftoken` is
 * `access_token` to the API); a fragment is masked the same way as a query.
 */
export function loggableUrl(url: string): string {
  if (!url.includes('=')) return url;
  const hash = url.indexOf('#');
  const end = hash === -1 ? url.length : hash;
  const query = url.indexOf('?');
  const pathEnd = query === -1 || query > end ? end : query;
  let path = url.slice(0, pathEnd);
  if (path.includes(';'))
    path = path
      .split('/')
      .map((segment) => maskPairs(segment, ';', true))
      .join('/');
  const search = pathEnd === end ? '' : `?${maskPairs(url.slice(pathEnd + 1, end), '&', false)}`;
  const fragment = hash === -1 ? '' : `#${maskPairs(url.slice(hash + 1), '&', false)}`;
  return `${path}${search}${fragment}`;
}

interface DestinationState {
  _writing?: boolean;
  _len?: number;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Waits until every log line written so far has left the process (bounded by `timeoutMs`). pino's
 * asynchronous destination may still hold lines when the process exits; `flush()` alone does not
 * wait for a write already in progress.
 */
export async function flushLogger(logger: Logger, timeoutMs = 2000): Promise<void> {
  logger.flush();
  const stream = (logger as unknown as Record<symbol, DestinationState | undefined>)[pino.symbols.streamSym];
  if (!stream || typeof stream.once !== 'function') return;
  if (!stream._writing && (stream._len ?? 0) === 0) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    stream.once('drain', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export type { Logger };
