/**
 * `meli-proxy auth login | status | refresh | logout`: get a MercadoLibre token for the proxy and
 * look after it. Progress goes to stderr, results to stdout (`--json` makes them one JSON object).
 * The token lives where `serve --inject-token` reads it: see src/auth/open-token-store.ts.
 */
import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import { type Command, Option } from 'commander';
import { openBrowser } from '../auth/browser.js';
import { InProcessLock, type Lock } from '../auth/lock.js';
import { formatDuration, runLogin } from '../auth/login.js';
import {
  createOAuthConfiguration,
  fetchCurrentUser,
  type MeliUser,
  OAuthError,
  resolveEndpoints,
} from '../auth/oauth-client.js';
import { openTokenStore } from '../auth/open-token-store.js';
import { refreshLockFor, tokenRefresher } from '../auth/proxy-auth.js';
import { DEFAULT_SITE, describeSites } from '../auth/sites.js';
import { REFRESH_LOCK, TokenManager } from '../auth/token-manager.js';
import {
  InvalidTokenDocument,
  type StoredToken,
  type TokenStore,
  tokenFromLogin,
} from '../auth/token-store.js';
import { type Config, loadConfig, SETTINGS, type SettingKey } from '../config.js';
import { RuntimeFailure, UsageError } from '../errors.js';
import { parseStoreUrl } from '../store/index.js';
import type { CliIO } from './io.js';

/** What the auth commands need beyond CliIO; each has a real default. Tests inject them. */
export interface AuthIO extends CliIO {
  stdin?: NodeJS.ReadableStream;
  openBrowser?: (url: string) => Promise<boolean>;
  now?: () => number;
}

/** The default callback port when no --redirect-uri says otherwise. */
export const DEFAULT_CALLBACK_PORT = 8765;

type SharedKey = Extract<SettingKey, 'store' | 'dataDir' | 'clientId' | 'clientSecret' | 'tokenUrl'>;

interface CommonFlags extends Partial<Record<SharedKey, string>> {
  config?: string;
  json?: boolean;
}

interface LoginFlags extends CommonFlags {
  site: string;
  redirectUri?: string;
  port?: string;
  browser: boolean;
  paste?: boolean;
  timeout: string;
  authUrl?: string;
  apiUrl?: string;
  scope?: string;
}

interface StatusFlags extends CommonFlags {
  showToken?: boolean;
}

/** Adds a setting's flag, with the wording the settings table gives it. */
function settingOption(command: Command, key: SharedKey, extra = ''): void {
  const spec = SETTINGS[key];
  command.option(`${spec.flag} ${spec.arg}`, `${spec.description}${extra} (env ${spec.env})`);
}

function commonOptions(command: Command): Command {
  command.option('-c, --config <file>', 'YAML or JSON config file (env MELI_PROXY_CONFIG)');
  settingOption(command, 'store', ' The token is kept there.');
  command.option(
    `${SETTINGS.dataDir.flag} ${SETTINGS.dataDir.arg}`,
    `Directory of the embedded token file tokens.json (default $XDG_CONFIG_HOME/meli-proxy) (env ${SETTINGS.dataDir.env})`,
  );
  command.option('--json', 'print the result as one JSON object');
  return command;
}

function settingsFrom(flags: CommonFlags, io: CliIO): Config {
  const settings: Partial<Record<SettingKey, unknown>> = {};
  for (const key of ['store', 'dataDir', 'clientId', 'clientSecret', 'tokenUrl'] as const) {
    if (flags[key] !== undefined) settings[key] = flags[key];
  }
  return loadConfig({ file: flags.config, env: io.env, flags: settings, cwd: io.cwd });
}

async function lockFor(config: Config): Promise<Lock> {
  const target = parseStoreUrl(config.store);
  return target.kind === 'embedded' ? new InProcessLock() : refreshLockFor(config.store, target.kind);
}

