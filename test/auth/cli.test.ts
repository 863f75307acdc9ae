/**
 * `meli-proxy auth …` in-process with injected I/O, against the fake MercadoLibre. The "browser"
 * is a function that presses Allow (or Deny) on the fake page and follows the redirect to the
 * local listener, as a real one would.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AuthIO } from '../../src/cli/auth/index.js';
import { runCli } from '../../src/cli/program.js';
import { clickThrough, type FakeMeli, openRedirect, startFakeMeli } from '../peers/oauth-server.js';
import { freePort } from '../support/postgres.js';
import { TEST_SECRETS } from '../support/secrets.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

type Browser = (url: string) => Promise<void>;

describe('meli-proxy auth', () => {
  let meli: FakeMeli;
  let home: string;
  /** The listener's port: the default redirect URI https://localhost:PORT/callback is registered. */
  let port: number;
  const pages: string[] = [];

  beforeAll(async () => {
    port = await freePort();
    meli = await startFakeMeli({
      clients: [
        {
          id: '1234567890',
          secret: TEST_SECRETS.clientSecret,
          redirectUris: ['https://example.com/meli/callback', `https://localhost:${port}/callback`],
        },
      ],
    });
  });
  afterAll(async () => {
    await meli.close();
  });
  afterEach(async () => {
    if (home) await rm(home, { recursive: true, force: true });
    pages.length = 0;
  });

  async function freshHome(): Promise<string> {
    home = await mkdtemp(path.join(tmpdir(), 'meli-auth-cli-'));
    return home;
  }

  function env(): NodeJS.ProcessEnv {
    return {
      XDG_CONFIG_HOME: path.join(home, 'config'),
      HOME: home,
      MELI_CLIENT_SECRET: meli.client.secret,
    };
  }

  /** A browser that presses `decision` and follows the redirect to the listener. */
  const pressing =
    (decision: 'allow' | 'deny'): Browser =>
    async (url) => {
      const redirect = await clickThrough(url, decision);
      const page = await openRedirect(redirect);
      pages.push(await page.text());
    };

  async function run(args: string[], extra: Partial<AuthIO> & { browser?: Browser } = {}): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const { browser, ...rest } = extra;
    const io: AuthIO = {
      stdout: { write: (chunk: string) => (stdout += chunk) },
      stderr: { write: (chunk: string) => (stderr += chunk) },
      env: env(),
      cwd: home,
      openBrowser: async (url) => {
        // Like a real browser: runs on its own while the command waits for the redirect.
        if (browser)
          void browser(url).catch((error: unknown) => pages.push(`browser failed: ${String(error)}`));
        return browser !== undefined;
      },
      ...rest,
    };
    const code = await runCli(args, io);
    return { code, stdout, stderr };
  }

  const loginArgs = (): string[] => [
    'auth',
    'login',
    '--client-id',
    meli.client.id,
    '--auth-url',
    meli.authorizationUrl,
    '--token-url',
    meli.tokenUrl,
    '--api-url',
    meli.apiUrl,
    '--port',
    String(port),
  ];

  it('logs in, stores the token privately, and shows, refreshes and removes it', async () => {
    await freshHome();
    const login = await run(loginArgs(), { browser: pressing('allow') });
    expect(login.stderr).toContain('Open this URL in your browser');
    expect(login.stderr).toContain(meli.authorizationUrl);
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain(
      `Logged in to MercadoLibre as TESTUSER_MLA (user id ${meli.user.id}, site MLA).`,
    );
    expect(login.stdout).toMatch(/expires at \S+ \(in (6h|5h 59m)\)/);
    await until(() => pages.length > 0);
    expect(pages.join()).toContain('Logged in');

    const dir = path.join(home, 'config', 'meli-proxy');
    const file = path.join(dir, 'tokens.json');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const stored = await readFile(file, 'utf8');
    const accessToken = /APP_USR-[A-Za-z0-9_-]+/.exec(stored)?.[0];
    expect(accessToken).toBeDefined();
    expect(stored).not.toContain(meli.client.secret);
    for (const text of [login.stdout, login.stderr]) {
      expect(text).not.toContain(accessToken);
      expect(text).not.toContain(meli.client.secret);
    }

    const status = await run(['auth', 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('TESTUSER_MLA');
    expect(status.stdout).toContain('offline_access read write');
    expect(status.stdout).not.toContain(accessToken);
    const shown = await run(['auth', 'status', '--show-token', '--json']);
    const parsed = JSON.parse(shown.stdout) as Record<string, unknown>;
    expect(parsed).toMatchObject({
      loggedIn: true,
      user: { id: String(meli.user.id), nickname: 'TESTUSER_MLA', siteId: 'MLA' },
      scopes: ['offline_access', 'read', 'write'],
      expired: false,
      refreshable: true,
      generation: 1,
      accessToken,
    });

    const refresh = await run(['auth', 'refresh', '--token-url', meli.tokenUrl, '--json']);
    expect(refresh.code, refresh.stderr).toBe(0);
    expect(JSON.parse(refresh.stdout)).toMatchObject({ result: 'refreshed', generation: 2 });
    expect(await readFile(file, 'utf8')).not.toContain(accessToken);

    const logout = await run(['auth', 'logout']);
    expect(logout.code).toBe(0);
    expect(logout.stdout).toContain('Logged out TESTUSER_MLA');
    const after = await run(['auth', 'status', '--json']);
    expect(after.code).toBe(1);
    expect(JSON.parse(after.stdout)).toMatchObject({ loggedIn: false });
    expect(after.stderr).toContain('Not logged in');
  });

  it('prints the URL only with --no-browser, and finishes when someone opens it', async () => {
    await freshHome();
    let opened = false;
    const io = {
      openBrowser: async () => {
        opened = true;
        return true;
      },
    };
    const stderr = new PassThrough();
    let seen = '';
    const done = run([...loginArgs(), '--no-browser', '--json'], {
      ...io,
      stderr: {
        write: (chunk: string) => {
          seen += chunk;
          stderr.write(chunk);
          return true;
        },
      },
    });
    while (!/http:\/\/127\.0\.0\.1:\d+\/authorization\?\S+/.test(seen))
      await new Promise((r) => setTimeout(r, 10));
    const url = /http:\/\/127\.0\.0\.1:\d+\/authorization\?\S+/.exec(seen)![0];
    await pressing('allow')(url);
    const result = await done;
    expect(result.code).toBe(0);
    expect(opened).toBe(false);
    expect(JSON.parse(result.stdout)).toMatchObject({
      status: 'logged_in',
      user: { nickname: 'TESTUSER_MLA' },
    });
  });

  it('reads the redirected URL from stdin with --paste', async () => {
    await freshHome();
    const stdin = new PassThrough();
    const args = [
      ...loginArgs(),
      '--paste',
      '--redirect-uri',
      'https://example.com/meli/callback',
      '--timeout',
      '10s',
    ];
    const result = await run(args, {
      stdin,
      browser: async (url) => {
        const redirect = await clickThrough(url, 'allow');
        expect(redirect.origin).toBe('https://example.com');
        stdin.write('not a url\n');
        stdin.write(`${redirect.href}\n`);
      },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('paste it here');
    expect(result.stderr).toContain('That is not the redirected URL');
    expect(result.stdout).toContain('Logged in to MercadoLibre as TESTUSER_MLA');
  });

  it('switches to --paste when the redirect URI is not this machine', async () => {
    await freshHome();
    const stdin = new PassThrough();
    stdin.end();
    const result = await run([...loginArgs(), '--redirect-uri', 'https://example.com/cb'], { stdin });
    expect(result.stderr).toContain('switching to --paste');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Standard input ended before a redirected URL was pasted');
  });

  it('exits 1 and says what to do when access is denied; the listener is closed', async () => {
    await freshHome();
    const result = await run(loginArgs(), { browser: pressing('deny') });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/Access was denied.*choose Allow/);
    await until(() => pages.length > 0);
    expect(pages.join()).toContain('Login failed');
    const port = /127\.0\.0\.1:(\d+)\/callback/.exec(result.stderr)?.[1];
    await expect(fetch(`http://127.0.0.1:${port}/callback?code=x&state=y`)).rejects.toThrow();
    const status = await run(['auth', 'status']);
    expect(status.code).toBe(1);
  });

  it('refuses a redirect with a wrong state and goes on waiting for its own; exits 1 on a bad code', async () => {
    await freshHome();
    const exchangesBefore = meli.stats.codeExchanges;
    let forgedStatus = 0;
    const wrongStateFirst = await run(loginArgs(), {
      browser: async (url) => {
        const redirect = await clickThrough(url, 'allow');
        const forged = new URL(redirect);
        forged.searchParams.set('state', 'forged');
        forgedStatus = (await openRedirect(forged)).status;
        await openRedirect(redirect);
      },
    });
    expect(forgedStatus).toBe(400);
    expect(wrongStateFirst.stderr).toMatch(/Ignored a redirect with a different "state"/);
    expect(wrongStateFirst.code).toBe(0);
    // Only the login's own redirect was exchanged.
    expect(meli.stats.codeExchanges).toBe(exchangesBefore + 1);

    await freshHome();
    const onlyForged = await run([...loginArgs(), '--timeout', '2s'], {
      browser: async (url) => {
        const redirect = await clickThrough(url, 'allow');
        redirect.searchParams.set('state', 'forged');
        await openRedirect(redirect);
      },
    });
    expect(onlyForged.code).toBe(1);
    expect(onlyForged.stderr).toMatch(/No login redirect arrived within 2s/);
    expect(meli.stats.codeExchanges).toBe(exchangesBefore + 1);

    const badCode = await run(loginArgs(), {
      browser: async (url) => {
        const redirect = await clickThrough(url, 'allow');
        redirect.searchParams.set('code', 'TG-code-bogus');
        await openRedirect(redirect);
      },
    });
    expect(badCode.code).toBe(1);
    expect(badCode.stderr).toMatch(/rejected the grant.*auth login/);
    expect(badCode.stderr).not.toContain('TG-code-bogus');
  });

  it("ends at once with the server's reason on an error redirect without state", async () => {
    await freshHome();
    const result = await run([...loginArgs(), '--timeout', '5m'], {
      browser: async () => {
        // What the authorization server does with a redirect URI it does not have registered.
        const refusal = new URL(`https://localhost:${port}/callback`);
        refusal.searchParams.set('error', 'redirect_uri_mismatch');
        refusal.searchParams.set('error_description', 'The redirect_uri does not match');
        pages.push(await (await openRedirect(refusal)).text());
      },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/error=redirect_uri_mismatch \(The redirect_uri does not match\)/);
    expect(result.stderr).toContain('--redirect-uri');
    await until(() => pages.length > 0);
    expect(pages.join()).toContain('Login failed');
  }, 20_000);

  it('says what the browser warning about the certificate is, and why', async () => {
    await freshHome();
    const login = await run(loginArgs(), { browser: pressing('allow') });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stderr).toContain(`Waiting for the login redirect on https://127.0.0.1:${port}/callback`);
    expect(login.stderr).toMatch(/redirects only to https.*not private.*about this listener/);
  });

  it('gives up after --timeout', async () => {
    await freshHome();
    const started = Date.now();
    const result = await run([...loginArgs(), '--timeout', '1s']);
    expect(result.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.stderr).toContain('Could not open a browser');
    expect(result.stderr).toMatch(/No login redirect arrived within 1s/);
  });

  it('refuses bad input with exit code 2', async () => {
    await freshHome();
    const cases: Array<[string[], RegExp]> = [
      [['auth', 'login', '--port', '0'], /needs the application id: pass --client-id/],
      [[...loginArgs(), '--site', 'XX'], /Unknown --site "XX"/],
      [[...loginArgs(), '--timeout', '10'], /Invalid --timeout "10"/],
      [[...loginArgs(), '--api-url', 'http://api.example.com'], /Invalid --api-url.*loopback/],
      [[...loginArgs(), '--store', 'memory'], /--store memory keeps nothing/],
      [['auth', 'login', '--client-id', 'x', '--token-url', 'http://example.com/t'], /Invalid --token-url/],
      [['auth', 'status', '--store', 'mysql://x'], /Invalid --store/],
      [
        [...loginArgs(), '--redirect-uri', `https://localhost:${port}/callback`, '--port', '0'],
        /--port 0 cannot be used with --redirect-uri .*can never match/,
      ],
      [
        [...loginArgs(), '--store', 'postgres://proxy:pw@127.0.0.1:1/meli'],
        /must be encrypted, and no token key is set.*openssl rand -base64 32/,
      ],
      [['auth', 'status', '--store', 'redis://127.0.0.1:1'], /MELI_PROXY_TOKEN_KEY/],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    const noSecret = await run(loginArgs(), { env: { XDG_CONFIG_HOME: path.join(home, 'c') } });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain('MELI_CLIENT_SECRET');
  });

  it('rotate-key seals a stored token, then moves it to a new key while the old one still opens it', async () => {
    await freshHome();
    const file = path.join(home, 'config', 'meli-proxy', 'tokens.json');
    expect((await run(loginArgs(), { browser: pressing('allow') })).code).toBe(0);
    expect(await readFile(file, 'utf8')).toContain('APP_USR-');
    const oldKey = randomBytes(32).toString('base64');
    const newKey = randomBytes(32).toString('base64');
    const withKey = (key: string) => ({ env: { ...env(), MELI_PROXY_TOKEN_KEY: key } });

    const noKey = await run(['auth', 'rotate-key']);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('openssl rand -base64 32');

    const sealed = await run(['auth', 'rotate-key', '--json'], withKey(oldKey));
    expect(sealed.code, sealed.stderr).toBe(0);
    const first = (JSON.parse(sealed.stdout) as { accounts: Array<{ from: string | null; to: string }> })
      .accounts[0]!;
    expect(first.from).toBeNull();
    expect(await readFile(file, 'utf8')).not.toContain('APP_USR-');
    expect(await readFile(file, 'utf8')).not.toContain('TG-');
    const status = await run(['auth', 'status'], withKey(oldKey));
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`encrypted with key ${first.to}`);
    const keyless = await run(['auth', 'status']);
    expect(keyless.code).toBe(2);
    expect(keyless.stderr).toContain(`sealed with key ${first.to}`);

    const rotated = await run(['auth', 'rotate-key', '--json'], withKey(`${newKey},${oldKey}`));
    expect(rotated.code, rotated.stderr).toBe(0);
    const second = (JSON.parse(rotated.stdout) as { accounts: Array<{ from: string; to: string }> })
      .accounts[0]!;
    expect(second.from).toBe(first.to);
    expect(second.to).not.toBe(first.to);
    expect((await run(['auth', 'status'], withKey(newKey))).code).toBe(0);
    expect((await run(['auth', 'status'], withKey(oldKey))).code).toBe(2);
    for (const result of [sealed, rotated, status]) {
      expect(`${result.stdout}${result.stderr}`).not.toContain(oldKey);
      expect(`${result.stdout}${result.stderr}`).not.toContain(newKey);
    }
  });

  it('keeps the token under --data-dir when one is given', async () => {
    await freshHome();
    const dataDir = path.join(home, 'elsewhere');
    // A directory someone made readable by all: the token's directory is made private.
    await mkdir(dataDir, { mode: 0o755 });
    await chmod(dataDir, 0o755);
    const login = await run([...loginArgs(), '--data-dir', dataDir], { browser: pressing('allow') });
    expect(login.code, login.stderr).toBe(0);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(login.stdout).toContain(path.join(dataDir, 'tokens.json'));
    expect((await stat(path.join(dataDir, 'tokens.json'))).mode & 0o777).toBe(0o600);
    expect((await run(['auth', 'status'])).code).toBe(1);
    expect((await run(['auth', 'status', '--data-dir', dataDir])).code).toBe(0);
  });
});

async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
