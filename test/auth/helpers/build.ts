/**
 * Tests that run the real CLI (`node bin/meli-proxy.js`) need dist/ built from the current sources.
 * `npm test` builds first; when a suite runs alone (`npx vitest run test/auth`), this builds once if
 * any source file is newer than its compiled output.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../../..');
export const BIN = path.join(ROOT, 'bin', 'meli-proxy.js');

/** Sources whose compiled output is missing or older; `before` ignores files edited since then. */
function staleFiles(before = Number.POSITIVE_INFINITY): string[] {
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
        const out = path
          .join(ROOT, 'dist', path.relative(path.join(ROOT, 'src'), full))
          .replace(/\.tsx?$/, '.js');
        const sourceTime = statSync(full).mtimeMs;
        if (sourceTime >= before) continue;
        if (!existsSync(out) || statSync(out).mtimeMs < sourceTime) stale.push(full);
      }
    }
  };
  walk(path.join(ROOT, 'src'));
  return stale;
}

/**
 * Test files run in parallel processes; a mkdir lock keeps them from compiling at the same time
 * (one could start the CLI while another rewrites dist/). A lock older than two minutes is stale.
 */
async function withBuildLock<T>(work: () => Promise<T>): Promise<T> {
  const lock = path.join(ROOT, 'dist', '.build-lock');
  mkdirSync(path.dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 120_000) rmSync(lock, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export async function ensureBuilt(): Promise<void> {
  if (staleFiles().length === 0) return;
  await withBuildLock(build);
}

async function build(): Promise<void> {
  if (staleFiles().length === 0) return;
  const startedAt = Date.now();
  const output = await new Promise<string>((resolve) => {
    execFile(
      'npx',
      ['tsc', '-p', 'tsconfig.build.json'],
      { cwd: ROOT, timeout: 120_000 },
      (_error, stdout, stderr) => resolve(`${stdout}${stderr}`),
    );
  });
  // tsc still emits when another module has type errors; what matters is that dist/ is current
  // (a file someone saved while tsc ran is not held against it).
  const still = staleFiles(startedAt);
  if (still.length > 0) {
    throw new Error(
      `npm run build did not bring dist/ up to date (${still.slice(0, 3).join(', ')}):\n${output}`,
    );
  }
}
