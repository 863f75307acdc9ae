import { describe, expect, it } from 'vitest';
import { loadConfig, SETTING_KEYS, SETTINGS } from '../../src/config.js';
import { isLoopbackHost } from '../../src/net/loopback.js';
import { compileTrust } from '../../src/server/trusted-proxies.js';
import { declareSettings, parseSettingValue, setting } from '../../src/settings/declare.js';
import { integer } from '../../src/settings/values.js';

describe('settings declared once', () => {
  it('derive the flag and environment names every published setting had', () => {
    const names = Object.fromEntries(
      SETTING_KEYS.map((key) => [key, `${SETTINGS[key].flag} ${SETTINGS[key].env}`]),
    );
    expect(names).toEqual({
      host: '--host MELI_PROXY_HOST',
      port: '--port MELI_PROXY_PORT',
      upstream: '--upstream MELI_PROXY_UPSTREAM',
      upstreamTimeout: '--upstream-timeout MELI_PROXY_UPSTREAM_TIMEOUT',
      upstreamConnections: '--upstream-connections MELI_PROXY_UPSTREAM_CONNECTIONS',
      clientStallTimeout: '--client-stall-timeout MELI_PROXY_CLIENT_STALL_TIMEOUT',
      bodyBuffer: '--body-buffer MELI_PROXY_BODY_BUFFER',
      upstreamWaitTimeout: '--upstream-wait-timeout MELI_PROXY_UPSTREAM_WAIT_TIMEOUT',
      upstreamConnectionsPerClient:
        '--upstream-connections-per-client MELI_PROXY_UPSTREAM_CONNECTIONS_PER_CLIENT',
      underscoresInHeaders: '--underscores-in-headers MELI_PROXY_UNDERSCORES_IN_HEADERS',
      maxHeaderFields: '--max-header-fields MELI_PROXY_MAX_HEADER_FIELDS',
      adminHost: '--admin-host MELI_PROXY_ADMIN_HOST',
      adminPort: '--admin-port MELI_PROXY_ADMIN_PORT',
      adminToken: '--admin-token MELI_PROXY_ADMIN_TOKEN',
      trustProxy: '--trust-proxy MELI_PROXY_TRUST_PROXY',
      store: '--store MELI_PROXY_STORE',
      dataDir: '--data-dir MELI_PROXY_DATA_DIR',
      logLevel: '--log-level MELI_PROXY_LOG_LEVEL',
      logFormat: '--log-format MELI_PROXY_LOG_FORMAT',
      tokenKeyFile: '--token-key-file MELI_PROXY_TOKEN_KEY_FILE',
      injectClients: '--inject-clients MELI_PROXY_INJECT_CLIENTS',
      injectHosts: '--inject-hosts MELI_PROXY_INJECT_HOSTS',
      exactPerReplica: '--exact-per-replica MELI_PROXY_EXACT_PER_REPLICA',
      accessLog: '--access-log MELI_PROXY_ACCESS_LOG',
      shutdownGrace: '--shutdown-grace MELI_PROXY_SHUTDOWN_GRACE',
      injectToken: '--inject-token MELI_PROXY_INJECT_TOKEN',
      overrideClientToken: '--override-client-token MELI_PROXY_OVERRIDE_CLIENT_TOKEN',
      clientId: '--client-id MELI_CLIENT_ID',
      clientSecret: '--client-secret MELI_CLIENT_SECRET',
      tokenUrl: '--token-url MELI_PROXY_TOKEN_URL',
      maxRoutes: '--max-routes MELI_PROXY_MAX_ROUTES',
      statsRetention: '--stats-retention MELI_PROXY_STATS_RETENTION',
      syncInterval: '--sync-interval MELI_PROXY_SYNC_INTERVAL',
      onStoreError: '--on-store-error MELI_PROXY_ON_STORE_ERROR',
      storeTimeout: '--store-timeout MELI_PROXY_STORE_TIMEOUT',
      legacyRateLimitHeaders: '--legacy-ratelimit-headers MELI_PROXY_LEGACY_RATELIMIT_HEADERS',
      maxBody: '--max-body MELI_PROXY_MAX_BODY',
      headersTimeout: '--headers-timeout MELI_PROXY_HEADERS_TIMEOUT',
      requestTimeout: '--request-timeout MELI_PROXY_REQUEST_TIMEOUT',
      keepAliveTimeout: '--keep-alive-timeout MELI_PROXY_KEEP_ALIVE_TIMEOUT',
      workers: '--workers MELI_PROXY_WORKERS',
      defaultAccount: '--default-account MELI_PROXY_DEFAULT_ACCOUNT',
      accountRoutes: '--account-routes MELI_PROXY_ACCOUNT_ROUTES',
      accountLabelLimit: '--account-label-limit MELI_PROXY_ACCOUNT_LABEL_LIMIT',
      maxConcurrentRefreshes: '--max-concurrent-refreshes MELI_PROXY_MAX_CONCURRENT_REFRESHES',
    });
  });

  it('give every setting a value in the loaded configuration, defaults included', () => {
    const config = loadConfig({ env: {}, flags: {} });
    for (const key of SETTING_KEYS) expect(Object.hasOwn(config, key), key).toBe(true);
    expect(config.port).toBe(8080);
    expect(config.adminToken).toBeUndefined();
    expect(config.upstream.href).toBe('https://api.mercadolibre.com/');
    // Defaults that are objects are fresh for each load.
    expect(loadConfig({ env: {}, flags: {} }).trustProxy).not.toBe(config.trustProxy);
  });

  it('a new entry gets its names, default and validation from one declaration', () => {
    const table = declareSettings({
      retryBudget: setting({
        schema: integer(0, 10),
        default: 3,
        arg: '<n>',
        description: 'Retries.',
        allowed: 'an integer from 0 to 10',
      }),
    });
    const spec = table.retryBudget;
    expect([spec.flag, spec.env, spec.defaultValue({})]).toEqual([
      '--retry-budget',
      'MELI_PROXY_RETRY_BUDGET',
      3,
    ]);
    expect(parseSettingValue(spec, '7', 'flag --retry-budget')).toBe(7);
    expect(() => parseSettingValue(spec, '11', 'flag --retry-budget')).toThrow(
      'Invalid --retry-budget "11" (from flag --retry-budget): expected an integer from 0 to 10.',
    );
  });
});

describe('--trust-proxy is validated by the parser the server matches with', () => {
  it('what the settings accept, the server trusts, in both socket families', () => {
    const config = loadConfig({
      env: {},
      flags: { trustProxy: '10.0.0.0/8,::ffff:192.168.0.0/112,2001:db8::/32' },
    });
    const trusted = compileTrust(config.trustProxy);
    expect(trusted('10.1.2.3')).toBe(true);
    expect(trusted('::ffff:10.1.2.3')).toBe(true);
    expect(trusted('192.168.7.7')).toBe(true);
    expect(trusted('2001:db8:1::1')).toBe(true);
    expect(trusted('11.0.0.1')).toBe(false);
    expect(trusted('2001:db9::1')).toBe(false);
    expect(trusted('not an address')).toBe(false);
  });
});

describe('isLoopbackHost', () => {
  it.each([
    'localhost',
    'LOCALHOST',
    '127.0.0.1',
    '127.255.0.9',
    '::1',
    '[::1]',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
  ])('%s stays on this machine', (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each([
    '0.0.0.0',
    '10.0.0.1',
    '128.0.0.1',
    '::',
    '::2',
    'localhost.example',
    '127.0.0.1.example',
    '',
    '127.0.0',
  ])('%s does not', (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});
