/**
 * `auth login` exactly as a person does it: the real CLI process prints the URL (--no-browser),
 * headless Chromium opens it and clicks "Allow" on the fake MercadoLibre page, the browser is
 * redirected to the CLI's listener, and the CLI stores the token and says who logged in.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMeli, startFakeMeli } from '../peers/oauth-server.js';
import { type ChromiumSession, launchChromium, requireChromium } from '../support/chromium.js';
import { freePort } from '../support/postgres.js';
import { TEST_SECRETS } from '../support/secrets.js';
import { BIN, ensureBuilt, ROOT } from './helpers/build.js';

const chromium = requireChromium('auth login end to end (test/auth/login-e2e.test.ts)');

/** The parent's environment without any meli-proxy setting that could change the outcome. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('MELI_') && !name.startsWith('XDG_') && name !== 'BROWSER') env[name] = value;
  }
  return { ...env, ...extra };
}

describe.skipIf(!chromium)('auth login end to end (CLI process + Chromium)', () => {
  let meli: FakeMeli;
  let home: string;
  let browser: ChromiumSession;
  let child: ChildProcess | undefined;

  let port: number;

  beforeAll(async () => {
    port = await freePort();
    [meli, home, browser] = await Promise.all([
      startFakeMeli({
        clients: [
          {
            id: '1234567890',
            secret: TEST_SECRETS.clientSecret,
            redirectUris: [`https://localhost:${port}/callback`],
          },
        ],
      }),
      mkdtemp(path.join(tmpdir(), 'meli-login-e2e-')),
      launchChromium(chromium),
      ensureBuilt(),
    ]).then(([a, b, c]) => [a, b, c] as const);
  }, 120_000);

  afterAll(async () => {
    child?.kill('SIGKILL');
    await browser?.close();
    await meli?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('prints the URL, Chromium clicks Allow, the CLI stores the token (0600) and says who logged in', async () => {
    const configHome = path.join(home, 'config');
    child = spawn(
      process.execPath,
      [
        BIN,
        'auth',
        'login',
        '--no-browser',
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
      ],
      {
        cwd: ROOT,
        env: cleanEnv({ XDG_CONFIG_HOME: configHome, HOME: home, MELI_CLIENT_SECRET: meli.client.secret }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));

    const urlPattern = /http:\/\/127\.0\.0\.1:\d+\/authorization\?\S+/;
    const deadline = Date.now() + 20_000;
    while (!urlPattern.test(stderr)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no URL printed:\n${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const url = urlPattern.exec(stderr)![0];
    expect(stderr).toContain('Open this URL in your browser');
    expect(stderr).not.toContain('Asked the system to open it');

    const page = await browser.context.newPage();
    await page.goto(url);
    await page.getByRole('button', { name: 'Allow' }).click();
    // The warning the CLI announced (the listener's certificate is its own): continue, as a person would.
    await page.locator('#details-button').click();
    await page.locator('#proceed-link').click();
    await page.waitForURL(/^https:\/\/localhost:\d+\/callback\?/);
    await expect.poll(() => page.textContent('body')).toContain('You can close this tab');

    expect(await exited, stderr).toBe(0);
    expect(stdout).toContain(
      `Logged in to MercadoLibre as TESTUSER_MLA (user id ${meli.user.id}, site MLA).`,
    );
    expect(stdout).toMatch(/The access token expires at \d{4}-\d\d-\d\dT\S+ \(in (6h|5h 59m)\)/);
    const file = path.join(configHome, 'meli-proxy', 'tokens.json');
    expect(stdout).toContain(`Stored as account ${meli.user.id} (the default account) in ${file}.`);

    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const stored = JSON.parse(await readFile(file, 'utf8')) as { entries: Record<string, { value: string }> };
    const document = JSON.parse(stored.entries[`meli:auth/accounts/${meli.user.id}`]!.value) as {
      value: {
        accessToken: string;
        refreshToken: string;
        nickname: string;
        siteId: string;
        clientId: string;
      };
    };
    expect(document.value).toMatchObject({
      nickname: 'TESTUSER_MLA',
      siteId: 'MLA',
      clientId: meli.client.id,
    });
    expect(document.value.accessToken).toMatch(/^APP_USR-/);
    expect(document.value.refreshToken).toMatch(/^TG-/);
    expect(`${stdout}${stderr}`).not.toContain(document.value.accessToken);
    expect(`${stdout}${stderr}`).not.toContain(meli.client.secret);
    expect(meli.stats.codeExchanges).toBe(1);
    expect(meli.stats.usersMe).toBe(1);
  });
});
