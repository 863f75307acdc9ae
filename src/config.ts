/**
 * One validated configuration for `meli-proxy serve`: defaults < config file < environment < flags.
 *
 * Every setting is declared once in SETTINGS; the CLI flags, the environment variable names and the
 * README's configuration reference are all derived from that table so they cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError } from './errors.js';
import { availableCores } from './server/cluster-cores.js';
import { jsonSyntaxProblem, yamlSyntaxProblem } from './syntax-errors.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface Config {
  host: string;
  port: number;
  upstream: URL;
  upstreamTimeout: number;
  upstreamConnections: number;
  upstreamPipelining: number;
  adminHost: string;
  adminPort: number;
  adminToken: string | undefined;
  trustProxy: string[];
  store: string;
  dataDir: string;
  logLevel: LogLevel;
  accessLog: boolean;
  shutdownGrace: number;
  maxRoutes: number;
  statsRetention: number;
  syncInterval: number;
  onStoreError: 'open' | 'deny';
  legacyRateLimitHeaders: boolean;
  /** Largest request body forwarded, in bytes (0: no limit). */
  maxBody: number;
  /** Longest time a client may take to send the request head (slowloris), ms. */
  headersTimeout: number;
  /** Longest time a client may take to send the whole request, ms (0: no limit). */
  requestTimeout: number;
  /** How long an idle keep-alive client connection is kept open, ms. */
  keepAliveTimeout: number;
  /** Processes serving the proxy (`serve --workers`); above 1, a node:cluster primary supervises them. */
  workers: number;
  /** Route templates from the file's `routes:` list, tried before the built-in ones. */
  routes: string[];
  injectToken: boolean;
  overrideClientToken: boolean;
  clientId: string | undefined;
  clientSecret: string | undefined;
  tokenUrl: URL;
  /** File holding the key ring that encrypts the stored token (else MELI_PROXY_TOKEN_KEY). */
  tokenKeyFile: string | undefined;
  /** Client addresses and CIDRs whose requests get the injected token. */
  injectClients: string[];
  /** Host names accepted with --inject-token besides localhost, IP literals, single labels and *.svc names. */
  injectHosts: string[];
  /** The config file read, if any (absolute path). */
  configFile: string | undefined;
  /** Anything the file holds under `limits:`; validated by the rate-limit rule parser. */
  limits: unknown[];
  /** Where each value came from, for error messages and `--print-config`. */
  sources: Partial<Record<SettingKey, string>>;
}

type Parser<T> = (raw: unknown) => T;

interface SettingSpec<T> {
  flag: string;
  env: string;
  /** Placeholder shown in --help after the flag. */
  arg: string;
  description: string;
  /** Human description of the allowed values, used in every error message. */
  allowed: string;
  defaultValue: (env: NodeJS.ProcessEnv) => T;
  /** Shown in the README instead of the computed default where it depends on the machine. */
  defaultText?: string;
  parse: Parser<T>;
  secret?: boolean;
}

class InvalidValue extends Error {}

function asString(raw: unknown): string {
  if (typeof raw === 'string') return raw.trim();
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  throw new InvalidValue();
}

