/**
 * `meli-proxy auth login`: the browser login (authorization code + PKCE), then the token stored
 * where `serve --inject-token` reads it. MercadoLibre redirects only to an https URI that matches
 * the registered one exactly, so the default is https://localhost:8765/callback, served with a
 * certificate made for this login.
 */

import { hostname } from 'node:os';
import { createInterface } from 'node:readline';
import { type Command, Option } from 'commander';
import { UNKNOWN_USER_ACCOUNT } from '../../auth/accounts.js';
import { openBrowser } from '../../auth/browser.js';
import { runLogin } from '../../auth/login.js';
import {
  createOAuthConfiguration,
  fetchCurrentUser,
  type MeliUser,
  OAuthError,
  resolveEndpoints,
} from '../../auth/oauth-client.js';
import { DEFAULT_SITE, describeSites } from '../../auth/sites.js';
import { tokenFromLogin } from '../../auth/token-store.js';
import { UsageError } from '../../errors.js';
import { isLoopbackHost } from '../../net/loopback.js';
import {
  type AuthFactory,
  type CommonFlags,
  commonOptions,
  settingOption,
  underAccountLock,
} from './factory.js';
import { expiryText, userJson, userText, writeJson } from './text.js';

/** The default callback port when no --redirect-uri says otherwise. */
export const DEFAULT_CALLBACK_PORT = 8765;

export interface LoginFlags extends CommonFlags {
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

export function registerLogin(auth: Command, f: AuthFactory): void {
  const login = commonOptions(
    auth
      .command('login')
      .description(
        'Log in with the browser (authorization code + PKCE) and store the token as the account of the user who logs in (adds an account, or re-authorizes it).',
      )
      .addOption(
        new Option('--site <id>', `MercadoLibre site whose login page to use: ${describeSites()}`).default(
          DEFAULT_SITE,
        ),
      )
      .option(
        '--redirect-uri <url>',
        `the redirect URI registered for the application, exactly (default https://localhost:${DEFAULT_CALLBACK_PORT}/callback); an https://localhost:PORT/… URI is served with a self-signed certificate`,
      )
      .option(
        '--port <n>',
        "port of the local listener (default: the redirect URI's; 0 picks a free one, only without --redirect-uri)",
      )
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
    '\nThe token is kept where `serve --inject-token` reads it: with the embedded store in\n$XDG_CONFIG_HOME/meli-proxy/tokens.json (file 0600, or under --data-dir), otherwise in the --store database, encrypted.',
  );
  login.action((flags: LoginFlags) => loginRun(flags, f));
}

export async function loginRun(flags: LoginFlags, f: AuthFactory): Promise<void> {
  const { io, say } = f;
  const config = f.settings(flags);
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
  if (!paste && !isLoopbackHost(redirectUri.hostname)) {
    say(
      `The redirect URI ${redirectUri.origin} is not this machine, so nothing can listen for it: switching to --paste.`,
    );
    paste = true;
  }
  const oauth = createOAuthConfiguration({ endpoints, clientId, clientSecret: config.clientSecret });

  await f.withAccounts(config, async (accounts, lock) => {
    const reader = paste ? lineReader(io.stdin ?? process.stdin) : undefined;
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
        now: f.now,
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
    // A refresh that is under way elsewhere cannot write over this: its save is a compare-and-set.
    const account = token.userId ?? UNKNOWN_USER_ACCOUNT;
    const { isDefault } = await underAccountLock(lock, account, () => accounts.saveLogin(token));
    if (flags.json) {
      writeJson(io, {
        status: 'logged_in',
        user: userJson(token),
        scope: token.scope,
        expiresAt: new Date(token.expiresAt).toISOString(),
        refreshable: token.refreshToken !== undefined,
        account,
        default: isDefault,
        encrypted: accounts.sealing,
        store: accounts.location,
      });
      return;
    }
    io.stdout.write(
      [
        `Logged in to MercadoLibre as ${userText(token)}.`,
        `The access token expires at ${expiryText(token.expiresAt, f.now())}; ${
          token.refreshToken
            ? 'serve --inject-token refreshes it ahead of time.'
            : 'no refresh token was issued, so log in again before then.'
        }`,
        `Stored as account ${account}${isDefault ? ' (the default account)' : ''} in ${accounts.location}${accounts.sealing ? ', encrypted' : ''}.`,
        '',
      ].join('\n'),
    );
  });
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

/** The redirect URI to send and the port to listen on. */
export function redirectFrom(flags: Pick<LoginFlags, 'redirectUri' | 'port'>): {
  redirectUri: URL;
  listenPort: number | undefined;
} {
  const port = flags.port === undefined ? undefined : parsePort(flags.port);
  if (flags.redirectUri === undefined) {
    return {
      redirectUri: new URL(`https://localhost:${port ?? DEFAULT_CALLBACK_PORT}/callback`),
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
    throw new UsageError(`Invalid --redirect-uri "${flags.redirectUri}": expected an https:// URL.`);
  }
  if (port === 0 || redirectUri.port === '0') {
    throw new UsageError(
      `--port 0 cannot be used with --redirect-uri ${redirectUri.href}: the authorization server redirects only to the registered URI, exactly, and a port picked at random can never match it. Give the registered port, or leave --redirect-uri out.`,
    );
  }
  return { redirectUri, listenPort: port };
}

function lineReader(input: NodeJS.ReadableStream): { lines: AsyncIterator<string>; close(): void } {
  const reader = createInterface({ input, terminal: false });
  return { lines: reader[Symbol.asyncIterator](), close: () => reader.close() };
}
