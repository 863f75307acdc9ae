/** `meli-proxy auth default ID|NICKNAME`: which account requests that name none get. */
import type { Command } from 'commander';
import { type AuthFactory, accountLabel, type CommonFlags, chosenAccount, commonOptions } from './factory.js';
import { writeJson } from './text.js';

export function registerDefault(auth: Command, f: AuthFactory): void {
  const command = commonOptions(
    auth
      .command('default')
      .argument('<account>', 'user id or nickname of the account')
      .description('Make an account the default: the one injected for requests that name no account.'),
  );
  command.action((ref: string, flags: CommonFlags) => defaultRun(ref, flags, f));
}

export async function defaultRun(ref: string, flags: CommonFlags, f: AuthFactory): Promise<void> {
  const { io } = f;
  const config = f.settings(flags);
  await f.withAccounts(config, async (accounts) => {
    const entry = await chosenAccount(accounts, ref);
    await accounts.setDefault(entry.id);
    if (flags.json) {
      writeJson(io, { default: entry.id, store: accounts.location });
      return;
    }
    io.stdout.write(`The default account is now ${accountLabel(entry)}.\n`);
  });
}
