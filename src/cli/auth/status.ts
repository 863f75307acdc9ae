/** `meli-proxy auth status`: who is logged in, the scopes, when the token expires, how it is kept. */
import type { Command } from 'commander';
import { RuntimeFailure } from '../../errors.js';
import {
  type AuthFactory,
  accountOption,
  type CommonFlags,
  chosenAccount,
  commonOptions,
} from './factory.js';
import { expiryText, userJson, userText, writeJson } from './text.js';

interface StatusFlags extends CommonFlags {
  showToken?: boolean;
}

export function registerStatus(auth: Command, f: AuthFactory): void {
  const status = accountOption(
    commonOptions(
      auth
        .command('status')
        .description(
          'Show who an account is (default: the default account), its scopes and when its token expires.',
        )
        .option('--show-token', 'also print the access token'),
    ),
  );
  status.action((flags: StatusFlags) => statusRun(flags, f));
}

export async function statusRun(flags: StatusFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  await f.withAccounts(config, async (accounts) => {
    if (flags.account === undefined && (await accounts.defaultId()) === undefined && flags.json) {
      writeJson(io, { loggedIn: false, store: accounts.location });
    }
    const entry = await chosenAccount(accounts, flags.account);
    const token = entry.token;
    if (!token) throw entry.error ?? new RuntimeFailure(`Account ${entry.id} holds no token.`);
    const tokens = accounts.account(entry.id);
    const isDefault = (await accounts.defaultId()) === entry.id;
    const keyId = await tokens.sealedWith();
    const at = f.now();
    if (flags.json) {
      writeJson(io, {
        loggedIn: true,
        account: entry.id,
        default: isDefault,
        revoked: token.revokedAt !== undefined,
        user: userJson(token),
        clientId: token.clientId,
        scopes: token.scope ? token.scope.split(' ').filter(Boolean) : [],
        expiresAt: new Date(token.expiresAt).toISOString(),
        expiresInSeconds: Math.max(0, Math.round((token.expiresAt - at) / 1000)),
        expired: token.expiresAt <= at,
        refreshable: token.refreshToken !== undefined,
        refreshedAt: new Date(token.obtainedAt).toISOString(),
        generation: token.generation,
        encryptedWithKey: keyId ?? null,
        store: accounts.location,
        ...(flags.showToken ? { accessToken: token.accessToken } : {}),
      });
      return;
    }
    const lines = [
      `Logged in to MercadoLibre as ${userText(token)}: account ${entry.id}${isDefault ? ' (default)' : ''}.`,
      `  application:  ${token.clientId}`,
      `  scopes:       ${token.scope ?? '(not reported)'}`,
      `  expires:      ${expiryText(token.expiresAt, at)}`,
      `  refresh:      ${token.refreshToken ? `refresh token held (obtained ${new Date(token.obtainedAt).toISOString()}, rotation ${token.generation})` : 'none: log in again before it expires'}`,
      ...(token.revokedAt !== undefined
        ? [
            `  REVOKED:      MercadoLibre refused the refresh token at ${new Date(token.revokedAt).toISOString()}; run "meli-proxy auth login" as this user again`,
          ]
        : []),
      `  stored in:    ${accounts.location}${keyId ? `, encrypted with key ${keyId}` : ' (not encrypted)'}`,
    ];
    if (flags.showToken) lines.push(`  access token: ${token.accessToken}`);
    io.stdout.write(`${lines.join('\n')}\n`);
  });
}
