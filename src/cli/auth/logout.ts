/** `meli-proxy auth logout`: removes the stored token; proxies stop injecting it within a second. */
import type { Command } from 'commander';
import { type AuthFactory, type CommonFlags, commonOptions, underLock } from './factory.js';
import { userText, writeJson } from './text.js';

export function registerLogout(auth: Command, f: AuthFactory): void {
  const logout = commonOptions(
    auth
      .command('logout')
      .description('Remove the stored token; the proxy stops injecting it within a second.'),
  );
  logout.action((flags: CommonFlags) => logoutRun(flags, f));
}

export async function logoutRun(flags: CommonFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  await f.withTokens(config, async (tokens, lock) => {
    // Who it was is only for the message: a token this key cannot open is removed all the same.
    const previous = await tokens.load().catch(() => undefined);
    const removed = await underLock(lock, () => tokens.remove());
    if (flags.json) {
      writeJson(io, { loggedOut: removed, store: tokens.location });
      return;
    }
    io.stdout.write(
      removed
        ? `Logged out${previous ? ` ${userText(previous)}` : ''}: removed the token from ${tokens.location}. MercadoLibre keeps the application's authorization until the user revokes it in the account's security settings.\n`
        : `Not logged in: there was no token in ${tokens.location}.\n`,
    );
  });
}
