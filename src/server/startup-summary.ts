/**
 * What a person starting `meli-proxy serve` at a terminal reads once the proxy is up: where it
 * listens, what it forwards to, where its data lives, and how to look at it.
 */
import type { Config } from '../config.js';

export interface SummaryFacts {
  proxyUrl: string;
  adminUrl: string;
  store: string;
  rules: number;
  version: string;
}

export function startupSummary(config: Config, facts: SummaryFacts): string {
  const workers = config.workers > 1 ? `${config.workers} workers` : 'one process';
  const signIn = config.adminToken
    ? 'sign in with the admin token (MELI_PROXY_ADMIN_TOKEN)'
    : 'no sign-in: loopback only, no admin token set';
  const injection = config.injectToken
    ? 'on: the stored MercadoLibre token is added to upstream requests'
    : 'off (meli-proxy auth login, then --inject-token)';
  const rows: [string, string][] = [
    ['proxy', facts.proxyUrl],
    ['upstream', config.upstream.origin],
    ['store', facts.store === 'embedded' ? `embedded, in ${config.dataDir}` : facts.store],
    ['serving', workers],
    ['rules', facts.rules === 1 ? '1 rate-limit rule in force' : `${facts.rules} rate-limit rules in force`],
    ['dashboard', `${facts.adminUrl}/admin/dashboard (${signIn})`],
    ['metrics', `${facts.proxyUrl}/metrics`],
    ['token', injection],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const body = rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`).join('\n');
  return `\nmeli-proxy ${facts.version} is ready\n${body}\n\nCtrl-C stops it; logs follow.\n\n`;
}
