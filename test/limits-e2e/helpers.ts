/**
 * Shared by the rate-limit end-to-end suites (and test/cli/limits*.test.ts):
 *
 *   cli(argv, env)               runCli in this process with captured stdout/stderr
 *   Clients                      keep-alive undici pools per (proxy, local address); hit() one request
 *   roomInWindow(windowMs, ms)   waits (bounded) until the current aligned window has `ms` left, so an
 *                                "exactly N then 429" burst cannot straddle a window boundary
 *   waitFor(check, ms, what)     polls until check() is truthy; fails naming `what`
 *   offerLoad(urls, path, …)     the accuracy loop: `offered` requests round-robin over replicas,
 *                                tallied; accuracyBound() is the documented bound it is held to
 *   metric(text, name, labels)   one sample from Prometheus text
 */
import { Pool } from 'undici';
import { expect } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { TEST_SECRETS } from '../support/secrets.js';

export const ADMIN_TOKEN = TEST_SECRETS.adminToken;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function cli(argv: string[], env: Record<string, string> = {}, cwd = process.cwd()) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env,
    cwd,
  });
  return { code, stdout, stderr } satisfies CliResult;
}

/** Fails with the command's output when it did not exit as expected. */
export function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) {
    throw new Error(
      `expected exit ${code}, got ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

/**
 * Waits until the current window of `windowMs` (aligned to the epoch, as the limiter's windows are)
 * has at least `neededMs` left; returns the end of the window the caller will work in.
 */
export async function roomInWindow(windowMs: number, neededMs: number): Promise<number> {
  const now = Date.now();
  const left = windowMs - (now % windowMs);
  if (left >= neededMs) return now + left;
  await sleep(left + 20);
  const start = Date.now();
  return start - (start % windowMs) + windowMs;
}

export interface Hit {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Keep-alive pools per (origin, local address): a client "at 127.0.0.3" is one of these. */
export class Clients {
  private readonly pools = new Map<string, Pool>();

  pool(url: string, localAddress?: string, connections = 8): Pool {
    const key = `${url} ${localAddress ?? ''}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(url, {
        connections,
        ...(localAddress ? { localAddress } : {}),
        keepAliveTimeout: 10_000,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  async hit(
    url: string,
    path: string,
    options: { from?: string; headers?: Record<string, string>; method?: string } = {},
  ): Promise<Hit> {
    const response = await this.pool(url, options.from).request({
      path,
      method: (options.method ?? 'GET') as 'GET',
      headers: options.headers ?? {},
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    const body = await response.body.text();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    return { status: response.statusCode, headers, body };
  }

  /** `count` requests, at most `concurrency` at a time; statuses in order of sending. */
  async burst(
    url: string,
    path: string,
    count: number,
    options: { from?: string; headers?: Record<string, string>; concurrency?: number } = {},
  ): Promise<Hit[]> {
    const results: Hit[] = new Array(count);
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const index = next++;
        results[index] = await this.hit(url, path, options);
      }
    };
    await Promise.all(Array.from({ length: Math.min(count, options.concurrency ?? 8) }, worker));
    return results;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.close().catch(() => undefined)));
    this.pools.clear();
  }
}

export interface LoadTally {
  /** Requests sent (all of them unless the hang deadline passed first). */
  offered: number;
  admitted: number;
  rejected: number;
  /** Neither 200 nor 429: always a failure. */
  other: number;
  perReplica: number[];
  /** From the first request sent to the last answer received (epoch ms). */
  startedAt: number;
  lastDoneAt: number;
}

/**
 * The accuracy loop of the multi-replica suites: `offered` requests to `path`, `concurrency` at a
 * time, each concurrent client going round-robin over the replicas from its own starting point, so
 * every replica sees an even share at once; each client waits `pauseMs` (default 0) after each
 * answer. Throws when still sending at `hangMs` (a hang, not a slow machine).
 */
export async function offerLoad(
  urls: readonly string[],
  path: string,
  options: { offered: number; concurrency: number; hangMs: number; pauseMs?: number },
): Promise<LoadTally> {
  const { offered, concurrency, hangMs, pauseMs = 0 } = options;
  const clients = new Clients();
  const startedAt = Date.now();
  const deadline = startedAt + hangMs;
  const tally: LoadTally = {
    offered: 0,
    admitted: 0,
    rejected: 0,
    other: 0,
    perReplica: urls.map(() => 0),
    startedAt,
    lastDoneAt: startedAt,
  };
  const client = async (c: number) => {
    for (let i = 0; tally.offered < offered; i++) {
      if (Date.now() > deadline)
        throw new Error(`offered only ${tally.offered} of ${offered} in ${hangMs} ms`);
      tally.offered++;
      const replica = (c + i) % urls.length;
      const hit = await clients.hit(urls[replica]!, path);
      tally.lastDoneAt = Date.now();
      if (hit.status === 429) tally.rejected++;
      else if (hit.status === 200) {
        tally.admitted++;
        tally.perReplica[replica]!++;
      } else tally.other++;
      if (pauseMs > 0) await sleep(pauseMs);
    }
  };
  try {
    // The connections spread over the replicas, so each replica's pool is used in full.
    for (const url of urls) clients.pool(url, undefined, Math.max(1, Math.ceil(concurrency / urls.length)));
    await Promise.all(Array.from({ length: concurrency }, (_, c) => client(c)));
  } finally {
    await clients.close();
  }
  return tally;
}

/**
 * The most a window may admit under approximate sharing (docs/rate-limiting.md): limit + burst +
 * 2 × replicas, where replicas are what the store sees (one per serving process).
 */
export function accuracyBound(limit: number, burst: number, replicas: number): number {
  return limit + burst + 2 * replicas;
}

/** Counts statuses, e.g. { 200: 10, 429: 1 }. */
export function statusCounts(hits: readonly Hit[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const hit of hits) counts[hit.status] = (counts[hit.status] ?? 0) + 1;
  return counts;
}

/**
 * Checks a 429 as the proxy must send it: Retry-After in whole seconds (within the window), the
 * draft-11 RateLimit and RateLimit-Policy naming the rule, and MercadoLibre's error body.
 */
export function expectRejectedBy(hit: Hit, rule: string, quota: number, windowSeconds: number): void {
  expect(hit.status, `expected a 429 from rule ${rule}, got ${hit.status}: ${hit.body}`).toBe(429);
  const retryAfter = hit.headers['retry-after'];
  expect(retryAfter).toMatch(/^[1-9]\d*$/);
  expect(Number(retryAfter)).toBeLessThanOrEqual(windowSeconds);
  expect(hit.headers['ratelimit-policy']).toBe(`"${rule}";q=${quota};w=${windowSeconds}`);
  expect(hit.headers.ratelimit).toBe(`"${rule}";r=0;t=${retryAfter}`);
  expect(hit.headers['content-type']).toMatch(/^application\/json/);
  expect(JSON.parse(hit.body)).toEqual({
    message: `Rate limit "${rule}" exceeded: retry in ${retryAfter} s.`,
    error: 'too_many_requests',
    status: 429,
    cause: [],
  });
}

/** The value of one sample in Prometheus text, or undefined. Labels must match exactly as written. */
export function metric(text: string, name: string, labels = ''): number | undefined {
  const prefix = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length).trim().split(' ')[0]);
}

/** GET on the admin API with the test token. */
export async function admin<T>(adminUrl: string, path: string): Promise<T> {
  const response = await fetch(`${adminUrl}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (!response.ok) throw new Error(`GET ${path} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

export interface AdminRule {
  id: string;
  source: string;
  matched: number;
  rejected: number;
  shadowExceeded: number;
  mode?: string;
  limit: string;
}

export async function adminRules(adminUrl: string): Promise<AdminRule[]> {
  return (await admin<{ rules: AdminRule[] }>(adminUrl, '/admin/limits')).rules;
}
