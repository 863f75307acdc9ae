/**
 * `meli-proxy migrate`: brings the PostgreSQL schema up to date, once, before (or instead of) `serve
 * --migrate`. Safe to run from several pods at once: an advisory lock inside migrateStore makes each
 * migration apply exactly once. Stores without a schema (embedded, memory, Redis) have nothing to
 * migrate and are not even contacted.
 *
 *   meli-proxy migrate --store postgres://meli:…@db:5432/meli
 *   MELI_PROXY_STORE=postgres://… meli-proxy migrate --dry-run
 *   meli-proxy migrate --json
 *
 * Exit codes: 0 applied or up to date, 1 store unreachable (or a migration failed), 2 malformed URL.
 * Only the masked URL is ever printed.
 */
import type { Command } from 'commander';
import { SETTINGS } from '../config.js';
import { migrateStore, parseStoreUrl } from '../store/index.js';
import type { CliIO } from './io.js';

interface MigrateFlags {
  store?: string;
  dryRun?: boolean;
  json?: boolean;
}

export async function runMigrate(flags: MigrateFlags, io: CliIO): Promise<void> {
  const url = flags.store ?? io.env[SETTINGS.store.env] ?? 'embedded';
  // Malformed URLs are refused here (StoreConfigError, exit 2) before any connection.
  const target = parseStoreUrl(url);
  const report = await migrateStore(url, { dryRun: flags.dryRun === true });
  const applied = report.applied.map((m) => ({ id: m.id, name: m.name }));

  if (flags.json) {
    io.stdout.write(
      `${JSON.stringify(
        {
          store: report.displayUrl,
          kind: target.kind === 'embedded' ? report.displayUrl : target.kind,
          hasSchema: report.hasSchema,
          dryRun: flags.dryRun === true,
          applied,
          upToDate: report.hasSchema && applied.length === 0,
        },
        null,
        2,
      )}\n`,
    );
    return;
  }
  if (!report.hasSchema) {
    const what =
      target.kind === 'redis' ? `The Redis store ${report.displayUrl}` : `The ${report.displayUrl} store`;
    io.stdout.write(`${what} has no schema: nothing to migrate.\n`);
    return;
  }
  const list = applied.map((m) => `  ${String(m.id).padStart(3)}  ${m.name}`);
  if (applied.length === 0) {
    io.stdout.write(`The PostgreSQL store ${report.displayUrl} is up to date: nothing to apply.\n`);
  } else if (flags.dryRun) {
    io.stdout.write(
      `Would apply ${plural(applied.length)} to ${report.displayUrl} (dry run: nothing changed):\n${list.join('\n')}\n`,
    );
  } else {
    io.stdout.write(`Applied ${plural(applied.length)} to ${report.displayUrl}:\n${list.join('\n')}\n`);
  }
}

function plural(n: number): string {
  return n === 1 ? '1 migration' : `${n} migrations`;
}

export function registerMigrate(program: Command, io: CliIO): void {
  program
    .command('migrate')
    .description(
      'Create or update the PostgreSQL tables of the shared store (idempotent, safe to run concurrently).',
    )
    .option('--store <url>', 'the store to migrate (env MELI_PROXY_STORE); only postgres:// has a schema')
    .option('--dry-run', 'list the migrations that would be applied, change nothing')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  meli-proxy migrate --store postgres://meli:secret@db:5432/meli\n' +
        '  MELI_PROXY_STORE=postgres://meli:secret@db:5432/meli meli-proxy migrate --dry-run\n' +
        '\n`meli-proxy serve --migrate` does the same at start-up. Exit codes: 0 done or up to date,\n' +
        '1 store unreachable, 2 malformed store URL.',
    )
    .action((flags: MigrateFlags) => runMigrate(flags, io));
}