/** Opens the token store and the refresh lock, runs `work`, and closes both whatever happens. */
async function withTokens<T>(
  config: Config,
  io: CliIO,
  work: (tokens: TokenStore, lock: Lock) => Promise<T>,
): Promise<T> {
  const tokens = await openTokenStore(config, io.env);
  const lock = await lockFor(config).catch(async (error: unknown) => {
    await tokens.close();
    throw error;
  });
  try {
    return await work(tokens, lock);
  } catch (error) {
    if (error instanceof InvalidTokenDocument) throw new RuntimeFailure(error.message);
    throw error;
  } finally {
    await Promise.allSettled([lock.close(), tokens.close()]);
  }
}

/** Holds the fleet's refresh lock while `work` writes, so no replica's refresh overwrites it. */
async function underLock<T>(lock: Lock, work: () => Promise<T>): Promise<T> {
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

function parseTimeout(raw: string): number {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(raw.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match?.[2] ?? 'ms'] ?? 1;
  const value = match ? Number(match[1]) * unit : Number.NaN;
  if (!(value >= 1000 && value <= 3_600_000)) {
    throw new UsageError(`Invalid --timeout "${raw}": expected a duration from 1s to 1h, such as 90s or 5m.`);
  }
  return value;
}

function parsePort(raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
    throw new UsageError(
      `Invalid --port "${raw}": expected an integer from 0 to 65535 (0 picks a free port).`,
    );
  }
  return Number(raw);
}

function redirectFrom(flags: LoginFlags): { redirectUri: URL; listenPort: number | undefined } {
  const port = flags.port === undefined ? undefined : parsePort(flags.port);
  if (flags.redirectUri === undefined) {
    return {
      redirectUri: new URL(`http://127.0.0.1:${port ?? DEFAULT_CALLBACK_PORT}/callback`),
      listenPort: undefined,
    };
  }
  let redirectUri: URL;
  try {
    redirectUri = new URL(flags.redirectUri);
  } catch {
    throw new UsageError(
      `Invalid --redirect-uri "${flags.redirectUri}": give the redirect URI registered for the application, e.g. https://localhost:8765/callback.`,
    );
  }
  if (redirectUri.protocol !== 'http:' && redirectUri.protocol !== 'https:') {
    throw new UsageError(
      `Invalid --redirect-uri "${flags.redirectUri}": expected an http:// or https:// URL.`,
    );
  }
  return { redirectUri, listenPort: port };
}

function isLocalRedirect(url: URL): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

function lineReader(io: AuthIO): { lines: AsyncIterator<string>; close(): void } {
  const input = io.stdin ?? process.stdin;
  const reader = createInterface({ input, terminal: false });
  return { lines: reader[Symbol.asyncIterator](), close: () => reader.close() };
}

