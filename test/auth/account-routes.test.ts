/** --account-routes: what a rule matches, and the error a bad rule gets (exit 2, naming the rule). */
import { describe, expect, it } from 'vitest';
import { compileAccountRoutes, parseAccountRoute } from '../../src/auth/account-routes.js';
import { loadConfig } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';

describe('--account-routes', () => {
  const route = (rules: string, clientIp: string, path: string, headers: Record<string, string> = {}) =>
    compileAccountRoutes(loadConfig({ env: {}, flags: { accountRoutes: rules } }).accountRoutes)({
      clientIp,
      path,
      headers,
    });

  it('matches clients, path prefixes and header values, first rule first', () => {
    const rules = 'header:x-tenant:acme=ACME,client:10.1.0.0/16=111,path:/orders/=222,path:/=333';
    expect(route(rules, '10.1.2.3', '/items')).toBe('111');
    expect(route(rules, '127.0.0.1', '/orders')).toBe('222');
    expect(route(rules, '127.0.0.1', '/orders/9')).toBe('222');
    expect(route(rules, '127.0.0.1', '/ordersX')).toBe('333');
    expect(route(rules, '10.1.2.3', '/orders', { 'x-tenant': 'acme' })).toBe('ACME');
    expect(route(rules, '10.1.2.3', '/orders', { 'x-tenant': 'ACME' })).toBe('111');
    expect(route('path:/orders=1', '127.0.0.1', '/items')).toBeUndefined();
  });

  it('refuses a bad rule with what is wrong and where', () => {
    expect(parseAccountRoute('path:/x')).toBe('expected MATCH=ACCOUNT');
    expect(parseAccountRoute('host:a=1')).toContain('unknown match "host"');
    expect(parseAccountRoute('header:x-a=1')).toContain('header:<name>:<value>');
    const bad = () => loadConfig({ env: {}, flags: { accountRoutes: 'path:/a=1,client:10.0.0.1/8=2' } });
    expect(bad).toThrow(UsageError);
    expect(bad).toThrow(
      /--account-routes .*"client:10\.0\.0\.1\/8=2": client "10\.0\.0\.1\/8": host bits are set/,
    );
  });
});
