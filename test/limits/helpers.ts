import type { LimitRequest } from '../../src/limits/matcher.js';

export interface RequestInit {
  ip?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  tokenHash?: string;
}

export function request(init: RequestInit = {}): LimitRequest {
  const headers = init.headers ?? {};
  return {
    ip: init.ip ?? '10.0.0.1',
    method: init.method ?? 'GET',
    path: init.path ?? '/',
    header: (name) => headers[name],
    tokenHash: () => init.tokenHash,
  };
}

/** Aligned to every window size, so tests start at the beginning of a fresh window. */
export const T0 = 1_700_006_400_000;
