/**
 * Credentials never reach a log line or an error message: request targets are logged with the
 * values of secret-looking query, fragment and path (`;name=value`) parameters masked, store URLs
 * are printed with one masking (the same list of names), and an invalid --upstream is never echoed
 * with its `user:password@`.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, redactConfig } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';
import { loggableUrl } from '../../src/logger.js';
import { maskUrl } from '../../src/store/url.js';

const NAMES = [
  'access_token',
  'refresh_token',
  'id_token',
  'token',
  'client_secret',
  'code',
  'password',
  'passwd',
  'pwd',
  'api_key',
  'apikey',
  'api-key',
  'key',
  'secret',
  'session',
  'sessionid',
  'sid',
  'sig',
  'signature',
  'auth',
  'X-Amz-Signature',
  'private_key',
];

describe('loggableUrl', () => {
  it.each(NAMES)('masks a query parameter named %s', (name) => {
    expect(loggableUrl(`/items?id=1&${name}=S3CR3T&q=x`)).toBe(`/items?id=1&${name}=[redacted]&q=x`);
  });

  it('masks whatever the spelling: percent-encoded, upper-case, plus for space', () => {
    expect(loggableUrl('/a?access%5Ftoken=S3CR3T')).toBe('/a?access%5Ftoken=[redacted]');
    expect(loggableUrl('/a?API_KEY=S3CR3T')).toBe('/a?API_KEY=[redacted]');
    expect(loggableUrl('/a?+password=S3CR3T')).toBe('/a?+password=[redacted]');
  });

  it('masks path parameters and fragments', () => {
    expect(loggableUrl('/items;access_token=S3CR3T/MLA1')).toBe('/items;access_token=[redacted]/MLA1');
    expect(loggableUrl('/a;v=1;jsessionid=S3CR3T?q=1')).toBe('/a;v=1;jsessionid=[redacted]?q=1');
    expect(loggableUrl('/cb#access_token=S3CR3T&state=x')).toBe('/cb#access_token=[redacted]&state=x');
  });

  it('leaves targets without credentials as they are', () => {
    for (const target of ['/items/MLA1', '/sites/MLA/search?q=phone&offset=50', '/a;v=1', '/x?keyword=k']) {
      expect(loggableUrl(target)).toBe(target);
    }
  });
});

describe('maskUrl (store URLs, --print-config)', () => {
  it('masks the password and secret query parameters with the same names', () => {
    expect(maskUrl('postgres://u:pw@h/db?sslpassword=S3CR3T&api_key=S3CR3T&application_name=x')).toBe(
      'postgres://u:***@h/db?sslpassword=***&api_key=***&application_name=x',
    );
  });

  it('is the one redactConfig uses: nothing after a store password leaks', () => {
    const config = loadConfig({
      env: { MELI_PROXY_STORE: 'redis://:S3CR3T@h:6379/0?token=S3CR3T' },
      flags: {},
    });
    expect(JSON.stringify(redactConfig(config))).not.toContain('S3CR3T');
  });
});

describe('an invalid --upstream with credentials', () => {
  it.each([
    'https://user:S3CR3T@api.example.com/path',
    'https://user:S3CR3T@',
    'ftp://user:S3CR3T@host',
    'user:S3CR3T@host',
  ])('is refused without echoing them: %s', (value) => {
    let error: unknown;
    try {
      loadConfig({ env: {}, flags: { upstream: value } });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toContain('--upstream');
    expect((error as Error).message).not.toContain('S3CR3T');
  });
});
