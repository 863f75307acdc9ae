/**
 * What `meli-proxy limits set` turns into rules: flags (`--ip`, `--path`, `--limit` …), one JSON
 * rule (`--json-rule`) or a YAML/JSON file of rules (`--file`). Every rule is validated here with the
 * same parser the proxy uses, so a typo is refused before anything is sent, with the flag, the field,
 * the value and the expected form in the message (RuleError, exit 2). Bearer tokens are hashed by
 * that parser: only their SHA-256 digest ever leaves the CLI.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../errors.js';
import { parseRule, parseRules, type Rule, RuleError } from '../../limits/index.js';
import { jsonSyntaxProblem, yamlSyntaxProblem } from '../../syntax-errors.js';

export interface RuleFlags {
  ip?: string[];
  path?: string[];
  method?: string[];
  header?: string[];
  token?: string[];
  by?: string[];
  limit?: string;
  burst?: string;
  mode?: string;
  counting?: string;
  jsonRule?: string;
  file?: string;
  /** A rule from flags with no match condition: it covers every request, on purpose. */
  all?: boolean;
}

/** The rule fields each flag fills, to say which flag a parser error is about. */
const FLAG_OF_FIELD: ReadonlyArray<[RegExp, string]> = [
  [/^match\.ip\b/, '--ip'],
  [/^match\.path\b/, '--path'],
  [/^match\.method\b/, '--method'],
  [/^match\.header\b/, '--header'],
  [/^match\.token/, '--token'],
  [/^by\b/, '--by'],
  [/^limit$/, '--limit'],
  [/^burst$/, '--burst'],
  [/^mode$/, '--mode'],
  [/^counting$/, '--counting'],
];

const RULE_FLAGS = [
  'ip',
  'path',
  'method',
  'header',
  'token',
  'by',
  'limit',
  'burst',
  'mode',
  'counting',
] as const;
const FLAG_NAMES: Record<(typeof RULE_FLAGS)[number], string> = {
  ip: '--ip',
  path: '--path',
  method: '--method',
  header: '--header',
  token: '--token',
  by: '--by',
  limit: '--limit',
  burst: '--burst',
  mode: '--mode',
  counting: '--counting',
};

const EXAMPLE = 'meli-proxy limits set ip-152 --ip 152.152.152.152 --limit 1000/m';
const JSON_EXAMPLE = `'{"id":"ip-152","match":{"ip":"152.152.152.152"},"limit":"1000/m"}'`;

/** Commander collector for repeatable flags; `split` also accepts comma-separated lists. */
export function collect(split: boolean) {
  return (value: string, previous: string[] | undefined): string[] => {
    const items = split ? value.split(',').map((item) => item.trim()) : [value];
    return [...(previous ?? []), ...items.filter((item) => item !== '')];
  };
}

/** The rules `limits set` was asked to save, validated. */
export function rulesToSet(id: string | undefined, flags: RuleFlags, cwd: string): Rule[] {
  const given = RULE_FLAGS.filter((name) => flags[name] !== undefined);
  if (flags.jsonRule !== undefined && flags.file !== undefined) {
    throw new UsageError('Give either --json-rule or --file, not both.');
  }
  if (flags.jsonRule !== undefined || flags.file !== undefined) {
    if (given.length > 0) {
      const source = flags.jsonRule !== undefined ? '--json-rule' : '--file';
      throw new UsageError(
        `${source} holds whole rules: drop ${given.map((name) => FLAG_NAMES[name]).join(', ')} (or put them in the rule).`,
      );
    }
    if (flags.all) {
      throw new UsageError(
        '--all is for a rule given by flags: in --json-rule or --file, a rule for every request says so with "match: {}".',
      );
    }
    return flags.jsonRule !== undefined ? fromJson(id, flags.jsonRule) : fromFile(id, flags.file!, cwd);
  }
  if (id === undefined) {
    throw new UsageError(`Give the rule id, e.g. ${EXAMPLE} (or use --json-rule / --file).`);
  }
  // Checked once the rule itself is valid, so that a typo is reported as such first.
  const rule = fromFlags(id, flags);
  const conditions = MATCH_FLAGS.filter((name) => flags[name] !== undefined);
  if (conditions.length === 0 && !flags.all) {
    throw new UsageError(
      `Rule "${id}" has no match condition (--ip, --path, --method, --header or --token), so it would limit every request: add --all if that is what you want.`,
    );
  }
  if (conditions.length > 0 && flags.all) {
    throw new UsageError(
      `--all means every request, but ${conditions.map((name) => FLAG_NAMES[name]).join(', ')} narrows the rule: give one or the other.`,
    );
  }
  return [rule];
}

