/** The --store setting: dispatch, errors that name the input and the fix, masked URLs. */
import { describe, expect, it } from 'vitest';
import {
  maskUrl,
  openStore,
  parseStoreUrl,
  StoreConfigError,
  StoreUnavailableError,
} from '../../src/store/index.js';

const SECRET = 's3cr3t-p@ss';

describe('parseStoreUrl', () => {
  it('takes embedded as the default and memory as embedded without files', () => {
    expect(parseStoreUrl('embedded')).toEqual({ kind: 'embedded', persistent: true, displayUrl: 'embedded' });
    expect(parseStoreUrl('')).toMatchObject({ kind: 'embedded', persistent: true });
    expect(parseStoreUrl(' Memory ')).toEqual({ kind: 'embedded', persistent: false, displayUrl: 'memory' });
  });

  it('accepts postgres:// and postgresql:// URLs and masks their password', () => {
    const url = `postgresql://meli:${encodeURIComponent(SECRET)}@db.internal:5432/meli?sslmode=require`;
    const target = parseStoreUrl(url);
    expect(target).toEqual({
      kind: 'postgres',
      url,
      displayUrl: 'postgresql://meli:***@db.internal:5432/meli?sslmode=require',
    });
    expect(parseStoreUrl('postgres:///meli?host=/var/run/postgresql')).toMatchObject({ kind: 'postgres' });
  });

  it.each([
    ['redis://:hunter2@cache:6379/zero', /--store "redis:\/\/:\*\*\*@cache:6379\/zero": malformed Redis URL/],
    ['mysql://root:hunter2@db/x', /unknown store type "mysql:"/],
    ['postgres:meli', /malformed PostgreSQL URL/],
    ['postgres://user:hunter2@[::1/x', /malformed PostgreSQL URL/],
    ['just-a-word', /not a store name or URL/],
  ])('refuses %s with a usage error naming the setting and what is allowed', (value, message) => {
    let error: unknown;
    try {
      parseStoreUrl(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreConfigError);
    const { message: text, exitCode, code } = error as StoreConfigError;
    expect(text).toMatch(message);
    expect(text).toContain('--store');
    expect(text).toMatch(/"embedded".*"memory".*postgres:\/\//);
    expect(text).not.toContain('hunter2');
    expect(exitCode).toBe(2);
    expect(code).toBe('STORE_CONFIG');
  });

  it('is what openStore throws for a bad value', async () => {
    await expect(openStore('redis:localhost', { dataDir: '/x' })).rejects.toBeInstanceOf(StoreConfigError);
  });
});

describe('maskUrl', () => {
  it.each([
    [`postgres://u:${encodeURIComponent(SECRET)}@h/db`, 'postgres://u:***@h/db'],
    ['postgres://u@h/db', 'postgres://u@h/db'],
    [
      'postgres://h/db?password=pw1&sslpassword=pw2&application_name=x',
      'postgres://h/db?password=***&sslpassword=***&application_name=x',
    ],
    // Not parseable: everything before the last '@' goes.
    [`postgres://u:${SECRET}@[bad/db`, 'postgres://***@[bad/db'],
    [`u:${SECRET}@host`, '***@host'],
  ])('%s → %s', (raw, masked) => {
    expect(maskUrl(raw)).toBe(masked);
    expect(maskUrl(raw)).not.toContain('s3cr3t');
  });
});

describe('opening an unreachable PostgreSQL', () => {
  it('fails promptly with StoreUnavailableError, and without the password', async () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const error = await openStore(`postgres://meli:${SECRET.replace('@', '')}@127.0.0.1:1/meli`, {
      dataDir: '/x',
      postgres: { connectTimeoutMs: 500 },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    const { message, exitCode } = error as StoreUnavailableError;
    expect(message).toMatch(
      /^Cannot use the PostgreSQL store postgres:\/\/meli:\*\*\*@127\.0\.0\.1:1\/meli: .*ECONNREFUSED/,
    );
    expect(message).not.toContain('s3cr3t');
    expect(exitCode).toBe(1);
  });
});
