/**
 * What every `auth` subcommand shares: its I/O (injected by tests), its settings, and the token
 * store and refresh lock it opens and always closes (src/auth/token-backend.ts decides which).
 */
import type { Command } from 'commander';
import { type AccountEntry, type AccountStore, accountLockName } from '../../auth/accounts.js';
import type { Lock } from '../../auth/lock.js';
import { openTokenBackend } from '../../auth/token-backend.js';
import { REFRESH_LOCK } from '../../auth/token-manager.js';
import { InvalidTokenDocument } from '../../auth/token-store.js';
import { type Config, loadConfig, SETTINGS, type SettingKey } from '../../config.js';
import { RuntimeFailure, UsageError } from '../../errors.js';
import type { CliIO } from '../io.js';

/** What the auth commands need beyond CliIO; each has a real default. Tests inject them. */
export interface AuthIO extends CliIO {
  stdin?: NodeJS.ReadableStream;
  openBrowser?: (url: string) => Promise<boolean>;
  now?: () => number;
}

export type SharedKey = Extract<
  SettingKey,
  'store' | 'dataDir' | 'clientId' | 'clientSecret' | 'tokenUrl' | 'tokenKeyFile'
>;

export interface CommonFlags extends Partial<Record<SharedKey, string>> {
  config?: string;
  json?: boolean;
  account?: string;
}

export interface AuthFactory {
  io: AuthIO;
  now(): number;
  /** One progress line for the user (stderr). */
  say(line: string): void;
  settings(flags: CommonFlags): Config;
  /**
   * Opens the accounts and the refresh lock (migrating a store written before accounts), runs
   * `work`, and closes both whatever happens.
   */
  withAccounts<T>(config: Config, work: (accounts: AccountStore, lock: Lock) => Promise<T>): Promise<T>;
}

export function authFactory(io: AuthIO): AuthFactory {
  return {
    io,
    now: io.now ?? Date.now,
    say: (line) => {
      io.stderr.write(`${line}\n`);
    },
    settings: (flags) => {
      const settings: Partial<Record<SettingKey, unknown>> = {};
      for (const key of SHARED_KEYS) if (flags[key] !== undefined) settings[key] = flags[key];
      return loadConfig({ file: flags.config, env: io.env, flags: settings, cwd: io.cwd });
    },
    async withAccounts(config, work) {
      const { accounts, lock, close } = await openTokenBackend(config, io.env, { role: 'command' });
      try {
        const migrated = await underLock(lock, REFRESH_LOCK, () => accounts.migrate());
        if (migrated !== undefined) {
          io.stderr.write(
            `Moved the stored token to account ${migrated} (stores now hold one token per account).\n`,
          );
        }
        return await work(accounts, lock);
      } catch (error) {
        if (error instanceof InvalidTokenDocument) throw new RuntimeFailure(error.message);
        throw error;
      } finally {
        await close();
      }
    },
  };
}

const SHARED_KEYS = ['store', 'dataDir', 'clientId', 'clientSecret', 'tokenUrl', 'tokenKeyFile'] as const;

/** Holds a refresh lock (an account's) while `work` writes, so no refresh starts from what it replaces. */
export async function underLock<T>(lock: Lock, name: string, work: () => Promise<T>): Promise<T> {
  const handle = await lock.acquire(name, { waitMs: 20_000, ttlMs: 30_000 });
  if (!handle) {
    throw new RuntimeFailure('Another process held the token refresh lock for 20 s. Try again in a moment.');
  }
  try {
    return await work();
  } finally {
    await handle.release();
  }
}

/** Adds a setting's flag, with the wording the settings table gives it. */
export function settingOption(command: Command, key: SharedKey, extra = ''): void {
  const spec = SETTINGS[key];
  command.option(`${spec.flag} ${spec.arg}`, `${spec.description}${extra} (env ${spec.env})`);
}

/** The options every auth subcommand takes. */
export function commonOptions(command: Command): Command {
  command.option('-c, --config <file>', 'YAML or JSON config file (env MELI_PROXY_CONFIG)');
  settingOption(command, 'store', ' The token is kept there.');
  command.option(
    `${SETTINGS.dataDir.flag} ${SETTINGS.dataDir.arg}`,
    `Directory of the embedded token file tokens.json (default $XDG_CONFIG_HOME/meli-proxy) (env ${SETTINGS.dataDir.env})`,
  );
  settingOption(command, 'tokenKeyFile');
  command.option('--json', 'print the result as one JSON object');
  return command;
}

/** Holds account `id`'s refresh lock while `work` writes. */
export function underAccountLock<T>(lock: Lock, id: string, work: () => Promise<T>): Promise<T> {
  return underLock(lock, accountLockName(id), work);
}

/**
 * The account a command acts on: the one `--account` names (user id or nickname), else the
 * default. Fails with what to do when there is none.
 */
export async function chosenAccount(accounts: AccountStore, ref: string | undefined): Promise<AccountEntry> {
  if (ref !== undefined) {
    const found = await accounts.find(ref);
    if (!found) {
      const known = (await accounts.list()).map(accountLabel).join(', ') || 'none';
      throw new UsageError(`No account "${ref}" in ${accounts.location} (accounts: ${known}).`);
    }
    return found;
  }
  const id = await accounts.defaultId();
  if (id === undefined) {
    throw new RuntimeFailure(
      `Not logged in: no account in ${accounts.location}. Run "meli-proxy auth login --client-id ID" (with the same --store/--data-dir).`,
    );
  }
  return accounts.entry(id);
}

export function accountLabel(entry: AccountEntry): string {
  const nickname = entry.token?.nickname;
  return nickname ? `${entry.id} (${nickname})` : entry.id;
}

/** The --account option of the commands that act on one account. */
export function accountOption(command: Command): Command {
  return command.option('--account <id|nickname>', 'the account to act on (default: the default account)');
}
