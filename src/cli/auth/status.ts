/** `meli-proxy auth status`: who is logged in, the scopes, when the token expires, how it is kept. */
import type { Command } from 'commander';
import { RuntimeFailure } from '../../errors.js';
import { type AuthFactory, type CommonFlags, commonOptions } from './factory.js';
import { expiryText, userJson, userText, writeJson } from './text.js';

interface StatusFlags extends CommonFlags {
  showToken?: boolean;
}

export function registerStatus(auth: Command, f: AuthFactory): void {
  const status = commonOptions(
    auth
      .command('status')
      .description('Show who is logged in, the scopes and when the token expires.')
      .option('--show-token', 'also print the access token'),
  );
  status.action((flags: StatusFlags) => statusRun(flags, f));
}

export async function statusRun(flags: StatusFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  await f.withTokens(config, async (tokens) => {
    const token = await tokens.load();
    if (!token) {
      if (flags.json) writeJson(io, { loggedIn: false, store: tokens.location });
      throw new RuntimeFailure(
        `Not logged in: no token in ${tokens.location}. Run "meli-proxy auth login --client-id ID" (with the same --store/--data-dir).`,
      );
    }
    const keyId = await tokens.sealedWith();
    const at = f.now();
    if (flags.json) {
      writeJson(io, {
        loggedIn: true,
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
        store: tokens.location,
        ...(flags.showToken ? { accessToken: token.accessToken } : {}),
      });
      return;
    }
    const lines = [
      `Logged in to MercadoLibre as ${userText(token)}.`,
      `  application:  ${token.clientId}`,
      `  scopes:       ${token.scope ?? '(not reported)'}`,
      `  expires:      ${expiryText(token.expiresAt, at)}`,
      `  refresh:      ${token.refreshToken ? `refresh token held (obtained ${new Date(token.obtainedAt).toISOString()}, rotation ${token.generation})` : 'none: log in again before it expires'}`,
      `  stored in:    ${tokens.location}${keyId ? `, encrypted with key ${keyId}` : ' (not encrypted)'}`,
    ];
    if (flags.showToken) lines.push(`  access token: ${token.accessToken}`);
    io.stdout.write(`${lines.join('\n')}\n`);
  });
}
