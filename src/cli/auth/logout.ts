/** `meli-proxy auth logout [--account ID|NICKNAME]`: removes an account; proxies stop injecting its token within a second. */
import type { Command } from 'commander';
import {
  type AuthFactory,
  accountLabel,
  accountOption,
  type CommonFlags,
  chosenAccount,
  commonOptions,
  underAccountLock,
} from './factory.js';
import { userText, writeJson } from './text.js';

export function registerLogout(auth: Command, f: AuthFactory): void {
  const logout = accountOption(
    commonOptions(
      auth
        .command('logout')
        .description(
          "Remove an account's token (default: the default account); the proxy stops injecting it within a second.",
        ),
    ),
  );
  logout.action((flags: CommonFlags) => logoutRun(flags, f));
}

export async function logoutRun(flags: CommonFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  await f.withAccounts(config, async (accounts, lock) => {
    const entry = await chosenAccount(accounts, flags.account);
    const { removed, newDefault } = await underAccountLock(lock, entry.id, () => accounts.remove(entry.id));
    if (flags.json) {
      writeJson(io, {
        loggedOut: removed,
        account: entry.id,
        newDefault: newDefault ?? null,
        store: accounts.location,
      });
      return;
    }
    const who = entry.token ? userText(entry.token) : accountLabel(entry);
    const lines = [
      removed
        ? `Logged out ${who}: removed account ${entry.id} from ${accounts.location}. MercadoLibre keeps the application's authorization until the user revokes it in the account's security settings.`
        : `Account ${entry.id} was already removed from ${accounts.location}.`,
    ];
    if (newDefault) lines.push(`The default account is now ${newDefault}.`);
    io.stdout.write(`${lines.join('\n')}\n`);
  });
}
