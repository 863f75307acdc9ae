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

const SECRET_QUERY_PARAMS = /([?&](?:access_token|refresh_token|client_secret|code|token)=)[^&#]*/gi;

/** A request target safe to log: query parameters that carry credentials are masked. */
export function loggableUrl(url: string): string {
  return url.includes('=') ? url.replace(SECRET_QUERY_PARAMS, '$1[redacted]') : url;
}

export type { Logger };
