/**
 * A small client for the proxy's admin API, shared by the commands that talk to a running proxy
 * (`stats`, `top`, `limits`). It finds the API (--admin-url, else MELI_PROXY_ADMIN_URL, else
 * http://127.0.0.1:8081), sends the admin token (MELI_PROXY_ADMIN_TOKEN) as a bearer token, and
 * turns every failure into a message that says what to do:
 *
 *   nothing listening        RuntimeFailure (exit 1) "no proxy admin API at URL: is `meli-proxy serve` running?"
 *   401                      RuntimeFailure (exit 1) "admin token rejected: set MELI_PROXY_ADMIN_TOKEN …"
 *   400 (bad query)          UsageError (exit 2) with the API's own message
 *   anything else            RuntimeFailure (exit 1) naming the URL and the status
 *
 * The token never appears in an error message.
 */
import { RuntimeFailure, UsageError } from '../errors.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8081';
export const ADMIN_URL_ENV = 'MELI_PROXY_ADMIN_URL';
export const ADMIN_TOKEN_ENV = 'MELI_PROXY_ADMIN_TOKEN';

export const GROUP_BYS = ['route', 'ip', 'status', 'rule', 'account'] as const;
export type GroupBy = (typeof GROUP_BYS)[number];

/** `GET /admin/stats` query. Times are sent as ISO-8601. */
export interface StatsQuery {
  from?: Date;
  to?: Date;
  groupBy?: GroupBy;
  limit?: number;
}

export interface StatsRow {
  key: string;
  /** Grouped by account: the account's nickname, when the proxy holds it. */
  name?: string;
  requests: number;
  bytes: number;
  latencyMsAvg: number;
}

export interface StatsTotals {
  requests: number;
  bytes: number;
  latencyMsAvg: number;
  rateLimited: number;
  errors: number;
}

/** `GET /admin/stats` answer. */
export interface StatsResponse {
  from: string;
  to: string;
  /** The whole minutes the counts cover, when they differ from from/to (statistics are per minute). */
  counted?: { from: string; to: string };
  groupBy: GroupBy;
  rows: StatsRow[];
  totals: StatsTotals;
}

export interface LiveSecond {
  /** Epoch seconds. */
  t: number;
  requests: number;
  rateLimited: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
}

export interface TopEntry {
  key: string;
  requests: number;
}

/** `GET /admin/stats/live` answer: the last 60 seconds, oldest first. */
export interface LiveStats {
  now: number;
  seconds: LiveSecond[];
  /** Latency over the last 10 complete seconds (absent from older servers). */
  window?: { seconds: number; p50Ms: number; p99Ms: number };
  topRoutes: TopEntry[];
  topIps: TopEntry[];
  topRules: TopEntry[];
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** Query parameters; a list is sent as the same name repeated. */
export type AdminQuery = Record<string, string | readonly string[] | undefined>;

export interface AdminRequest {
  method?: 'GET' | 'PUT' | 'POST' | 'DELETE';
  query?: AdminQuery;
  /** Sent as JSON. */
  body?: unknown;
  /** Error statuses the caller explains itself: returned instead of thrown. */
  accept?: readonly number[];
}

export interface AdminAnswer<T> {
  status: number;
  body: T;
}

export interface AdminClientOptions {
  /** Base URL of the admin API (scheme optional: `127.0.0.1:8081` means http://127.0.0.1:8081). */
  baseUrl: string;
  token?: string;
  /** Per request (default 10 s). */
  timeoutMs?: number;
  fetch?: FetchLike;
}

/** Where the admin API is and which token to send: the flag, else the environment, else the default. */
export function adminClientOptions(
  env: NodeJS.ProcessEnv,
  flags: { adminUrl?: string } = {},
): AdminClientOptions {
  const token = env[ADMIN_TOKEN_ENV]?.trim();
  return {
    baseUrl: flags.adminUrl ?? (env[ADMIN_URL_ENV]?.trim() || DEFAULT_ADMIN_URL),
    ...(token ? { token } : {}),
  };
}

/** Validates and normalises an admin base URL: http(s) only, no path/query, no trailing slash. */
export function normaliseAdminUrl(text: string): string {
  const trimmed = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(
      `Invalid admin URL "${text}": expected something like ${DEFAULT_ADMIN_URL} (--admin-url or ${ADMIN_URL_ENV}).`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`Invalid admin URL "${text}": only http:// and https:// are supported.`);
  }
  if (url.username || url.password) {
    throw new UsageError(
      `Invalid admin URL "${url.host}": no credentials in the URL; set ${ADMIN_TOKEN_ENV} instead.`,
    );
  }
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ECONNRESET',
  'UND_ERR_SOCKET',
]);

