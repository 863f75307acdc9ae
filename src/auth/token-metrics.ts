/**
 * The token metrics of a proxy injecting tokens. Always, whatever the number of accounts:
 *   meli_proxy_token_refresh_total{result}          refresh attempts of every account, by result
 *   meli_proxy_token_expires_in_seconds             the default account's token
 *   meli_proxy_accounts{state}                      accounts by state (ok, expired, revoked, none)
 * Per account, only while there are at most `labelLimit` accounts (each series costs every
 * scrape, and a platform with thousands of sellers must not flood Prometheus):
 *   meli_proxy_account_token_expires_in_seconds{account}
 *   meli_proxy_account_refresh_total{account,result}
 *   meli_proxy_account_revoked{account}
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { StoredToken } from './token-store.js';

/** Outcomes of one refresh attempt; also the `result` label of the refresh counters. */
export type RefreshResult =
  | 'success'
  | 'adopted'
  | 'invalid_grant'
  | 'error'
  | 'lock_timeout'
  | 'no_token'
  | 'skipped'
  | 'saved'
  | 'superseded';

export const COUNTED_RESULTS: readonly RefreshResult[] = [
  'success',
  'adopted',
  'saved',
  'superseded',
  'invalid_grant',
  'error',
  'lock_timeout',
];

/** What the metrics read of one account's token manager. */
export interface MeteredToken {
  readonly token: StoredToken | undefined;
  readonly revoked: boolean;
  /** Refresh results since the last call, which resets them. */
  takeRefreshCounts(): Map<RefreshResult, number>;
}

export interface MeteredAccounts {
  /** Every account held now, by id. */
  accounts(): ReadonlyMap<string, MeteredToken>;
  /** The account used when a request names none (undefined: none). */
  defaultAccount(): MeteredToken | undefined;
  /** Up to how many accounts each gets its own series. */
  labelLimit: number;
  now: () => number;
}

export type AccountState = 'ok' | 'expired' | 'revoked' | 'none';

export function accountState(source: MeteredToken, now: number): AccountState {
  const token = source.token;
  if (!token) return 'none';
  if (source.revoked) return 'revoked';
  return token.expiresAt > now ? 'ok' : 'expired';
}

export function registerTokenMetrics(registry: Registry, source: MeteredAccounts): void {
  const secondsLeft = (token: StoredToken | undefined): number =>
    token ? Math.max(0, (token.expiresAt - source.now()) / 1000) : 0;
  const labelled = (): boolean => source.accounts().size <= source.labelLimit;
  // Counts are taken from the managers once per scrape and fed to both counters.
  let perAccount = new Map<string, Map<RefreshResult, number>>();
  const take = (): void => {
    perAccount = new Map();
    for (const [id, account] of source.accounts()) perAccount.set(id, account.takeRefreshCounts());
  };
  new Counter({
    name: 'meli_proxy_token_refresh_total',
    help: 'Token refresh attempts by this replica, by result (adopted: another replica had refreshed).',
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      take();
      for (const result of COUNTED_RESULTS) {
        let count = 0;
        for (const counts of perAccount.values()) count += counts.get(result) ?? 0;
        this.inc({ result }, count);
      }
    },
  });
  new Counter({
    name: 'meli_proxy_account_refresh_total',
    help: 'Token refresh attempts by this replica, per account and result (only up to the account label limit).',
    labelNames: ['account', 'result'] as const,
    registers: [registry],
    collect() {
      // Runs after meli_proxy_token_refresh_total's collect in the same scrape (registration order).
      if (!labelled()) return;
      for (const [account, counts] of perAccount) {
        for (const result of COUNTED_RESULTS) this.inc({ account, result }, counts.get(result) ?? 0);
      }
    },
  });
  new Gauge({
    name: 'meli_proxy_token_expires_in_seconds',
    help: "Seconds until the default account's access token expires (0: none, or expired).",
    registers: [registry],
    collect() {
      this.set(secondsLeft(source.defaultAccount()?.token));
    },
  });
  new Gauge({
    name: 'meli_proxy_accounts',
    help: 'MercadoLibre accounts held, by state (revoked: needs a new login).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const counts: Record<AccountState, number> = { ok: 0, expired: 0, revoked: 0, none: 0 };
      for (const account of source.accounts().values()) counts[accountState(account, source.now())]++;
      this.reset();
      for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
    },
  });
  new Gauge({
    name: 'meli_proxy_account_token_expires_in_seconds',
    help: "Seconds until each account's access token expires (only up to the account label limit).",
    labelNames: ['account'] as const,
    registers: [registry],
    collect() {
      this.reset();
      if (!labelled()) return;
      for (const [account, held] of source.accounts()) this.set({ account }, secondsLeft(held.token));
    },
  });
  new Gauge({
    name: 'meli_proxy_account_revoked',
    help: "1 when the account's refresh token was refused and it needs a new login (only up to the account label limit).",
    labelNames: ['account'] as const,
    registers: [registry],
    collect() {
      this.reset();
      if (!labelled()) return;
      for (const [account, held] of source.accounts()) this.set({ account }, held.revoked ? 1 : 0);
    },
  });
}
