/**
 * `meli-proxy limits set|list|rm|test`: rate-limit rules of a running proxy (its admin API, the
 * default) or of the shared store directly (`--store URL`).
 *
 *   meli-proxy limits set ip-152 --ip 152.152.152.152 --limit 1000/m
 *   meli-proxy limits set categories --path '/categories/*' --limit 10000/m
 *   meli-proxy limits set ip-items --ip 152.152.152.152 --path '/items/*' --limit 10/m
 *   meli-proxy limits set items-per-client --path '/items/*' --by ip --limit 100/m
 *   meli-proxy limits list [--json]
 *   meli-proxy limits rm ip-items
 *   meli-proxy limits test --ip 152.152.152.152 --path /items/MLA1
 *
 * See target.ts for where changes go and when they apply, rule-input.ts for how flags become rules.
 */
import { type Command, Option } from 'commander';
import { RuntimeFailure, UsageError } from '../../errors.js';
import { hashToken, parseIpInto, type Rule, serializeRule } from '../../limits/index.js';
import { DEFAULT_ADMIN_URL, type FetchLike } from '../admin-client.js';
import type { CliIO } from '../io.js';
import { describeRule, formatRuleList, formatTest } from './format.js';
import { collect, type RuleFlags, rulesToSet } from './rule-input.js';
import { type LimitsTarget, openTarget, type TargetFlags } from './target.js';

export interface LimitsDeps {
  fetch?: FetchLike;
}

interface CommonFlags extends TargetFlags {
  json?: boolean;
}

interface TestFlags extends CommonFlags {
  ip: string;
  path: string;
  method: string;
  header?: string[];
  token?: string;
}

/** Opens the target, runs `work`, and always closes what it opened (a store connection). */
async function withTarget<T>(
  flags: TargetFlags,
  io: CliIO,
  deps: LimitsDeps,
  work: (target: LimitsTarget) => Promise<T>,
): Promise<T> {
  const target = await openTarget(flags, io, deps);
  try {
    return await work(target);
  } finally {
    await target.close().catch(() => undefined);
  }
}

export async function runSet(
  id: string | undefined,
  flags: RuleFlags & CommonFlags,
  io: CliIO,
  deps: LimitsDeps = {},
): Promise<void> {
  // Validated (and tokens hashed) before anything is opened or sent.
  const rules = rulesToSet(id, flags, io.cwd);
  await withTarget(flags, io, deps, async (target) => {
    const saved: Rule[] = [];
    for (const rule of rules) {
      try {
        await target.save(rule);
      } catch (error) {
        if (saved.length > 0 && error instanceof Error) {
          error.message += ` (saved before this: ${saved.map((r) => r.id).join(', ')})`;
        }
        throw error;
      }
      saved.push(rule);
      if (!flags.json) io.stdout.write(`Saved rule "${rule.id}": ${describeRule(rule)}\n`);
    }
    if (flags.json) {
      io.stdout.write(`${JSON.stringify({ rules: saved.map(serializeRule) }, null, 2)}\n`);
      return;
    }
    io.stdout.write(`${target.takesEffect}\n`);
    if (target.caveat) io.stderr.write(`note: ${target.caveat}\n`);
  });
}

