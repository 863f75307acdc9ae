/**
 * Opens a URL in the user's browser, softly: when that is not possible the caller prints the URL
 * and the user opens it. `$BROWSER` wins when set (as with git and gh); otherwise the platform's
 * opener: `open` (macOS), `rundll32 url.dll,FileProtocolHandler` (Windows; `start` would need a
 * shell and mangles `&`), `xdg-open` (everything else).
 */
import { spawn } from 'node:child_process';

export function browserCommand(
  url: string,
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): [string, string[]] {
  const chosen = env.BROWSER?.trim();
  if (chosen) return [chosen, [url]];
  if (platform === 'darwin') return ['open', [url]];
  if (platform === 'win32') return ['rundll32', ['url.dll,FileProtocolHandler', url]];
  return ['xdg-open', [url]];
}

/** Resolves true once the opener started, false when it could not be run. Never rejects. */
export function openBrowser(url: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const [command, args] = browserCommand(url, env);
  return new Promise((resolve) => {
    try {
      const child = spawn(command, args, { stdio: 'ignore', detached: true });
      child.once('error', () => resolve(false));
      child.once('spawn', () => {
        // The browser outlives us; its exit status is not ours to wait for.
        child.unref();
        resolve(true);
      });
    } catch {
      resolve(false);
    }
  });
}
