import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.js';

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

const SECRET_PARAMS = new Set(['access_token', 'refresh_token', 'client_secret', 'code', 'token']);

function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' ')).trim().toLowerCase();
  } catch {
    return name.toLowerCase();
  }
}

/**
 * A request target safe to log: query parameters that carry credentials are masked, whatever the
 * spelling of their name (`access%5Ftoken` is `access_token` to the API).
 */
export function loggableUrl(url: string): string {
  const query = url.indexOf('?');
  if (query === -1 || !url.includes('=', query)) return url;
  const hash = url.indexOf('#', query);
  const end = hash === -1 ? url.length : hash;
  const params = url.slice(query + 1, end).split('&');
  let masked = false;
  for (let i = 0; i < params.length; i++) {
    const param = params[i]!;
    const equals = param.indexOf('=');
    const name = equals === -1 ? param : param.slice(0, equals);
    if (SECRET_PARAMS.has(decodedName(name))) {
      params[i] = `${name}=[redacted]`;
      masked = true;
    }
  }
  return masked ? `${url.slice(0, query + 1)}${params.join('&')}${url.slice(end)}` : url;
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