const MATCH_FLAGS = ['ip', 'path', 'method', 'header', 'token'] as const;

/**
 * A rule without `match` would limit every request: in --json-rule and --file that must be said
 * with `match: {}`, so that a forgotten condition is not mistaken for a global limit.
 */
function requireMatch(data: unknown, where: string): void {
  if (isRecord(data) && data.match === undefined) {
    const id = typeof data.id === 'string' ? ` (rule "${data.id}")` : '';
    throw new UsageError(
      `${where}${id} has no "match", so it would limit every request: add "match: {}" to the rule if that is what you want, or the conditions it is for.`,
    );
  }
}

function fromFlags(id: string, flags: RuleFlags): Rule {
  const match: Record<string, string[]> = {};
  if (flags.ip) match.ip = flags.ip;
  if (flags.path) match.path = flags.path;
  if (flags.method) match.method = flags.method;
  if (flags.header) match.header = flags.header;
  if (flags.token) match.token = flags.token;
  const input: Record<string, unknown> = { id };
  if (Object.keys(match).length > 0) input.match = match;
  if (flags.by) input.by = flags.by;
  if (flags.limit !== undefined) input.limit = flags.limit;
  if (flags.burst !== undefined) {
    // A non-number is handed over as text so the parser's message shows it as typed.
    input.burst = /^\s*\d{1,10}\s*$/.test(flags.burst) ? Number(flags.burst) : flags.burst;
  }
  if (flags.mode !== undefined) input.mode = flags.mode;
  if (flags.counting !== undefined) input.counting = flags.counting;
  try {
    return parseRule(input);
  } catch (error) {
    if (!(error instanceof RuleError)) throw error;
    const flag = FLAG_OF_FIELD.find(([pattern]) => pattern.test(error.field))?.[1];
    // Same fields, prefixed with the flag the value came from.
    throw new RuleError(error.ruleId, error.field, error.value, error.expected, flag);
  }
}

function fromJson(id: string | undefined, text: string): Rule[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `--json-rule is not valid JSON (${jsonSyntaxProblem(text, error as Error)}): expected a rule such as ${JSON_EXAMPLE}, or a list of them.`,
    );
  }
  if (Array.isArray(data)) {
    if (id !== undefined) {
      throw new UsageError(
        `--json-rule holds a list of rules, each with its own id: drop the id argument "${id}".`,
      );
    }
    const rules = parseRules(data, '--json-rule');
    data.forEach((item, index) => {
      requireMatch(item, `--json-rule[${index}]`);
    });
    return rules;
  }
  const input = withId(id, data, '--json-rule');
  const rule = parseRule(input, '--json-rule');
  requireMatch(input, '--json-rule');
  return [rule];
}

function fromFile(id: string | undefined, file: string, cwd: string): Rule[] {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`Cannot read --file ${path} (${code}): give a YAML or JSON file of rules.`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new UsageError(`--file ${path} is not valid YAML or JSON: ${yamlSyntaxProblem(error as Error)}`);
  }
  // A config file's `limits:` section works as is.
  const list = isRecord(data) && Array.isArray(data.limits) ? data.limits : data;
  if (!Array.isArray(list)) {
    throw new UsageError(
      `--file ${path} must hold a list of rules (or a config file with a "limits:" list), e.g.\n` +
        '- id: ip-152\n  match: { ip: 152.152.152.152 }\n  limit: 1000/m',
    );
  }
  if (id !== undefined) {
    throw new UsageError(`--file holds rules with their own ids: drop the id argument "${id}".`);
  }
  if (list.length === 0) throw new UsageError(`--file ${path} holds no rules.`);
  const rules = parseRules(list, path);
  list.forEach((item, index) => {
    requireMatch(item, `${path}[${index}]`);
  });
  return rules;
}

/** A single JSON rule may leave its id to the argument; both given must agree. */
function withId(id: string | undefined, data: unknown, where: string): unknown {
  if (!isRecord(data) || id === undefined) return data;
  if (data.id === undefined) return { id, ...data };
  if (data.id !== id) {
    throw new UsageError(
      `${where} says id ${JSON.stringify(data.id)} but the argument says "${id}": give one, or make them equal.`,
    );
  }
  return data;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
