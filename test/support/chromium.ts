/**
 * Headless Chromium for tests that drive a page as a person would, through playwright-core (which
 * downloads nothing: it drives the Debian `chromium` package).
 *
 *   chromiumPath()            the executable (MELI_TEST_CHROMIUM, else /usr/bin/chromium or on PATH),
 *                             or undefined
 *   requireChromium(suite)    the path; when there is none: under CI=true it throws (CI must have it),
 *                             otherwise it prints a loud notice and returns undefined, so the caller
 *                             can skip (describe.skipIf(!path))
 *   launchChromium()          a fresh browser with its own temporary profile; close() removes it
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function chromiumPath(): string | undefined {
  const chosen = process.env.MELI_TEST_CHROMIUM;
  if (chosen) return existsSync(chosen) ? chosen : undefined;
  const found = CANDIDATES.find((candidate) => existsSync(candidate));
  if (found) return found;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      const candidate = path.join(dir, name);
      if (dir && existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

export function requireChromium(suite: string): string | undefined {
  const found = chromiumPath();
  if (found) return found;
  const message = `chromium is not installed: "${suite}" needs it (apt-get install chromium, or set MELI_TEST_CHROMIUM)`;
  if (process.env.CI === 'true') throw new Error(message);
  const bar = '!'.repeat(Math.min(100, message.length + 10));
  console.warn(`\n${bar}\n!!!  SKIPPED: ${message}\n${bar}\n`);
  return undefined;
}

export interface ChromiumSession {
  /** A persistent context on a fresh profile directory: pages share it. */
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(executablePath = chromiumPath()): Promise<ChromiumSession> {
  if (!executablePath) throw new Error('chromium is not installed');
  const profile = await mkdtemp(path.join(tmpdir(), 'meli-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    return {
      context,
      async close() {
        await context.close().catch(() => undefined);
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
}
