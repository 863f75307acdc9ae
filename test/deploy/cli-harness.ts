/**
 * Runs `meli-proxy deploy …` in this process with captured output, the way src/cli/program.ts does
 * (same exit-code mapping), but with deploy's dependencies adjustable per test.
 */
import { Command, CommanderError } from 'commander';
import { type DeployDeps, defaultDeployDeps, registerDeploy } from '../../src/cli/deploy.js';
import type { CliIO } from '../../src/cli/io.js';
import { exitCodeOf } from '../../src/errors.js';
import { REPO_ROOT } from '../support/proxy.js';

export class Capture {
  text = '';
  isTTY = false;
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

export async function runDeployCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; deps?: Partial<DeployDeps> } = {},
): Promise<CliRun> {
  const stdout = new Capture();
  const stderr = new Capture();
  const io: CliIO = { stdout, stderr, env: options.env ?? {}, cwd: REPO_ROOT };
  const program = new Command('meli-proxy')
    .exitOverride()
    .configureOutput({ writeOut: (text) => stdout.write(text), writeErr: (text) => stderr.write(text) });
  registerDeploy(program, io, {
    ...defaultDeployDeps(),
    interactive: false,
    terminal: undefined,
    killGraceMs: 500,
    ...options.deps,
  });
  const started = Date.now();
  let code = 0;
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      code = error.exitCode === 0 ? 0 : 2;
    } else {
      code = exitCodeOf(error);
      stderr.write(`meli-proxy: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
  return { code, stdout: stdout.text, stderr: stderr.text, elapsedMs: Date.now() - started };
}