function integer(min: number, max: number): Parser<number> {
  return (raw) => {
    const text = asString(raw);
    if (!/^-?\d+$/.test(text)) throw new InvalidValue();
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max) throw new InvalidValue();
    return value;
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, as a bare integer or with a unit (`500ms`, `30s`, `5m`). */
function duration(min: number, max: number): Parser<number> {
  return (raw) => {
    const match = /^(\d+)(ms|s|m|h|d)?$/.exec(asString(raw));
    if (!match) throw new InvalidValue();
    const value = Number(match[1]) * (DURATION_UNITS[match[2] ?? 'ms'] ?? 1);
    if (value < min || value > max) throw new InvalidValue();
    return value;
  };
}

const TRUE_WORDS = new Set(['on', 'true', 'yes', '1']);
const FALSE_WORDS = new Set(['off', 'false', 'no', '0']);
function boolean(raw: unknown): boolean {
  const text = asString(raw).toLowerCase();
  if (TRUE_WORDS.has(text)) return true;
  if (FALSE_WORDS.has(text)) return false;
  throw new InvalidValue();
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Bytes, as a bare integer or with a binary unit (`512kb`, `64mb`, `1gb`). */
function size(min: number, max: number): Parser<number> {
  return (raw) => {
    const match = /^(\d+)\s*(b|kb|mb|gb)?$/.exec(asString(raw).toLowerCase());
    if (!match) throw new InvalidValue();
    const value = Number(match[1]) * (SIZE_UNITS[match[2] ?? 'b'] ?? 1);
    if (!Number.isSafeInteger(value) || value < min || value > max) throw new InvalidValue();
    return value;
  };
}

/** `auto` (one per core available to this process) or a count. */
function workerCount(raw: unknown): number {
  if (asString(raw).toLowerCase() === 'auto') return availableCores();
  return integer(1, 256)(raw);
}

function hostname(raw: unknown): string {
  const text = asString(raw);
  if (!/^[A-Za-z0-9.:-]+$/.test(text) && !/^\[[0-9A-Fa-f:.]+\]$/.test(text)) throw new InvalidValue();
  return text.replace(/^\[(.*)\]$/, '$1');
}

/** An http(s) URL without credentials or fragment: the common ground of every URL setting. */
function httpUrl(raw: unknown): URL {
  let url: URL;
  try {
    url = new URL(asString(raw));
  } catch {
    throw new InvalidValue();
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidValue();
  if (url.username || url.password || url.hash) throw new InvalidValue();
  return url;
}

function upstreamUrl(raw: unknown): URL {
  const url = httpUrl(raw);
  if (url.search || url.pathname !== '/') throw new InvalidValue();
  return url;
}

const IPV4_CIDR = /^(\d{1,3})(\.\d{1,3}){3}(\/\d{1,2})?$/;
const IPV6_CIDR = /^[0-9A-Fa-f:.]+(\/\d{1,3})?$/;
function cidrList(raw: unknown): string[] {
  const items = Array.isArray(raw) ? raw.map(asString) : asString(raw).split(',');
  const list = items.map((item) => item.trim()).filter((item) => item.length > 0);
  for (const item of list) {
    if (IPV4_CIDR.test(item)) {
      const [address, bits] = item.split('/');
      if (address!.split('.').some((octet) => Number(octet) > 255)) throw new InvalidValue();
      if (bits !== undefined && Number(bits) > 32) throw new InvalidValue();
    } else if (!(item.includes(':') && IPV6_CIDR.test(item))) {
      throw new InvalidValue();
    } else {
      const bits = item.split('/')[1];
      if (bits !== undefined && Number(bits) > 128) throw new InvalidValue();
    }
  }
  return list;
}

function storeUrl(raw: unknown): string {
  const text = asString(raw);
  if (text === 'embedded' || text === 'memory') return text;
  if (/^(postgres|postgresql|redis|rediss):\/\//.test(text)) {
    try {
      new URL(text);
      return text;
    } catch {
      throw new InvalidValue();
    }
  }
  throw new InvalidValue();
}

function endpointUrl(raw: unknown): URL {
  const url = httpUrl(raw);
  // Plain http only where nothing but this machine can listen in (test peers, local mirrors).
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (url.protocol === 'http:' && !/^(localhost|::1|127(\.\d{1,3}){3})$/i.test(host))
    throw new InvalidValue();
  return url;
}

function clientId(raw: unknown): string {
  const text = asString(raw);
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(text)) throw new InvalidValue();
  return text;
}

function nonEmpty(minLength: number): Parser<string> {
  return (raw) => {
    const text = asString(raw);
    if (text.length < minLength) throw new InvalidValue();
    return text;
  };
}

function defaultDataDir(env: NodeJS.ProcessEnv): string {
  const base =
    env.XDG_DATA_HOME && env.XDG_DATA_HOME.length > 0
      ? env.XDG_DATA_HOME
      : join(env.HOME && env.HOME.length > 0 ? env.HOME : homedir(), '.local', 'share');
  return join(base, 'meli-proxy');
}

function logLevel(raw: unknown): LogLevel {
  const text = asString(raw).toLowerCase();
  const found = LOG_LEVELS.find((level) => level === text);
  if (!found) throw new InvalidValue();
  return found;
}

/** Loopback and private ranges (RFC 1918, ULA): who gets the injected token by default. */
const PRIVATE_NETWORKS = ['127.0.0.0/8', '::1', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'];

function hostNameList(raw: unknown): string[] {
  const items = Array.isArray(raw) ? raw.map(asString) : asString(raw).split(',');
  const list = items.map((item) => item.trim().toLowerCase()).filter((item) => item.length > 0);
  for (const item of list) {
    if (!/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(item))
      throw new InvalidValue();
  }
  return list;
}

export const SETTINGS = {
  host: {
    flag: '--host',
    env: 'MELI_PROXY_HOST',
    arg: '<address>',
    description: 'Address the proxy listens on (use 0.0.0.0 in containers).',
    allowed: 'an IP address or host name',
    defaultValue: () => '127.0.0.1',
    parse: hostname,
  },
  port: {
    flag: '--port',
    env: 'MELI_PROXY_PORT',
    arg: '<port>',
    description: 'Port the proxy listens on (0 picks a free port).',
    allowed: 'an integer from 0 to 65535',
    defaultValue: () => 8080,
    parse: integer(0, 65535),
  },
  upstream: {
    flag: '--upstream',
    env: 'MELI_PROXY_UPSTREAM',
    arg: '<url>',
    description: 'The one origin every request is forwarded to.',
    allowed: 'an http:// or https:// origin without path, query or credentials',
    defaultValue: () => new URL('https://api.mercadolibre.com'),
    defaultText: 'https://api.mercadolibre.com',
    parse: upstreamUrl,
  },
  upstreamTimeout: {
    flag: '--upstream-timeout',
    env: 'MELI_PROXY_UPSTREAM_TIMEOUT',
    arg: '<ms>',
    description:
      'Longest wait for the upstream response headers, and between two body chunks, before answering 504.',
    allowed: 'a duration from 1ms to 1h (e.g. 30000, 30s)',
    defaultValue: () => 30_000,
    parse: duration(1, 3_600_000),
  },
  upstreamConnections: {
    flag: '--upstream-connections',
    env: 'MELI_PROXY_UPSTREAM_CONNECTIONS',
    arg: '<n>',
    description: 'Keep-alive connections to the upstream per process.',
    allowed: 'an integer from 1 to 10000',
    defaultValue: () => 128,
    parse: integer(1, 10_000),
  },
  upstreamPipelining: {
    flag: '--upstream-pipelining',
    env: 'MELI_PROXY_UPSTREAM_PIPELINING',
    arg: '<n>',
    description: 'Idempotent requests pipelined per upstream connection (1 disables pipelining).',
    allowed: 'an integer from 1 to 100',
    defaultValue: () => 1,
    parse: integer(1, 100),
  },
  adminHost: {
    flag: '--admin-host',
    env: 'MELI_PROXY_ADMIN_HOST',
    arg: '<address>',
    description: 'Address of the admin API; it refuses a non-loopback address without an admin token.',
    allowed: 'an IP address or host name',
    defaultValue: () => '127.0.0.1',
    parse: hostname,
  },
  adminPort: {
    flag: '--admin-port',
    env: 'MELI_PROXY_ADMIN_PORT',
    arg: '<port>',
    description: 'Port of the admin API (0 picks a free port).',
    allowed: 'an integer from 0 to 65535',
    defaultValue: () => 8081,
    parse: integer(0, 65535),
  },
  adminToken: {
    flag: '--admin-token',
    env: 'MELI_PROXY_ADMIN_TOKEN',
    arg: '<token>',
    description: 'Bearer token required by the admin API. Prefer the environment variable over the flag.',
    allowed: 'a string of at least 16 characters',
    defaultValue: () => undefined,
    defaultText: '(none: admin API on loopback only)',
    parse: nonEmpty(16),
    secret: true,
  },
  trustProxy: {
    flag: '--trust-proxy',
    env: 'MELI_PROXY_TRUST_PROXY',
    arg: '<cidrs>',
    description: 'Peers whose X-Forwarded-For is believed, as a comma-separated list of addresses or CIDRs.',
    allowed: 'a comma-separated list of IPv4/IPv6 addresses or CIDRs (e.g. 10.0.0.0/8,::1)',
    defaultValue: () => [],
    defaultText: '(none)',
    parse: cidrList,
  },
  store: {
    flag: '--store',
    env: 'MELI_PROXY_STORE',
    arg: '<url>',
    description: 'Shared store: `embedded` (no server needed), `memory`, `postgres://…` or `redis://…`.',
    allowed: 'embedded, memory, or a postgres://, postgresql://, redis:// or rediss:// URL',
    defaultValue: () => 'embedded',
    parse: storeUrl,
    secret: true,
  },
  dataDir: {
    flag: '--data-dir',
    env: 'MELI_PROXY_DATA_DIR',
    arg: '<dir>',
    description: 'Where the embedded store keeps what must survive a restart.',
    allowed: 'a directory path',
    defaultValue: defaultDataDir,
    defaultText: '$XDG_DATA_HOME/meli-proxy (~/.local/share/meli-proxy)',
    parse: (raw: unknown) => resolve(nonEmpty(1)(raw)),
  },
  logLevel: {
    flag: '--log-level',
    env: 'MELI_PROXY_LOG_LEVEL',
    arg: '<level>',
    description: 'Least severe level written to the JSON log.',
    allowed: LOG_LEVELS.join(', '),
    defaultValue: () => 'info' as LogLevel,
    parse: logLevel,
  },
  accessLog: {
    flag: '--access-log',
    env: 'MELI_PROXY_ACCESS_LOG',
    arg: '<on|off>',
    description: 'Write one JSON line per proxied request.',
    allowed: 'on or off (also true/false, yes/no, 1/0)',
    defaultValue: () => true,
    defaultText: 'on',
    parse: boolean,
  },
  shutdownGrace: {
    flag: '--shutdown-grace',
    env: 'MELI_PROXY_SHUTDOWN_GRACE',
    arg: '<ms>',
    description: 'On SIGTERM/SIGINT, how long in-flight requests may take to finish before they are cut.',
    allowed: 'a duration from 0 to 1h (e.g. 10000, 10s)',
    defaultValue: () => 10_000,
    parse: duration(0, 3_600_000),
  },
  injectToken: {
    flag: '--inject-token',
    env: 'MELI_PROXY_INJECT_TOKEN',
    arg: '[on|off]',
    description:
      'Send the MercadoLibre token stored by `meli-proxy auth login` as `Authorization: Bearer …` on upstream requests that carry none, refreshing it ahead of expiry.',
    allowed: 'on or off (also true/false, yes/no, 1/0; the bare flag means on)',
    defaultValue: () => false,
    defaultText: 'off',
    parse: boolean,
  },
  overrideClientToken: {
    flag: '--override-client-token',
    env: 'MELI_PROXY_OVERRIDE_CLIENT_TOKEN',
    arg: '[on|off]',
    description:
      "With --inject-token, replace a client's own Authorization header too instead of keeping it.",
    allowed: 'on or off (also true/false, yes/no, 1/0; the bare flag means on)',
    defaultValue: () => false,
    defaultText: 'off',
    parse: boolean,
  },
  clientId: {
    flag: '--client-id',
    env: 'MELI_CLIENT_ID',
    arg: '<id>',
    description:
      'MercadoLibre application id (`auth login`; for refreshing, the one stored at login is the default).',
    allowed: 'the application id: letters, digits, dot, dash or underscore',
    defaultValue: () => undefined,
    defaultText: '(the one stored at login)',
    parse: clientId,
  },
  clientSecret: {
    flag: '--client-secret',
    env: 'MELI_CLIENT_SECRET',
    arg: '<secret>',
    description:
      'MercadoLibre application secret, needed to log in and to refresh tokens. Prefer the environment variable over the flag.',
    allowed: 'a non-empty string',
    defaultValue: () => undefined,
    defaultText: '(none)',
    parse: nonEmpty(1),
    secret: true,
  },
  tokenUrl: {
    flag: '--token-url',
    env: 'MELI_PROXY_TOKEN_URL',
    arg: '<url>',
    description:
      'OAuth token endpoint used to log in and refresh (override for tests and self-hosted mirrors).',
    allowed: 'an https:// URL (http:// only on a loopback address)',
    defaultValue: () => new URL('https://api.mercadolibre.com/oauth/token'),
    defaultText: 'https://api.mercadolibre.com/oauth/token',
    parse: endpointUrl,
  },
  maxRoutes: {
    flag: '--max-routes',
    env: 'MELI_PROXY_MAX_ROUTES',
    arg: '<n>',
    description:
      'Most distinct route labels in metrics and statistics; paths beyond it are reported as /other.',
    allowed: 'an integer from 100 to 10000',
    defaultValue: () => 256,
    parse: integer(100, 10_000),
  },
  statsRetention: {
    flag: '--stats-retention',
    env: 'MELI_PROXY_STATS_RETENTION',
    arg: '<duration>',
    description: 'How long per-minute usage statistics are kept in the store.',
    allowed: 'a duration from 1h to 400d (e.g. 7d, 36h)',
    defaultValue: () => 7 * 86_400_000,
    defaultText: '7d',
    parse: duration(3_600_000, 400 * 86_400_000),
  },
  syncInterval: {
    flag: '--sync-interval',
    env: 'MELI_PROXY_SYNC_INTERVAL',
    arg: '<ms>',
    description: 'How often shared rate-limit counters are pushed to and read from the store.',
    allowed: 'a duration from 10ms to 10s (e.g. 100, 250ms)',
    defaultValue: () => 100,
    parse: duration(10, 10_000),
  },
  onStoreError: {
    flag: '--on-store-error',
    env: 'MELI_PROXY_ON_STORE_ERROR',
    arg: '<open|deny>',
    description:
      "While the shared store is unreachable: keep limiting locally and let traffic through (open), or stop admitting past each replica's share (deny).",
    allowed: 'open or deny',
    defaultValue: () => 'open' as const,
    parse: (raw: unknown) => {
      const text = asString(raw).toLowerCase();
      if (text !== 'open' && text !== 'deny') throw new InvalidValue();
      return text;
    },
  },
  legacyRateLimitHeaders: {
    flag: '--legacy-ratelimit-headers',
    env: 'MELI_PROXY_LEGACY_RATELIMIT_HEADERS',
    arg: '<on|off>',
    description: 'Also send X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset.',
    allowed: 'on or off (also true/false, yes/no, 1/0)',
    defaultValue: () => false,
    defaultText: 'off',
    parse: boolean,
  },
  maxBody: {
    flag: '--max-body',
    env: 'MELI_PROXY_MAX_BODY',
    arg: '<size>',
    description:
      'Largest request body forwarded; a larger one gets 413 (by its Content-Length before the upstream is contacted, or as soon as a chunked body passes it). 0 means no limit.',
    allowed:
      'a byte count up to 1024gb, bare or with a binary unit kb, mb or gb (e.g. 64mb); 0 disables the limit',
    defaultValue: () => 64 * 1024 ** 2,
    defaultText: '64mb',
    parse: size(0, 1024 ** 4),
  },
  headersTimeout: {
    flag: '--headers-timeout',
    env: 'MELI_PROXY_HEADERS_TIMEOUT',
    arg: '<ms>',
    description:
      'Longest time a client may take to send the request line and headers before its connection is closed with 408 (slowloris protection).',
    allowed: 'a duration from 100ms to 10m (e.g. 10s); at most --request-timeout when that is set',
    defaultValue: () => 10_000,
    parse: duration(100, 600_000),
  },
  requestTimeout: {
    flag: '--request-timeout',
    env: 'MELI_PROXY_REQUEST_TIMEOUT',
    arg: '<ms>',
    description:
      'Longest time a client may take to send a whole request, body included, before it gets 408 and its connection is closed. 0 means no limit.',
    allowed: 'a duration from 0 to 1h (e.g. 5m); 0, or at least --headers-timeout',
    defaultValue: () => 300_000,
    parse: duration(0, 3_600_000),
  },
  keepAliveTimeout: {
    flag: '--keep-alive-timeout',
    env: 'MELI_PROXY_KEEP_ALIVE_TIMEOUT',
    arg: '<ms>',
    description:
      'How long an idle keep-alive client connection stays open; keep it above the idle timeout of the load balancer in front.',
    allowed: 'a duration from 100ms to 1h (e.g. 72s)',
    defaultValue: () => 72_000,
    parse: duration(100, 3_600_000),
  },
  workers: {
    flag: '--workers',
    env: 'MELI_PROXY_WORKERS',
    arg: '<n|auto>',
    description:
      'Processes serving the proxy on the same ports (node:cluster). Above 1 a primary process supervises them, restarts one that dies and owns the embedded store; auto is one per available core (the CPUs the process may run on, within a container CPU limit), so a pod limited to one CPU runs a single process.',
    allowed: 'an integer from 1 to 256, or auto',
    defaultValue: () => availableCores(),
    defaultText: 'auto',
    parse: workerCount,
  },
  tokenKeyFile: {
    flag: '--token-key-file',
    env: 'MELI_PROXY_TOKEN_KEY_FILE',
    arg: '<file>',
    description:
      'File with the key that encrypts the stored token (32 random bytes in base64; more keys after it, one per line, still decrypt during a rotation). Instead, the keys may be given in MELI_PROXY_TOKEN_KEY. Required for a postgres:// or redis:// store.',
    allowed: 'a file path',
    defaultValue: () => undefined,
    defaultText: '(none)',
    parse: (raw: unknown) => resolve(nonEmpty(1)(raw)),
  },
  injectClients: {
    flag: '--inject-clients',
    env: 'MELI_PROXY_INJECT_CLIENTS',
    arg: '<cidrs>',
    description:
      'With --inject-token, the client addresses (after --trust-proxy) whose requests get the token; others are forwarded without it.',
    allowed: 'a comma-separated list of IPv4/IPv6 addresses or CIDRs',
    defaultValue: () => [...PRIVATE_NETWORKS],
    defaultText: PRIVATE_NETWORKS.join(','),
    parse: cidrList,
  },
  injectHosts: {
    flag: '--inject-hosts',
    env: 'MELI_PROXY_INJECT_HOSTS',
    arg: '<names>',
    description:
      'With --inject-token, DNS names a request may carry in Host besides localhost, IP literals, single-label names and cluster-local *.svc names; any other name is refused with 421 (DNS rebinding).',
    allowed:
      'a comma-separated list of host names, each optionally starting with *. (e.g. proxy.internal,*.corp.example)',
    defaultValue: () => [],
    defaultText: '(none)',
    parse: hostNameList,
  },
} satisfies Record<string, SettingSpec<unknown>>;

export type SettingKey = keyof typeof SETTINGS;
export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

/** Keys a config file may hold besides the settings above. */
const FILE_ONLY_KEYS = new Set(['limits', 'routes']);

export interface ConfigSources {
  /** Path of a YAML or JSON file (from `--config` or MELI_PROXY_CONFIG). */
  file?: string | undefined;
  env: NodeJS.ProcessEnv;
  /** Values given as command-line flags, keyed by setting. */
  flags: Partial<Record<SettingKey, unknown>>;
  cwd?: string;
}

function invalid(key: SettingKey, value: unknown, source: string): UsageError {
  const spec: SettingSpec<unknown> = SETTINGS[key];
  const shown = spec.secret ? '(hidden)' : JSON.stringify(typeof value === 'string' ? value : value);
  return new UsageError(`Invalid ${spec.flag} ${shown} (from ${source}): expected ${spec.allowed}.`);
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(
      `Cannot read config file ${path} (${code}): pass an existing YAML or JSON file to --config.`,
    );
  }
  let data: unknown;
  try {
    data = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(
      `Config file ${path} is not valid ${extname(path).toLowerCase() === '.json' ? `JSON (${jsonSyntaxProblem(text, error as Error)})` : `YAML: ${yamlSyntaxProblem(error as Error)}`}`,
    );
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new UsageError(`Config file ${path} must hold a mapping of settings (e.g. "port: 8080").`);
  }
  return data as Record<string, unknown>;
}

/** Builds the effective configuration; throws UsageError naming the setting, value and what is allowed. */
export function loadConfig(sources: ConfigSources): Config {
  const values = new Map<SettingKey, unknown>();
  const origins: Partial<Record<SettingKey, string>> = {};
  let limits: unknown[] = [];
  let routes: string[] = [];
  let configFile: string | undefined;

  const filePath = sources.file ?? sources.env.MELI_PROXY_CONFIG;
  if (filePath) {
    const absolute = resolve(sources.cwd ?? process.cwd(), filePath);
    configFile = absolute;
    const data = readConfigFile(absolute);
    for (const [name, value] of Object.entries(data)) {
      if (name === 'limits') {
        if (!Array.isArray(value)) {
          throw new UsageError(`Config file ${absolute}: "limits" must be a list of rules.`);
        }
        limits = value;
        continue;
      }
      if (name === 'routes') {
        routes = routeTemplates(value, absolute);
        continue;
      }
      if (!(name in SETTINGS)) {
        const known = [...SETTING_KEYS, ...FILE_ONLY_KEYS].join(', ');
        throw new UsageError(`Config file ${absolute}: unknown setting "${name}". Known settings: ${known}.`);
      }
      const key = name as SettingKey;
      const source = `config file ${absolute}`;
      values.set(key, parseSetting(key, value, source));
      origins[key] = source;
    }
  }

  for (const key of SETTING_KEYS) {
    const raw = sources.env[SETTINGS[key].env];
    if (raw === undefined || raw === '') continue;
    const source = `environment variable ${SETTINGS[key].env}`;
    values.set(key, parseSetting(key, raw, source));
    origins[key] = source;
  }

  for (const key of SETTING_KEYS) {
    const raw = sources.flags[key];
    if (raw === undefined) continue;
    const source = `flag ${SETTINGS[key].flag}`;
    values.set(key, parseSetting(key, raw, source));
    origins[key] = source;
  }

  const pick = <K extends SettingKey>(key: K): ReturnType<(typeof SETTINGS)[K]['parse']> =>
    (values.has(key) ? values.get(key) : SETTINGS[key].defaultValue(sources.env)) as ReturnType<
      (typeof SETTINGS)[K]['parse']
    >;

  return {
    host: pick('host'),
    port: pick('port'),
    upstream: pick('upstream'),
    upstreamTimeout: pick('upstreamTimeout'),
    upstreamConnections: pick('upstreamConnections'),
    upstreamPipelining: pick('upstreamPipelining'),
    adminHost: pick('adminHost'),
    adminPort: pick('adminPort'),
    adminToken: pick('adminToken'),
    trustProxy: pick('trustProxy'),
    store: pick('store'),
    dataDir: pick('dataDir'),
    logLevel: pick('logLevel'),
    accessLog: pick('accessLog'),
    shutdownGrace: pick('shutdownGrace'),
    maxRoutes: pick('maxRoutes'),
    statsRetention: pick('statsRetention'),
    syncInterval: pick('syncInterval'),
    onStoreError: pick('onStoreError'),
    legacyRateLimitHeaders: pick('legacyRateLimitHeaders'),
    maxBody: pick('maxBody'),
    ...serverTimeouts(pick('headersTimeout'), pick('requestTimeout'), origins),
    keepAliveTimeout: pick('keepAliveTimeout'),
    workers: pick('workers'),
    routes,
    injectToken: pick('injectToken'),
    overrideClientToken: pick('overrideClientToken'),
    clientId: pick('clientId'),
    clientSecret: pick('clientSecret'),
    tokenUrl: pick('tokenUrl'),
    tokenKeyFile: pick('tokenKeyFile'),
    injectClients: pick('injectClients'),
    injectHosts: pick('injectHosts'),
    configFile,
    limits,
    sources: origins,
  };
}

/** Node refuses a headers timeout longer than the request timeout: say so in our own words. */
function serverTimeouts(
  headersTimeout: number,
  requestTimeout: number,
  origins: Partial<Record<SettingKey, string>>,
): { headersTimeout: number; requestTimeout: number } {
  if (requestTimeout > 0 && headersTimeout > requestTimeout) {
    const from = (key: SettingKey) => origins[key] ?? 'the default';
    throw new UsageError(
      `Invalid --headers-timeout ${headersTimeout} ms (from ${from('headersTimeout')}): it must not exceed --request-timeout ${requestTimeout} ms (from ${from('requestTimeout')}). Raise --request-timeout, lower --headers-timeout, or set --request-timeout 0.`,
    );
  }
  return { headersTimeout, requestTimeout };
}

const ROUTE_TEMPLATE =
  /^\/([A-Za-z0-9._~-]+|:[A-Za-z_][A-Za-z0-9_]*|\*)?(\/([A-Za-z0-9._~-]+|:[A-Za-z_][A-Za-z0-9_]*|\*))*$/;

function routeTemplates(value: unknown, file: string): string[] {
  if (!Array.isArray(value)) {
    throw new UsageError(
      `Config file ${file}: "routes" must be a list of path templates such as /items/:id.`,
    );
  }
  return value.map((item, index) => {
    if (typeof item !== 'string' || !ROUTE_TEMPLATE.test(item)) {
      throw new UsageError(
        `Config file ${file}: routes[${index}] ${JSON.stringify(item)} is not a path template: expected segments, ":name" parameters or "*" (e.g. /items/:id/pictures).`,
      );
    }
    return item;
  });
}

function parseSetting(key: SettingKey, raw: unknown, source: string): unknown {
  const spec: SettingSpec<unknown> = SETTINGS[key];
  try {
    return spec.parse(raw);
  } catch (error) {
    if (error instanceof InvalidValue) throw invalid(key, raw, source);
    throw error;
  }
}

/** The default of a setting as the README and --help show it. */
export function defaultText(key: SettingKey): string {
  const spec: SettingSpec<unknown> = SETTINGS[key];
  if (spec.defaultText) return spec.defaultText;
  const value = spec.defaultValue({});
  return value === undefined ? '(none)' : String(value);
}

/** A copy safe to print: secrets replaced, credentials removed from URLs. */
export function redactConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    upstream: config.upstream.origin,
    adminToken: config.adminToken ? '(set)' : '(none)',
    clientSecret: config.clientSecret ? '(set)' : '(none)',
    tokenUrl: config.tokenUrl.href,
    store: maskUrl(config.store),
    sources: undefined,
  };
}

/** Removes the password (and any user info) from a URL-like string. */
export function maskUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return value;
  }
}