/** The errno-style code somewhere in a fetch failure's cause chain. */
function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    // AggregateError (several addresses tried): the first one's code.
    const errors = (current as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0) {
      current = errors[0];
      continue;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The `message` of the API's error body (MercadoLibre's shape), when there is one. */
function apiMessage(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as { message?: unknown };
    return typeof body.message === 'string' ? body.message : undefined;
  } catch {
    return undefined;
  }
}

export class AdminClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly fetchImpl: FetchLike;

  constructor(options: AdminClientOptions) {
    this.baseUrl = normaliseAdminUrl(options.baseUrl);
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** GET a JSON document from the admin API; `path` starts with /admin/. */
  async getJson<T>(path: string, query: AdminQuery = {}): Promise<T> {
    return (await this.request<T>(path, { query })).body;
  }

  /**
   * One admin API call with any method and an optional JSON body. Failures become the errors
   * described at the top of this file, except the statuses listed in `accept`, which come back as
   * `{ status, body }` (the API's error body parsed) for the caller to explain in its own words.
   */
  async request<T>(path: string, options: AdminRequest = {}): Promise<AdminAnswer<T>> {
    const method = options.method ?? 'GET';
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value === undefined) continue;
      for (const item of typeof value === 'string' ? [value] : value) params.append(name, item);
    }
    const search = params.size > 0 ? `?${params.toString()}` : '';
    const url = `${this.baseUrl}${path}${search}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(this.timeoutMs) };
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }

    let response: Response;
    try {
      response = await this.fetchImpl(url, init);
    } catch (error) {
      const name = (error as { name?: unknown }).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new RuntimeFailure(
          `the proxy admin API at ${this.baseUrl} did not answer within ${Math.round(this.timeoutMs / 1000)} s.`,
        );
      }
      const cause = (error as { cause?: { message?: unknown } }).cause;
      if (cause?.message === 'bad port') {
        throw new UsageError(
          `the admin URL ${this.baseUrl} uses a port fetch refuses to connect to (a "bad port" of the Fetch standard): run the admin API on another port.`,
        );
      }
      const code = causeCode(error);
      if (code === 'ECONNREFUSED') {
        throw new RuntimeFailure(`no proxy admin API at ${this.baseUrl}: is \`meli-proxy serve\` running?`);
      }
      if (code && UNREACHABLE_CODES.has(code)) {
        throw new RuntimeFailure(
          `no proxy admin API at ${this.baseUrl} (${code}): is \`meli-proxy serve\` running, and is --admin-url / ${ADMIN_URL_ENV} right?`,
        );
      }
      throw new RuntimeFailure(
        `could not reach the proxy admin API at ${this.baseUrl}: ${(error as Error).message}${code ? ` (${code})` : ''}`,
      );
    }

    const text = await response.text().catch(() => '');
    if (options.accept?.includes(response.status)) {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      return { status: response.status, body: body as T };
    }
    if (response.status === 401) {
      throw new RuntimeFailure(
        this.token
          ? `admin token rejected: set ${ADMIN_TOKEN_ENV} to the proxy's admin token (the one given to \`meli-proxy serve\`).`
          : `admin token rejected: set ${ADMIN_TOKEN_ENV} (the proxy at ${this.baseUrl} requires one).`,
      );
    }
    if (response.status === 400) {
      throw new UsageError(`the admin API refused the request: ${apiMessage(text) ?? text.slice(0, 200)}`);
    }
    if (response.status === 404) {
      throw new RuntimeFailure(
        `${this.baseUrl}${path} does not exist: is ${this.baseUrl} the admin port of a meli-proxy of this version?`,
      );
    }
    if (!response.ok) {
      const detail = apiMessage(text);
      throw new RuntimeFailure(
        `the proxy admin API at ${this.baseUrl} answered ${response.status}${detail ? `: ${detail}` : ''}`,
      );
    }
    try {
      return { status: response.status, body: JSON.parse(text) as T };
    } catch {
      throw new RuntimeFailure(
        `the proxy admin API at ${this.baseUrl} answered ${path} with something that is not JSON.`,
      );
    }
  }

  stats(query: StatsQuery = {}): Promise<StatsResponse> {
    return this.getJson<StatsResponse>('/admin/stats', {
      from: query.from?.toISOString(),
      to: query.to?.toISOString(),
      groupBy: query.groupBy,
      limit: query.limit === undefined ? undefined : String(query.limit),
    });
  }

  live(): Promise<LiveStats> {
    return this.getJson<LiveStats>('/admin/stats/live');
  }
}