function userText(token: Pick<StoredToken, 'nickname' | 'userId' | 'siteId'>): string {
  const who = token.nickname ?? `user ${token.userId ?? '(unknown)'}`;
  const details = [
    token.userId ? `user id ${token.userId}` : undefined,
    token.siteId ? `site ${token.siteId}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
  return details ? `${who} (${details})` : who;
}

function expiryText(expiresAt: number, now: number): string {
  const when = new Date(expiresAt).toISOString();
  return expiresAt > now
    ? `${when} (in ${formatDuration(expiresAt - now)})`
    : `${when} (expired ${formatDuration(now - expiresAt)} ago)`;
}

function writeJson(io: CliIO, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function registerAuth(program: Command, io: AuthIO): void {
  const now = io.now ?? Date.now;
  const say = (line: string): void => {
    io.stderr.write(`${line}\n`);
  };
  const auth = program
    .command('auth')
    .description('Log in to MercadoLibre and manage the token the proxy injects (serve --inject-token).');

  const login = commonOptions(
    auth
      .command('login')
      .description('Log in with the browser (authorization code + PKCE) and store the token.')
      .addOption(
        new Option('--site <id>', `MercadoLibre site whose login page to use: ${describeSites()}`).default(
          DEFAULT_SITE,
        ),
      )
      .option(
        '--redirect-uri <url>',
        `the redirect URI registered for the application (default http://127.0.0.1:${DEFAULT_CALLBACK_PORT}/callback); https://localhost:PORT/… gets a self-signed certificate`,
      )
      .option('--port <n>', "port of the local listener (default: the redirect URI's; 0 picks a free one)")
      .option('--no-browser', 'only print the URL to open')
      .option('--paste', 'no listener: paste the URL the browser was redirected to')
      .option('--timeout <duration>', 'how long to wait for the browser (e.g. 90s, 5m)', '5m')
      .option(
        '--auth-url <url>',
        "authorization endpoint, instead of the site's (tests, self-hosted mirrors)",
      )
      .option('--api-url <url>', 'API base for /users/me (default https://api.mercadolibre.com)')
      .addOption(new Option('--scope <scopes>', 'scope parameter for generic OAuth servers').hideHelp()),
  );
  settingOption(login, 'clientId');
  settingOption(login, 'clientSecret');
  settingOption(login, 'tokenUrl');
  login.addHelpText(
    'after',
    '\nThe token is kept where `serve --inject-token` reads it: with the embedded store in\n$XDG_CONFIG_HOME/meli-proxy/tokens.json (file 0600, or under --data-dir), otherwise in the --store database.',
  );
  login.action(async (flags: LoginFlags) => {
    const config = settingsFrom(flags, io);
    const clientId = config.clientId;
    if (!clientId) {
      throw new UsageError('auth login needs the application id: pass --client-id (or set MELI_CLIENT_ID).');
    }
    if (!config.clientSecret) {
      throw new UsageError(
        'auth login needs the application secret: set MELI_CLIENT_SECRET (or pass --client-secret, which other users of this machine may see).',
      );
    }
    const timeoutMs = parseTimeout(flags.timeout);
    const endpoints = resolveEndpoints({
      site: flags.site,
      authUrl: flags.authUrl,
      tokenUrl: config.tokenUrl,
      apiUrl: flags.apiUrl,
    });
    const { redirectUri, listenPort } = redirectFrom(flags);
    let paste = flags.paste === true;
    if (!paste && !isLocalRedirect(redirectUri)) {
      say(
        `The redirect URI ${redirectUri.origin} is not this machine, so nothing can listen for it: switching to --paste.`,
      );
      paste = true;
    }
    const oauth = createOAuthConfiguration({ endpoints, clientId, clientSecret: config.clientSecret });

    await withTokens(config, io, async (tokens, lock) => {
      const reader = paste ? lineReader(io) : undefined;
      let result: Awaited<ReturnType<typeof runLogin>>;
      try {
        result = await runLogin({
          oauth,
          redirectUri,
          listenPort,
          paste,
          openBrowser: flags.browser,
          timeoutMs,
          authorizationParameters: flags.scope ? { scope: flags.scope } : undefined,
          say,
          open: io.openBrowser ?? ((url) => openBrowser(url, io.env)),
          lines: reader?.lines,
          now,
        });
      } finally {
        reader?.close();
      }
      let user: MeliUser | undefined;
      try {
        user = await fetchCurrentUser(oauth, endpoints.apiUrl, result.grant.accessToken);
      } catch (error) {
        // A token the API refuses is worth nothing; an API that is merely down does not void it.
        if (error instanceof OAuthError && error.code === 'unauthorized') throw error;
        say(
          `Warning: could not ask /users/me who logged in (${(error as Error).message}); storing the token anyway.`,
        );
      }
      const token = tokenFromLogin({
        grant: result.grant,
        sentAt: result.sentAt,
        clientId,
        user,
        writtenBy: `${hostname()}:${process.pid} auth login`,
      });
      await underLock(lock, () => tokens.save(token));
      if (flags.json) {
        writeJson(io, {
          status: 'logged_in',
          user: { id: token.userId, nickname: token.nickname, siteId: token.siteId },
          scope: token.scope,
          expiresAt: new Date(token.expiresAt).toISOString(),
          refreshable: token.refreshToken !== undefined,
          store: tokens.location,
        });
        return;
      }
      io.stdout.write(
        [
          `Logged in to MercadoLibre as ${userText(token)}.`,
          `The access token expires at ${expiryText(token.expiresAt, now())}; ${
            token.refreshToken
              ? 'serve --inject-token refreshes it ahead of time.'
              : 'no refresh token was issued, so log in again before then.'
          }`,
          `Stored in ${tokens.location}.`,
          '',
        ].join('\n'),
      );
    });
  });

  const status = commonOptions(
    auth
      .command('status')
      .description('Show who is logged in, the scopes and when the token expires.')
      .option('--show-token', 'also print the access token'),
  );
  status.action(async (flags: StatusFlags) => {
    const config = settingsFrom(flags, io);
    await withTokens(config, io, async (tokens) => {
      const token = await tokens.load();
      if (!token) {
        if (flags.json) writeJson(io, { loggedIn: false, store: tokens.location });
        throw new RuntimeFailure(
          `Not logged in: no token in ${tokens.location}. Run "meli-proxy auth login --client-id ID" (with the same --store/--data-dir).`,
        );
      }
      const at = now();
      if (flags.json) {
        writeJson(io, {
          loggedIn: true,
          user: { id: token.userId, nickname: token.nickname, siteId: token.siteId },
          clientId: token.clientId,
          scopes: token.scope ? token.scope.split(' ').filter(Boolean) : [],
          expiresAt: new Date(token.expiresAt).toISOString(),
          expiresInSeconds: Math.max(0, Math.round((token.expiresAt - at) / 1000)),
          expired: token.expiresAt <= at,
          refreshable: token.refreshToken !== undefined,
          refreshedAt: new Date(token.obtainedAt).toISOString(),
          generation: token.generation,
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
        `  stored in:    ${tokens.location}`,
      ];
      if (flags.showToken) lines.push(`  access token: ${token.accessToken}`);
      io.stdout.write(`${lines.join('\n')}\n`);
    });
  });

  const refresh = commonOptions(
    auth
      .command('refresh')
      .description('Trade the stored refresh token for a new token now (one per fleet, under the lock).'),
  );
  settingOption(refresh, 'clientId');
  settingOption(refresh, 'clientSecret');
  settingOption(refresh, 'tokenUrl');
  refresh.action(async (flags: CommonFlags) => {
    const config = settingsFrom(flags, io);
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
    await withTokens(config, io, async (tokens, lock) => {
      const messages: string[] = [];
      const manager = new TokenManager({
        tokens,
        lock,
        refresher,
        now,
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
        if (flags.json) {
          writeJson(io, {
            result: outcome.result === 'success' ? 'refreshed' : 'already_refreshed',
            user: { id: token.userId, nickname: token.nickname, siteId: token.siteId },
            expiresAt: new Date(token.expiresAt).toISOString(),
            generation: token.generation,
            store: tokens.location,
          });
          return;
        }
        messages.push(
          outcome.result === 'success'
            ? `Refreshed the token of ${userText(token)}.`
            : `Another process had just refreshed the token of ${userText(token)}; nothing to do.`,
          `The access token expires at ${expiryText(token.expiresAt, now())}.`,
        );
        io.stdout.write(`${messages.join('\n')}\n`);
      } finally {
        await manager.stop();
      }
    });
  });

  const logout = commonOptions(
    auth
      .command('logout')
      .description('Remove the stored token; the proxy stops injecting it within a second.'),
  );
  logout.action(async (flags: CommonFlags) => {
    const config = settingsFrom(flags, io);
    await withTokens(config, io, async (tokens, lock) => {
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
  });

  for (const command of auth.commands) command.exitOverride();
  auth.exitOverride();
}
