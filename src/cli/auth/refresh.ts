/** `meli-proxy auth refresh`: trades the stored refresh token now, through the fleet's lock. */
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { accountLockName } from '../../auth/accounts.js';
import { tokenRefresher } from '../../auth/proxy-auth.js';
import { TokenManager } from '../../auth/token-manager.js';
import { RuntimeFailure, UsageError } from '../../errors.js';
import {
  type AuthFactory,
  accountOption,
  type CommonFlags,
  chosenAccount,
  commonOptions,
  settingOption,
} from './factory.js';
import { expiryText, userJson, userText, writeJson } from './text.js';

export function registerRefresh(auth: Command, f: AuthFactory): void {
  const refresh = accountOption(
    commonOptions(
      auth
        .command('refresh')
        .description(
          "Trade an account's refresh token (default: the default account's) for a new token now (one per fleet, under the account's lock).",
        ),
    ),
  );
  settingOption(refresh, 'clientId');
  settingOption(refresh, 'clientSecret');
  settingOption(refresh, 'tokenUrl');
  refresh.action((flags: CommonFlags) => refreshRun(flags, f));
}

export async function refreshRun(flags: CommonFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  if (!config.clientSecret) {
    throw new UsageError(
      'auth refresh needs the application secret: set MELI_CLIENT_SECRET (or pass --client-secret).',
    );
  }
  const refresher = tokenRefresher({
    tokenUrl: config.tokenUrl,
    clientId: config.clientId,
    clientSecret: config.clientSecret,
  });
  await f.withAccounts(config, async (accounts, lock) => {
    const entry = await chosenAccount(accounts, flags.account);
    const tokens = accounts.account(entry.id);
    const manager = new TokenManager({
      tokens,
      lock,
      lockName: accountLockName(entry.id),
      refresher,
      now: f.now,
      holder: `${hostname()}:${process.pid} auth refresh`,
      logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
      lockWaitMs: 20_000,
    });
    try {
      const outcome = await manager.refreshNow();
      const token = outcome.token;
      if (outcome.result === 'no_token' || !token) {
        throw new RuntimeFailure(
          `Not logged in: no token in ${tokens.location}. Run "meli-proxy auth login" first.`,
        );
      }
      if (outcome.result === 'skipped' && token.revokedAt !== undefined) {
        throw new RuntimeFailure(
          `MercadoLibre refused the refresh token of account ${entry.id} (revoked at ${new Date(token.revokedAt).toISOString()}): run "meli-proxy auth login" as that user again.`,
        );
      }
      if (outcome.result === 'skipped') {
        throw new RuntimeFailure(
          'The stored token has no refresh token: run "meli-proxy auth login" to get a new one.',
        );
      }
      if (outcome.result === 'lock_timeout') {
        throw new RuntimeFailure(
          'Another process held the token refresh lock for 20 s. Try again in a moment.',
        );
      }
      if (outcome.result === 'invalid_grant' || outcome.result === 'error') {
        throw (
          outcome.failure ??
          new RuntimeFailure('The refresh failed; run with the proxy logs at hand, or log in again.')
        );
      }
      const refreshed = outcome.result === 'success';
      if (flags.json) {
        writeJson(io, {
          result: refreshed ? 'refreshed' : 'already_refreshed',
          account: entry.id,
          user: userJson(token),
          expiresAt: new Date(token.expiresAt).toISOString(),
          generation: token.generation,
          store: tokens.location,
        });
        return;
      }
      io.stdout.write(
        `${[
          refreshed
            ? `Refreshed the token of ${userText(token)}.`
            : `Another process had just refreshed the token of ${userText(token)} (or logged in again); nothing to do.`,
          `The access token expires at ${expiryText(token.expiresAt, f.now())}.`,
        ].join('\n')}\n`,
      );
    } finally {
      await manager.stop();
    }
  });
}