export async function runList(flags: CommonFlags, io: CliIO, deps: LimitsDeps = {}): Promise<void> {
  await withTarget(flags, io, deps, async (target) => {
    const list = await target.list();
    for (const problem of list.invalid ?? []) io.stderr.write(`warning: ignored invalid rule ${problem}\n`);
    if (flags.json) {
      io.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    io.stdout.write(`Rate-limit rules of ${target.description}\n\n`);
    io.stdout.write(`${formatRuleList(list.rules, target.live).join('\n')}\n`);
  });
}

export async function runRm(
  ids: string[],
  flags: CommonFlags,
  io: CliIO,
  deps: LimitsDeps = {},
): Promise<void> {
  await withTarget(flags, io, deps, async (target) => {
    const removed: string[] = [];
    const missing: string[] = [];
    for (const id of ids) {
      if (await target.remove(id)) {
        removed.push(id);
        if (!flags.json) io.stdout.write(`Removed rule "${id}" from ${target.description}.\n`);
      } else {
        missing.push(id);
      }
    }
    if (flags.json) io.stdout.write(`${JSON.stringify({ removed, missing }, null, 2)}\n`);
    if (missing.length > 0) {
      throw new RuntimeFailure(
        `no rule ${missing.map((id) => `"${id}"`).join(', ')} in ${target.description} (\`meli-proxy limits list\` shows the rules).`,
      );
    }
    if (target.caveat && removed.length > 0 && !flags.json) io.stderr.write(`note: ${target.caveat}\n`);
  });
}

export async function runTest(flags: TestFlags, io: CliIO, deps: LimitsDeps = {}): Promise<void> {
  if (flags.store !== undefined) {
    throw new UsageError(
      '`limits test` needs a running proxy (it shows the live counts of its rules): drop --store and point --admin-url (or MELI_PROXY_ADMIN_URL) at the proxy’s admin API.',
    );
  }
  // Refused here like `limits set` refuses a bad --ip: the proxy would only say it matches nothing.
  if (parseIpInto(flags.ip.trim(), new Uint32Array(4)) === 0) {
    throw new UsageError(
      `Invalid --ip ${JSON.stringify(flags.ip)}: expected the client address of the request, an IPv4 or IPv6 address (e.g. 152.152.152.152).`,
    );
  }
  const method = flags.method.toUpperCase();
  await withTarget(flags, io, deps, async (target) => {
    const answer = await target.test({
      ip: flags.ip,
      path: flags.path,
      method,
      headers: flags.header ?? [],
      // Only the digest leaves the CLI: the admin API matches rules on it.
      ...(flags.token ? { tokenHash: hashToken(flags.token.trim()) } : {}),
    });
    if (flags.json) {
      io.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
      return;
    }
    io.stdout.write(`${formatTest(answer, { method, path: flags.path, ip: flags.ip }).join('\n')}\n`);
  });
}

/** --admin-url, --store, --data-dir and --json, on every subcommand. */
function targetOptions(command: Command, json = true): Command {
  command
    .option(
      '--admin-url <url>',
      `admin API of a running proxy (env MELI_PROXY_ADMIN_URL, default ${DEFAULT_ADMIN_URL}); token from MELI_PROXY_ADMIN_TOKEN`,
    )
    .option(
      '--store <url>',
      'write the shared store directly instead (embedded, postgres://…, redis://…), e.g. before any proxy runs',
    )
    .option('--data-dir <dir>', 'with --store embedded: the data dir of the proxy (env MELI_PROXY_DATA_DIR)');
  if (json) command.option('--json', 'print JSON for scripts');
  return command;
}

export function registerLimits(program: Command, io: CliIO, deps: LimitsDeps = {}): void {
  const limits = program
    .command('limits')
    .description('Show, add, change, remove and try out rate-limit rules.')
    .addHelpText(
      'after',
      '\nBy default these commands talk to a running proxy’s admin API; with --store they write the shared\n' +
        'store itself. Every replica picks up a change within about a second.',
    );

  targetOptions(
    limits
      .command('set')
      .description('Add or replace a rule (one command per rule, or many from --json-rule / --file).')
      .argument('[id]', 'rule id: lower-case letters, digits, ".", "_" or "-" (e.g. ip-152)')
      .option('--ip <address>', 'client address or CIDR; repeat or comma-separate for several', collect(true))
      .option(
        '--path <pattern>',
        'path pattern such as /items/* or /categories/:id; repeatable',
        collect(false),
      )
      .option('--method <method>', 'HTTP method; repeat or comma-separate for several', collect(true))
      .option(
        '--header <name[=value]>',
        'a header present (or with that exact value); repeatable',
        collect(false),
      )
      .option(
        '--token <token>',
        'a bearer token (hashed here: only its SHA-256 is sent and stored); repeatable',
        collect(false),
      )
      .option(
        '--by <keys>',
        'count each ip, path, method, token or header:<name> separately; repeat or comma-separate',
        collect(true),
      )
      .option(
        '--all',
        'the rule covers every request (required when no --ip/--path/--method/--header/--token)',
      )
      .option('--limit <n/window>', 'requests per window: 1s, 10s, m, h or d (e.g. 1000/m, 50/10s)')
      .option('--burst <n>', 'extra requests tolerated above the limit before rejecting (default 0)')
      .addOption(
        new Option('--mode <mode>', 'enforce (reject with 429) or shadow (only report); default enforce'),
      )
      .option(
        '--counting <how>',
        'across replicas sharing a store: exact (one atomic store operation per request) or approximate; default: exact when the limit is small next to the replica count',
      )
      .option('--json-rule <json>', 'a whole rule (or a list of rules) as JSON')
      .option('--file <file>', 'a YAML or JSON file with a list of rules (or a config file with limits:)'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  meli-proxy limits set ip-152 --ip 152.152.152.152 --limit 1000/m\n' +
        "  meli-proxy limits set categories --path '/categories/*' --limit 10000/m\n" +
        "  meli-proxy limits set ip-items --ip 152.152.152.152 --path '/items/*' --limit 10/m\n" +
        "  meli-proxy limits set items-per-ip --path '/items/*' --by ip --limit 100/m --mode shadow\n" +
        '  meli-proxy limits set per-ip --all --by ip --limit 600/m\n' +
        '  meli-proxy limits set --file rules.yaml --store postgres://meli@db/meli',
    )
    .action((id: string | undefined, flags: RuleFlags & CommonFlags) => runSet(id, flags, io, deps));

  targetOptions(
    limits.command('list').description('List the rules in force (with live counts from a proxy).'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  meli-proxy limits list\n  meli-proxy limits list --json\n  meli-proxy limits list --store postgres://meli@db/meli',
    )
    .action((flags: CommonFlags) => runList(flags, io, deps));

  targetOptions(
    limits
      .command('rm')
      .description('Remove rules from the store (rules from the config file or the environment stay).')
      .argument('<id...>', 'ids of the rules to remove'),
  ).action((ids: string[], flags: CommonFlags) => runRm(ids, flags, io, deps));

  targetOptions(
    limits
      .command('test')
      .description('Show which rules a request would match and their current counts (needs a running proxy).')
      .requiredOption('--ip <address>', 'client address of the request')
      .requiredOption('--path <path>', 'request path, e.g. /items/MLA1')
      .option('--method <method>', 'request method', 'GET')
      .option('--header <name=value>', 'a request header; repeatable', collect(false))
      .option('--token <token>', 'the bearer token of the request (only its SHA-256 is sent)'),
  )
    .addHelpText(
      'after',
      '\nExample:\n  meli-proxy limits test --ip 152.152.152.152 --path /items/MLA1 --header x-client-id=abc',
    )
    .action((flags: TestFlags) => runTest(flags, io, deps));
}
