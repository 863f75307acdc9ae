/**
 * The settings behind the hardening promises: their defaults, what they accept, the relationship
 * Node insists on (headers timeout ≤ request timeout), and the server options derived from them.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';
import { serverOptions } from '../../src/server/client-guards.js';
import { runCliProcess } from '../support/proxy.js';

const load = (flags: Record<string, unknown>, env: Record<string, string> = {}) => loadConfig({ env, flags });

describe('hardening settings', () => {
  it('defaults to a 64 MB body limit, 10 s headers, 5 min request and 72 s keep-alive timeouts', () => {
    const config = load({});
    expect(config.maxBody).toBe(64 * 1024 * 1024);
    expect(config.headersTimeout).toBe(10_000);
    expect(config.requestTimeout).toBe(300_000);
    expect(config.keepAliveTimeout).toBe(72_000);
  });

  it('reads sizes with binary units, and 0 as no limit', () => {
    expect(load({ maxBody: '512kb' }).maxBody).toBe(512 * 1024);
    expect(load({ maxBody: '64MB' }).maxBody).toBe(64 * 1024 * 1024);
    expect(load({ maxBody: '1gb' }).maxBody).toBe(1024 ** 3);
    expect(load({ maxBody: 1000 }).maxBody).toBe(1000);
    expect(load({ maxBody: '0' }).maxBody).toBe(0);
    expect(load({}, { MELI_PROXY_MAX_BODY: '2mb' }).maxBody).toBe(2 * 1024 * 1024);
    for (const bad of ['-1', '1.5mb', 'lots', '2048gb', '10tb']) {
      expect(() => load({ maxBody: bad }), bad).toThrow(/Invalid --max-body .* expected a byte count/);
    }
  });

  it('refuses a headers timeout longer than the request timeout, naming both and where they came from', () => {
    let failure: unknown;
    try {
      load({ headersTimeout: '20s' }, { MELI_PROXY_REQUEST_TIMEOUT: '10s' });
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(UsageError);
    const message = (failure as Error).message;
    expect(message).toContain('--headers-timeout 20000 ms (from flag --headers-timeout)');
    expect(message).toContain(
      '--request-timeout 10000 ms (from environment variable MELI_PROXY_REQUEST_TIMEOUT)',
    );
    expect(message).toMatch(/set --request-timeout 0/);
    expect(load({ headersTimeout: '20s', requestTimeout: 0 }).requestTimeout).toBe(0);
    expect(load({ headersTimeout: '10s', requestTimeout: '10s' }).headersTimeout).toBe(10_000);
    expect(() => load({ headersTimeout: '50ms' })).toThrow(/Invalid --headers-timeout/);
    expect(() => load({ keepAliveTimeout: 0 })).toThrow(/Invalid --keep-alive-timeout/);
  });

  it('checks timeouts often enough for short ones, at most once a second', () => {
    expect(serverOptions(load({})).connectionsCheckingInterval).toBe(1000);
    expect(
      serverOptions(load({ headersTimeout: 400, requestTimeout: 1200 })).connectionsCheckingInterval,
    ).toBe(100);
    expect(serverOptions(load({ headersTimeout: 100, requestTimeout: 0 })).connectionsCheckingInterval).toBe(
      25,
    );
  });

  it('makes the binary exit 2 with the message for inconsistent timeouts', async () => {
    const result = await runCliProcess(['serve', '--headers-timeout', '20s', '--request-timeout', '10s']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--headers-timeout 20000 ms .* must not exceed --request-timeout 10000 ms/);
  });
});
