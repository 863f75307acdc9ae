import { Command, CommanderError } from 'commander';
import { exitCodeOf, UsageError } from '../errors.js';
import { VERSION } from '../version.js';
import type { CliIO } from './io.js';

type Register = (program: Command, io: CliIO) => void;

/**
 * Every command, in the order help lists them, with the module that declares it. A command line
 * loads only the module of its command: each one pulls in its own dependencies (the server and its
 * framework, the database drivers, the OAuth client, kubectl handling), and a process that loads all
 * of them spends about half a second of CPU before doing anything. `serve` workers and every
 * `limits`, `stats` or `auth` call start faster for it.
 */
const COMMANDS: ReadonlyArray<readonly [name: string, load: () => Promise<Register>]> = [
  ['serve', async () => (await import('./serve.js')).registerServe],
  ['deploy', async () => (await import('./deploy.js')).registerDeploy],
  ['auth', async () => (await import('./auth/index.js')).registerAuth],
  ['stats', async () => (await import('./stats.js')).registerStats],
  ['top', async () => (await import('./top/index.js')).registerTop],
  ['limits', async () => (await import('./limits/index.js')).registerLimits],
  ['migrate', async () => (await import('./migrate.js')).registerMigrate],
  ['demo-origin', async () => (await import('./demo-origin.js')).registerDemoOrigin],
];

/**
 * The program for one command line: only the command named first when it is one of ours; every
 * command for anything else (no command, `--help`, `help`, a mistyped name), so help lists them all
 * and commander can suggest the closest; none for `--version` alone.
 */
export async function buildProgram(io: CliIO, argv: readonly string[] = []): Promise<Command> {
  const program = new Command('meli-proxy')
    .description("A fast, rate-limited, observable proxy in front of MercadoLibre's API.")
    .version(VERSION, '-v, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
  const named = COMMANDS.find(([name]) => name === argv[0]);
  const versionOnly = argv.length === 1 && (argv[0] === '-v' || argv[0] === '--version');
  const wanted = named ? [named] : versionOnly ? [] : COMMANDS;
  const registers = await Promise.all(wanted.map(([, load]) => load()));
  for (const register of registers) register(program, io);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs one command line and returns the exit status: 0 ok, 1 runtime failure, 2 usage error. */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const program = await buildProgram(io, argv);
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
