/**
 * The one error a user can cause while writing limit rules. It carries the rule, the field, the
 * offending value and the expected form so that a CLI can print it as is and a caller can act on it.
 */
export class RuleError extends Error {
  override readonly name = 'RuleError';
  readonly code = 'ERR_LIMIT_RULE';
  /** A malformed rule is a usage error: the CLI exits with status 2. */
  readonly exitCode = 2;

  constructor(
    /** The rule id when it is known and valid; `undefined` otherwise. */
    readonly ruleId: string | undefined,
    /** Dotted path of the field inside the rule, e.g. `limit`, `match.ip[1]`, `by[0]`. */
    readonly field: string,
    /** The value as given (secrets replaced by `<redacted>`); `undefined` when missing. */
    readonly value: unknown,
    /** The accepted form, in words, with an example. */
    readonly expected: string,
    /** Where the rule came from, e.g. `config.yaml limits[2]` or `MELI_PROXY_LIMIT_PER_IP`. */
    readonly where?: string,
  ) {
    super(formatMessage(ruleId, field, value, expected, where));
  }
}

function formatMessage(
  ruleId: string | undefined,
  field: string,
  value: unknown,
  expected: string,
  where: string | undefined,
): string {
  const subject = ruleId === undefined ? 'rule' : `rule "${ruleId}"`;
  const problem = value === undefined ? `missing ${field}` : `invalid ${field} ${show(value)}`;
  const text = `${subject}: ${problem}: expected ${expected}`;
  return where ? `${where}: ${text}` : text;
}

function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  // A pasted config blob would drown the message; the start is enough to find it.
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
