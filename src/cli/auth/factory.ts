/**
 * What every `auth` subcommand shares: its I/O (injected by tests), its settings, and the token
 * store and refresh lock it opens and always closes (src/auth/token-backend.ts decides which).
 */
import type { Command } from 'commander';
import type { Lock } from '../../auth/lock.js';
import { openTokenBackend } from '../../auth/token-backend.js';
import { REFRESH_LOCK } from '../../auth/token-manager.js';
import { InvalidTokenDocument, type TokenStore } from '../../auth/token-store.js';
import { type Config, loadConfig, SETTINGS, type SettingKey } from '../../config.js';
import { RuntimeFailure } from '../../errors.js';
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
}

export interface AuthFactory {
  io: AuthIO;
  now(): number;
  /** One progress line for the user (stderr). */
  say(line: string): void;
  settings(flags: CommonFlags): Config;
  /** Opens the token store and the refresh lock, runs `work`, and closes both whatever happens. */
  withTokens<T>(config: Config, work: (tokens: TokenStore, lock: Lock) => Promise<T>): Promise<T>;
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
    async withTokens(config, work) {
      const { tokens, lock, close } = await openTokenBackend(config, io.env, { role: 'command' });
      try {
        return await work(tokens, lock);
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

/** Holds the fleet's refresh lock while `work` writes, so no refresh starts from what it replaces. */
export async function underLock<T>(lock: Lock, work: () => Promise<T>): Promise<T> {
  const handle = await lock.acquire(REFRESH_LOCK, { waitMs: 20_000, ttlMs: 30_000 });
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
