/**
 * One validated configuration for `meli-proxy serve`: defaults < config file < environment < flags.
 *
 * Every setting is declared once, in SETTINGS below: its schema (what values it takes and what the
 * code gets), its default, and the text of --help and the reference. The `Config` type, the flag
 * (`--upstream-timeout`, from the key) and environment variable (`MELI_PROXY_UPSTREAM_TIMEOUT`)
 * names, the commander options of `serve` and docs/configuration.md are all derived from it.
 * To add a setting, add one entry here (value kinds are in settings/values.ts) and run `npm run docs`.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ACCOUNT_ROUTE_SYNTAX, accountRef, accountRouteList } from './auth/account-routes.js';
import { UsageError } from './errors.js';
import { availableCores } from './settings/cores.js';
import {
  declareSettings,
  defaultShown,
  parseSettingValue,
  type SettingValue,
  setting,
} from './settings/declare.js';
import { readConfigFile, routeTemplates } from './settings/file.js';
import {
  applicationId,
  cidrList,
  directory,
  duration,
  endpointUrl,
  hostNameList,
  hostname,
  integer,
  nonEmpty,
  oneOf,
  onOff,
  size,
  storeUrl,
  upstreamUrl,
  workerCount,
} from './settings/values.js';
import { maskUrl } from './store/url.js';

/** Loopback and private ranges (RFC 1918, ULA): who gets the injected token by default. */
const PRIVATE_NETWORKS = ['127.0.0.0/8', '::1', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function defaultDataDir(env: NodeJS.ProcessEnv): string {
  const base =
    env.XDG_DATA_HOME && env.XDG_DATA_HOME.length > 0
      ? env.XDG_DATA_HOME
      : join(env.HOME && env.HOME.length > 0 ? env.HOME : homedir(), '.local', 'share');
  return join(base, 'meli-proxy');
}

export const SETTINGS = declareSettings({
  host: setting({
    schema: hostname,
    default: '127.0.0.1',
    arg: '<address>',
    description: 'Address the proxy listens on (use 0.0.0.0 in containers).',
    allowed: 'an IP address or host name',
  }),
  port: setting({
    schema: integer(0, 65535),
    default: 8080,
    arg: '<port>',
    description: 'Port the proxy listens on (0 picks a free port).',
    allowed: 'an integer from 0 to 65535',
  }),
  upstream: setting({
    schema: upstreamUrl,
    default: () => new URL('https://api.mercadolibre.com'),
    arg: '<url>',
    description: 'The one origin every request is forwarded to.',
    allowed: 'an http:// or https:// origin without path, query or credentials',
    defaultText: 'https://api.mercadolibre.com',
  }),
  upstreamTimeout: setting({
    schema: duration(1, 3_600_000),
    default: 30_000,
    arg: '<ms>',
    description:
      'Longest wait for the upstream response headers, and between two body chunks, before answering 504.',
    allowed: 'a duration from 1ms to 1h (e.g. 30000, 30s)',
  }),
  upstreamConnections: setting({
    schema: integer(1, 10_000),
    default: 128,
    arg: '<n>',
    description: 'Keep-alive connections to the upstream per process.',
    allowed: 'an integer from 1 to 10000',
  }),
  clientStallTimeout: setting({
    schema: duration(100, 600_000),
    default: 5_000,
    arg: '<ms>',
    description:
      'Longest a client may pause while sending a request body, or leave a response unread, before its connection is cut (408 when nothing was answered yet) and its upstream connection freed.',
    allowed: 'a duration from 100ms to 10m (e.g. 5s)',
  }),
  bodyBuffer: setting({
    schema: size(0, 16 * 1024 ** 2),
    default: 16 * 1024,
    arg: '<size>',
    description:
      'Request bodies up to this size are received whole before an upstream connection is taken, so slow small uploads never hold one; larger bodies stream. 0 streams every body.',
    allowed: 'a byte count up to 16mb, bare or with a binary unit kb or mb (e.g. 16kb)',
    defaultText: '16kb',
  }),
  upstreamWaitTimeout: setting({
    schema: duration(1, 600_000),
    default: 5_000,
    arg: '<ms>',
    description:
      'Longest a request waits for a free upstream connection (all --upstream-connections busy) before it is answered 503.',
    allowed: 'a duration from 1ms to 10m (e.g. 5s)',
  }),
  upstreamConnectionsPerClient: setting({
    schema: integer(0, 10_000),
    default: 64,
    arg: '<n>',
    description:
      'Upstream requests one client address may have in flight at once; one more is answered 503 at once. Behind a load balancer, set --trust-proxy so each client counts on its own. 0 means no cap.',
    allowed: 'an integer from 0 to 10000',
  }),
  underscoresInHeaders: setting({
    schema: onOff,
    default: false,
    arg: '<on|off>',
    description:
      'Forward request header names that contain an underscore. Off by default (as nginx): CGI-style origins read X_Forwarded_For as X-Forwarded-For.',
    allowed: 'on or off (also true/false, yes/no, 1/0)',
    defaultText: 'off',
  }),
  maxHeaderFields: setting({
    schema: integer(8, 2000),
    default: 100,
    arg: '<n>',
    description: 'Most header fields a request may carry; one with more is answered 431.',
    allowed: 'an integer from 8 to 2000',
  }),
  adminHost: setting({
    schema: hostname,
    default: '127.0.0.1',
    arg: '<address>',
    description: 'Address of the admin API; it refuses a non-loopback address without an admin token.',
    allowed: 'an IP address or host name',
  }),
  adminPort: setting({
    schema: integer(0, 65535),
    default: 8081,
    arg: '<port>',
    description: 'Port of the admin API (0 picks a free port).',
    allowed: 'an integer from 0 to 65535',
  }),
  adminToken: setting({
    schema: nonEmpty(16),
    arg: '<token>',
    description: 'Bearer token required by the admin API. Prefer the environment variable over the flag.',
    allowed: 'a string of at least 16 characters',
    defaultText: '(none: admin API on loopback only)',
    secret: true,
  }),
  trustProxy: setting({
    schema: cidrList,
    default: () => [],
    arg: '<cidrs>',
    description: 'Peers whose X-Forwarded-For is believed, as a comma-separated list of addresses or CIDRs.',
    allowed: 'a comma-separated list of IPv4/IPv6 addresses or CIDRs (e.g. 10.0.0.0/8,::1)',
    defaultText: '(none)',
  }),
  store: setting({
    schema: storeUrl,
    default: 'embedded',
    arg: '<url>',
    description: 'Shared store: `embedded` (no server needed), `memory`, `postgres://…` or `redis://…`.',
    allowed: 'embedded, memory, or a postgres://, postgresql://, redis:// or rediss:// URL',
    secret: true,
  }),
  dataDir: setting({
    schema: directory,
    default: defaultDataDir,
    arg: '<dir>',
    description: 'Where the embedded store keeps what must survive a restart.',
    allowed: 'a directory path',
    defaultText: '$XDG_DATA_HOME/meli-proxy (~/.local/share/meli-proxy)',
  }),
  logLevel: setting({
    schema: oneOf(LOG_LEVELS),
    default: 'info',
    arg: '<level>',
    description: 'Least severe level written to the JSON log.',
    allowed: LOG_LEVELS.join(', '),
  }),
  logFormat: setting({
    schema: oneOf(['auto', 'json', 'pretty']),
    default: 'auto',
    arg: '<auto|json|pretty>',
    description:
      'How log lines are written: JSON lines (pino), or pretty lines and a start-up summary for a person; auto is pretty on a terminal and JSON otherwise.',
    allowed: 'auto, json or pretty',
  }),
  accessLog: setting({
    schema: onOff,
    default: true,
    arg: '<on|off>',
    description: 'Write one JSON line per proxied request.',
    allowed: 'on or off (also true/false, yes/no, 1/0)',
    defaultText: 'on',
  }),
  shutdownGrace: setting({
    schema: duration(0, 3_600_000),
    default: 10_000,
    arg: '<ms>',
    description: 'On SIGTERM/SIGINT, how long in-flight requests may take to finish before they are cut.',
    allowed: 'a duration from 0 to 1h (e.g. 10000, 10s)',
  }),
  injectToken: setting({
    schema: onOff,
    default: false,
    arg: '[on|off]',
    description:
      'Send the MercadoLibre token stored by `meli-proxy auth login` as `Authorization: Bearer …` on upstream requests that carry none, refreshing it ahead of expiry.',
    allowed: 'on or off (also true/false, yes/no, 1/0; the bare flag means on)',
    defaultText: 'off',
  }),
  overrideClientToken: setting({
    schema: onOff,
    default: false,
    arg: '[on|off]',
    description:
      "With --inject-token, replace a client's own Authorization header too instead of keeping it.",
    allowed: 'on or off (also true/false, yes/no, 1/0; the bare flag means on)',
    defaultText: 'off',
  }),
  tokenKeyFile: setting({
    schema: directory,
    arg: '<file>',
    description:
      'File with the key that encrypts the stored token (32 random bytes in base64; more keys after it, one per line, still decrypt during a rotation). Instead, the keys may be given in MELI_PROXY_TOKEN_KEY. Required for a postgres:// or redis:// store.',
    allowed: 'a file path',
    defaultText: '(none)',
  }),
  injectClients: setting({
    schema: cidrList,
    default: [...PRIVATE_NETWORKS],
    arg: '<cidrs>',
    description:
      'With --inject-token, the client addresses (after --trust-proxy) whose requests get the token; others are forwarded without it.',
    allowed: 'a comma-separated list of IPv4/IPv6 addresses or CIDRs',
    defaultText: PRIVATE_NETWORKS.join(','),
  }),
  injectHosts: setting({
    schema: hostNameList,
    default: [],
    arg: '<names>',
    description:
      'With --inject-token, DNS names a request may carry in Host besides localhost, IP literals, single-label names and cluster-local *.svc names; any other name is refused with 421 (DNS rebinding).',
    allowed:
      'a comma-separated list of host names, each optionally starting with *. (e.g. proxy.internal,*.corp.example)',
    defaultText: '(none)',
  }),
  clientId: setting({
    schema: applicationId,
    env: 'MELI_CLIENT_ID',
    arg: '<id>',
    description:
      'MercadoLibre application id (`auth login`; for refreshing, the one stored at login is the default).',
    allowed: 'the application id: letters, digits, dot, dash or underscore',
    defaultText: '(the one stored at login)',
  }),
  clientSecret: setting({
    schema: nonEmpty(1),
    env: 'MELI_CLIENT_SECRET',
    arg: '<secret>',
    description:
      'MercadoLibre application secret, needed to log in and to refresh tokens. Prefer the environment variable over the flag.',
    allowed: 'a non-empty string',
    defaultText: '(none)',
    secret: true,
  }),
  tokenUrl: setting({
    schema: endpointUrl,
    default: () => new URL('https://api.mercadolibre.com/oauth/token'),
    arg: '<url>',
    description:
      'OAuth token endpoint used to log in and refresh (override for tests and self-hosted mirrors).',
    allowed: 'an https:// URL (http:// only on a loopback address)',
    defaultText: 'https://api.mercadolibre.com/oauth/token',
  }),
  maxRoutes: setting({
    schema: integer(100, 10_000),
    default: 256,
    arg: '<n>',
    description:
      'Most distinct route labels in metrics and statistics; paths beyond it are reported as /other.',
    allowed: 'an integer from 100 to 10000',
  }),
  statsRetention: setting({
    schema: duration(3_600_000, 400 * 86_400_000),
    default: 7 * 86_400_000,
    arg: '<duration>',
    description: 'How long per-minute usage statistics are kept in the store.',
    allowed: 'a duration from 1h to 400d (e.g. 7d, 36h)',
    defaultText: '7d',
  }),
  syncInterval: setting({
    schema: duration(10, 10_000),
    default: 100,
    arg: '<ms>',
    description: 'How often shared rate-limit counters are pushed to and read from the store.',
    allowed: 'a duration from 10ms to 10s (e.g. 100, 250ms)',
  }),
  onStoreError: setting({
    schema: oneOf(['open', 'deny']),
    default: 'open',
    arg: '<open|deny>',
    description:
      "While the shared store is unreachable: keep limiting locally and let traffic through (open), or stop admitting past each replica's share (deny).",
    allowed: 'open or deny',
  }),
  storeTimeout: setting({
    schema: duration(100, 60_000),
    default: 2_000,
    arg: '<ms>',
    description:
      'Longest a shared rate-limit operation (a counter push, or an exactly counted request) may wait for PostgreSQL or Redis before the store counts as unreachable and --on-store-error decides. Raise it for a store that is slow but up, so requests are not decided without it.',
    allowed: 'a duration from 100ms to 1m (e.g. 2s)',
  }),
  exactPerReplica: setting({
    schema: integer(0, 1000),
    default: 25,
    arg: '<n>',
    description:
      'Replicas sharing PostgreSQL or Redis count a rule exactly (one atomic store operation per request) when its limit + burst is below n × the live replicas, where approximate sharing (up to about 2 × replicas over per window) would be too coarse; other rules are shared approximately. A rule can say `counting: exact` or `approximate` itself. 0 leaves it to the rules.',
    allowed: 'an integer from 0 to 1000',
  }),
  legacyRateLimitHeaders: setting({
    schema: onOff,
    default: false,
    flag: '--legacy-ratelimit-headers',
    env: 'MELI_PROXY_LEGACY_RATELIMIT_HEADERS',
    arg: '<on|off>',
    description: 'Also send X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset.',
    allowed: 'on or off (also true/false, yes/no, 1/0)',
    defaultText: 'off',
  }),
  maxBody: setting({
    schema: size(0, 1024 ** 4),
    default: 64 * 1024 ** 2,
    arg: '<size>',
    description:
      'Largest request body forwarded; a larger one gets 413 (by its Content-Length before the upstream is contacted, or as soon as a chunked body passes it). 0 means no limit.',
    allowed:
      'a byte count up to 1024gb, bare or with a binary unit kb, mb or gb (e.g. 64mb); 0 disables the limit',
    defaultText: '64mb',
  }),
  headersTimeout: setting({
    schema: duration(100, 600_000),
    default: 10_000,
    arg: '<ms>',
    description:
      'Longest time a client may take to send the request line and headers before its connection is closed with 408 (slowloris protection).',
    allowed: 'a duration from 100ms to 10m (e.g. 10s); at most --request-timeout when that is set',
  }),
  requestTimeout: setting({
    schema: duration(0, 3_600_000),
    default: 300_000,
    arg: '<ms>',
    description:
      'Longest time a client may take to send a whole request, body included, before it gets 408 and its connection is closed. 0 means no limit.',
    allowed: 'a duration from 0 to 1h (e.g. 5m); 0, or at least --headers-timeout',
  }),
  keepAliveTimeout: setting({
    schema: duration(100, 3_600_000),
    default: 72_000,
    arg: '<ms>',
    description:
      'How long an idle keep-alive client connection stays open; keep it above the idle timeout of the load balancer in front.',
    allowed: 'a duration from 100ms to 1h (e.g. 72s)',
  }),
  workers: setting({
    schema: workerCount,
    default: () => availableCores(),
    arg: '<n|auto>',
    description:
      'Processes serving the proxy on the same ports (node:cluster). Above 1 a primary process supervises them, restarts one that dies and owns the embedded store; auto is one per available core (the CPUs the process may run on, within a container CPU limit), so a pod limited to one CPU runs a single process.',
    allowed: 'an integer from 1 to 256, or auto',
    defaultText: 'auto',
  }),
  defaultAccount: setting({
    schema: accountRef,
    default: 'auto',
    arg: '<auto|none|account>',
    description:
      'With --inject-token, the account whose token a request gets when it names none (no X-Meli-Account header, no --account-routes match): auto is the one `meli-proxy auth default` chose (the first logged in), none sends such requests without a token.',
    allowed: 'auto, none, or a user id or nickname',
  }),
  accountRoutes: setting({
    schema: accountRouteList,
    default: () => [],
    arg: '<rules>',
    description:
      'With --inject-token, rules choosing the account for requests without an X-Meli-Account header, first match wins; a rule naming an account the proxy does not hold refuses the request (403).',
    allowed: `a comma-separated list (or a file's list) of ${ACCOUNT_ROUTE_SYNTAX}`,
    defaultText: '(none)',
  }),
  accountLabelLimit: setting({
    schema: integer(0, 10_000),
    default: 50,
    arg: '<n>',
    description:
      'Up to this many accounts, token metrics carry an account label; beyond it only totals are exported, to keep the number of series bounded.',
    allowed: 'an integer from 0 to 10000',
  }),
  maxConcurrentRefreshes: setting({
    schema: integer(1, 64),
    default: 4,
    arg: '<n>',
    description:
      'With --inject-token, how many token refresh calls this process makes at once, across all accounts (more wait their turn).',
    allowed: 'an integer from 1 to 64',
  }),
});

export type SettingKey = keyof typeof SETTINGS;
export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

/** The value of every setting, typed from its declaration. */
export type SettingValues = { -readonly [K in SettingKey]: SettingValue<(typeof SETTINGS)[K]> };

export interface Config extends SettingValues {
  /** Route templates from the file's `routes:` list, tried before the built-in ones. */
  routes: string[];
  /** The config file read, if any (absolute path). */
  configFile: string | undefined;
  /** Anything the file holds under `limits:`; validated by the rate-limit rule parser. */
  limits: unknown[];
  /** Where each value came from, for error messages and `--print-config`. */
  sources: Partial<Record<SettingKey, string>>;
}

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

/** Builds the effective configuration; throws UsageError naming the setting, value and what is allowed. */
export function loadConfig(sources: ConfigSources): Config {
  const values = new Map<SettingKey, unknown>();
  const origins: Partial<Record<SettingKey, string>> = {};
  const set = (key: SettingKey, raw: unknown, source: string) => {
    values.set(key, parseSettingValue(SETTINGS[key], raw, source));
    origins[key] = source;
  };
  let limits: unknown[] = [];
  let routes: string[] = [];
  let configFile: string | undefined;

  const filePath = sources.file ?? sources.env.MELI_PROXY_CONFIG;
  if (filePath) {
    const absolute = resolve(sources.cwd ?? process.cwd(), filePath);
    configFile = absolute;
    for (const [name, value] of Object.entries(readConfigFile(absolute))) {
      if (name === 'limits') {
        if (!Array.isArray(value)) {
          throw new UsageError(`Config file ${absolute}: "limits" must be a list of rules.`);
        }
        limits = value;
      } else if (name === 'routes') {
        routes = routeTemplates(value, absolute);
      } else if (Object.hasOwn(SETTINGS, name)) {
        set(name as SettingKey, value, `config file ${absolute}`);
      } else {
        const known = [...SETTING_KEYS, ...FILE_ONLY_KEYS].join(', ');
        throw new UsageError(`Config file ${absolute}: unknown setting "${name}". Known settings: ${known}.`);
      }
    }
  }
  for (const key of SETTING_KEYS) {
    const raw = sources.env[SETTINGS[key].env];
    if (raw !== undefined && raw !== '') set(key, raw, `environment variable ${SETTINGS[key].env}`);
  }
  for (const key of SETTING_KEYS) {
    const raw = sources.flags[key];
    if (raw !== undefined) set(key, raw, `flag ${SETTINGS[key].flag}`);
  }

  const settings = Object.fromEntries(
    SETTING_KEYS.map((key) => [
      key,
      values.has(key) ? values.get(key) : SETTINGS[key].defaultValue(sources.env),
    ]),
  ) as SettingValues;
  checkServerTimeouts(settings, origins);
  return { ...settings, routes, configFile, limits, sources: origins };
}

/** Node refuses a headers timeout longer than the request timeout: say so in our own words. */
function checkServerTimeouts(settings: SettingValues, origins: Partial<Record<SettingKey, string>>): void {
  const { headersTimeout, requestTimeout } = settings;
  if (requestTimeout > 0 && headersTimeout > requestTimeout) {
    const from = (key: SettingKey) => origins[key] ?? 'the default';
    throw new UsageError(
      `Invalid --headers-timeout ${headersTimeout} ms (from ${from('headersTimeout')}): it must not exceed --request-timeout ${requestTimeout} ms (from ${from('requestTimeout')}). Raise --request-timeout, lower --headers-timeout, or set --request-timeout 0.`,
    );
  }
}

/** The default of a setting as the reference and --help show it. */
export function defaultText(key: SettingKey): string {
  return defaultShown(SETTINGS[key]);
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
