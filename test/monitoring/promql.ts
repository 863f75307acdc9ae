/**
 * Metric names referenced by a PromQL expression, for checking dashboards against the metrics the
 * proxy exports. A small tokenizer, not a full parser: it drops string literals, label matchers
 * ({…}), range/offset durations ([…]), label lists after by/without/on/ignoring/group_left/
 * group_right, Grafana variables ($var, ${var}, $__interval …), function names (an identifier
 * followed by "("), aggregations (sum by (…) (…)), keywords and numbers. What is left are metric names.
 */

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'atan2',
  'inf',
  'nan',
]);
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
const LABEL_LIST_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/** Removes "…", '…' and `…` literals (PromQL strings), keeping the rest of the text. */
function stripStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
}

/** Removes balanced {…} and […] groups. */
function stripGroups(expr: string, open: string, close: string): string {
  let depth = 0;
  let out = '';
  for (const char of expr) {
    if (char === open) depth++;
    else if (char === close) depth = Math.max(0, depth - 1);
    else if (depth === 0) out += char;
  }
  return out;
}

export function metricNamesIn(expr: string): string[] {
  let text = stripStrings(expr);
  // Grafana variables and macros: ${var}, ${var:format}, $var, $__rate_interval.
  text = text.replace(/\$\{[^}]*\}/g, ' 1 ').replace(/\$[A-Za-z_][A-Za-z0-9_]*/g, ' 1 ');
  text = stripGroups(text, '{', '}');
  text = stripGroups(text, '[', ']');
  // Comments.
  text = text.replace(/#[^\n]*/g, ' ');

  const names = new Set<string>();
  // Numbers and durations (0.99, 1e-9, 5m, 1h30m) are one token each.
  const token = /([A-Za-z_:][A-Za-z0-9_:]*)|(\d[\w.]*)|(\()|(\))|(\S)/g;
  const tokens: Array<{ kind: 'ident' | 'num' | '(' | ')' | 'other'; text: string }> = [];
  for (const match of text.matchAll(token)) {
    if (match[1]) tokens.push({ kind: 'ident', text: match[1] });
    else if (match[2]) tokens.push({ kind: 'num', text: match[2] });
    else if (match[3]) tokens.push({ kind: '(', text: '(' });
    else if (match[4]) tokens.push({ kind: ')', text: ')' });
    else tokens.push({ kind: 'other', text: match[5] ?? '' });
  }
  for (let index = 0; index < tokens.length; index++) {
    const current = tokens[index]!;
    if (current.kind !== 'ident') continue;
    const word = current.text;
    const next = tokens[index + 1];
    if (LABEL_LIST_KEYWORDS.has(word.toLowerCase())) {
      // Skip "(label, label)" after the keyword.
      if (next?.kind === '(') {
        let depth = 0;
        for (index = index + 1; index < tokens.length; index++) {
          if (tokens[index]!.kind === '(') depth++;
          if (tokens[index]!.kind === ')' && --depth === 0) break;
        }
      }
      continue;
    }
    if (KEYWORDS.has(word.toLowerCase())) continue;
    if (next?.kind === '(') continue; // a function
    // An aggregation with its clause first: sum by (le) (…).
    if (AGGREGATIONS.has(word) && next?.kind === 'ident' && /^(by|without)$/i.test(next.text)) continue;
    names.add(word);
  }
  return [...names];
}
