import { Command, CommanderError } from 'commander';
import { exitCodeOf, UsageError } from '../errors.js';
import { VERSION } from '../version.js';
import { registerAuth } from './auth/index.js';
import { registerDemoOrigin } from './demo-origin.js';
import { registerDeploy } from './deploy.js';
import type { CliIO } from './io.js';
import { registerLimits } from './limits/index.js';
import { registerMigrate } from './migrate.js';
import { registerServe } from './serve.js';
import { registerStats } from './stats.js';
import { registerTop } from './top/index.js';

export function buildProgram(io: CliIO): Command {
  const program = new Command('meli-proxy')
    .description("A fast, rate-limited, observable proxy in front of MercadoLibre's API.")
    .version(VERSION, '-v, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
  registerServe(program, io);
  registerDeploy(program, io);
  registerAuth(program, io);
  registerStats(program, io);
  registerTop(program, io);
  registerLimits(program, io);
  registerMigrate(program, io);
  registerDemoOrigin(program, io);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs one command line and returns the exit status: 0 ok, 1 runtime failure, 2 usage error. */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
      // `help` asked for exits 0; help shown because no command was given (bare `meli-proxy`,
      // `meli-proxy limits`) is a usage error: commander reports it with a non-zero exit code.
      return error.exitCode === 0 ? 0 : 2;
    }
    const code = exitCodeOf(error);
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`meli-proxy: ${error instanceof UsageError ? '' : 'error: '}${message}\n`);
    return code;
  }
}
