import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, redactConfig } from '../../src/config.js';
import { configReferenceMarkdown, withConfigReference } from '../../src/config-reference.js';
import { UsageError } from '../../src/errors.js';
import { maskUrl } from '../../src/store/url.js';

function tempFile(name: string, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'meli-config-'));
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function usageMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('loadConfig', () => {
  it('uses the documented defaults', () => {
    const config = loadConfig({ env: { HOME: '/home/someone' }, flags: {} });
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(8080);
    expect(config.upstream.origin).toBe('https://api.mercadolibre.com');
    expect(config.adminHost).toBe('127.0.0.1');
    expect(config.adminPort).toBe(8081);
    expect(config.adminToken).toBeUndefined();
    expect(config.store).toBe('embedded');
    expect(config.dataDir).toBe('/home/someone/.local/share/meli-proxy');
    expect(config.accessLog).toBe(true);
    expect(config.trustProxy).toEqual([]);
  });

  it('applies defaults < file < environment < flags', () => {
    const file = tempFile('c.yaml', 'port: 9001\nhost: 0.0.0.0\nlogLevel: warn\naccessLog: off\n');
    const config = loadConfig({
      file,
      env: { MELI_PROXY_PORT: '9002', MELI_PROXY_LOG_LEVEL: 'debug' },
      flags: { port: '9003' },
    });
    expect(config.port).toBe(9003);
    expect(config.logLevel).toBe('debug');
    expect(config.host).toBe('0.0.0.0');
    expect(config.accessLog).toBe(false);
    expect(config.sources.port).toBe('flag --port');
    expect(config.sources.logLevel).toBe('environment variable MELI_PROXY_LOG_LEVEL');
    expect(config.sources.host).toContain('config file');
  });

  it('reads JSON files and MELI_PROXY_CONFIG', () => {
    const file = tempFile(
      'c.json',
      JSON.stringify({ upstreamTimeout: '5s', trustProxy: ['10.0.0.0/8', '::1'] }),
    );
    const config = loadConfig({ env: { MELI_PROXY_CONFIG: file }, flags: {} });
    expect(config.upstreamTimeout).toBe(5000);
    expect(config.trustProxy).toEqual(['10.0.0.0/8', '::1']);
  });

  it.each([
    [{ port: '80a' }, '--port "80a" (from flag --port): expected an integer from 0 to 65535'],
    [{ port: '70000' }, 'expected an integer from 0 to 65535'],
    [{ upstream: 'ftp://x' }, 'Invalid --upstream "ftp://x"'],
    [{ upstream: 'https://api.mercadolibre.com/v1' }, 'without path, query or credentials'],
    [{ upstreamTimeout: '5 minutes' }, 'Invalid --upstream-timeout'],
    [{ trustProxy: '10.0.0.0/33' }, 'Invalid --trust-proxy'],
    [{ trustProxy: 'not-an-ip' }, 'comma-separated list of IPv4/IPv6 addresses or CIDRs'],
    [{ trustProxy: ':::::' }, 'here ":::::": not an IP address'],
    [{ trustProxy: '10.0.0.0/8, 1.2.3.4/33' }, 'here "1.2.3.4/33": the prefix length must be 0 to 32'],
    [{ workers: 'many' }, 'expected an integer from 1 to 256, or auto'],
    [{ tokenUrl: 'http://example.com/token' }, 'http:// only on a loopback address'],
    [{ store: 'mysql://x' }, 'expected embedded, memory, or a postgres://'],
    [{ logLevel: 'loud' }, 'expected fatal, error, warn, info, debug, trace, silent'],
    [{ accessLog: 'maybe' }, 'expected on or off'],
    [{ adminToken: 'short' }, 'Invalid --admin-token (hidden)'],
  ])('refuses %j with a message naming the setting, value and allowed form', (flags, expected) => {
    expect(usageMessage(() => loadConfig({ env: {}, flags }))).toContain(expected);
  });

  it('names the environment variable a bad value came from', () => {
    const message = usageMessage(() => loadConfig({ env: { MELI_PROXY_ADMIN_PORT: '-1' }, flags: {} }));
    expect(message).toBe(
      'Invalid --admin-port "-1" (from environment variable MELI_PROXY_ADMIN_PORT): expected an integer from 0 to 65535.',
    );
  });

  it('refuses unknown keys, malformed files and missing files', () => {
    expect(
      usageMessage(() => loadConfig({ file: tempFile('u.yaml', 'prot: 1\n'), env: {}, flags: {} })),
    ).toContain('unknown setting "prot"');
    expect(
      usageMessage(() => loadConfig({ file: tempFile('m.yaml', 'port: [1,\n'), env: {}, flags: {} })),
    ).toContain('is not valid YAML');
    expect(
      usageMessage(() => loadConfig({ file: tempFile('m.json', '{"port": }'), env: {}, flags: {} })),
    ).toContain('is not valid JSON');
    // The message says where, never what: the broken line may hold a secret.
    const yamlSecret = usageMessage(() =>
      loadConfig({ file: tempFile('s.yaml', 'adminToken: {SECRET-abc123\nport: 1\n'), env: {}, flags: {} }),
    );
    expect(yamlSecret).toMatch(/is not valid YAML: .*line \d+, column \d+/);
    expect(yamlSecret).not.toContain('SECRET');
    const jsonSecret = usageMessage(() =>
      loadConfig({ file: tempFile('s.json', '{"adminToken": SECRET-abc123}'), env: {}, flags: {} }),
    );
    expect(jsonSecret).toMatch(/is not valid JSON \(.*position \d+/);
    expect(jsonSecret).not.toContain('SECRET');
    expect(usageMessage(() => loadConfig({ file: '/nonexistent/x.yaml', env: {}, flags: {} }))).toContain(
      'Cannot read config file /nonexistent/x.yaml (ENOENT)',
    );
    expect(
      usageMessage(() => loadConfig({ file: tempFile('l.yaml', '- 1\n'), env: {}, flags: {} })),
    ).toContain('must hold a mapping');
    const fileValue = usageMessage(() =>
      loadConfig({ file: tempFile('b.yaml', 'port: x\n'), env: {}, flags: {} }),
    );
    expect(fileValue).toMatch(/Invalid --port "x" \(from config file .*b\.yaml\)/);
  });

  it('keeps secrets out of what it prints', () => {
    const config = loadConfig({
      env: {
        MELI_PROXY_ADMIN_TOKEN: 'admin-secret-0123456789',
        MELI_PROXY_STORE: 'postgres://u:pw-secret@db:5432/x',
      },
      flags: {},
    });
    const printed = JSON.stringify(redactConfig(config));
    expect(printed).not.toContain('admin-secret-0123456789');
    expect(printed).not.toContain('pw-secret');
    expect(maskUrl('postgres://u:pw@h/db')).toBe('postgres://u:***@h/db');
    const message = usageMessage(() =>
      loadConfig({ env: { MELI_PROXY_STORE: 'mysql://u:pw-secret@h' }, flags: {} }),
    );
    expect(message).not.toContain('pw-secret');
  });
});

describe('configuration reference', () => {
  it('lists every setting with its flag, variable and default', () => {
    const table = configReferenceMarkdown();
    expect(table).toContain('| `port` | `--port <port>` | `MELI_PROXY_PORT` | 8080 |');
    expect(table).toContain('`MELI_PROXY_ADMIN_TOKEN`');
  });

  it('is the one in docs/configuration.md (run `npm run docs` after changing a setting)', () => {
    const reference = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(withConfigReference(reference)).toBe(reference);
  });
});
