/**
 * What is wrong in a file or argument that does not parse, said without quoting it: rules and
 * configuration may hold a token or a secret, and parsers like to show the offending line.
 */

/**
 * What is wrong in JSON that does not parse, without a snippet of it: the rule may hold a token.
 * V8's messages that give a position quote only JSON syntax; the others ("Unexpected token 'x',
 * \"…\" is not valid JSON") quote the input, so only the position is told, found by a scan.
 */
export function jsonSyntaxProblem(text: string, error: Error): string {
  const message = error.message;
  if (message === 'Unexpected end of JSON input') return message;
  if (/ at position \d+(?: \(line \d+ column \d+\))?$/.test(message) && !message.includes('"')) {
    return message;
  }
  const at = jsonErrorOffset(text);
  const before = text.slice(0, at).split('\n');
  const where = `at position ${at} (line ${before.length} column ${before[before.length - 1]!.length + 1})`;
  return at >= text.length ? `Unexpected end of JSON input ${where}` : `Unexpected character ${where}`;
}

/** Offset of the first character that makes `text` invalid JSON (its length: it ends too soon). */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const string = () => {
    i++;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch === '"') {
        i++;
        return;
      }
      if (ch === '\\') {
        i++;
        if (i < text.length && '"\\/bfnrt'.includes(text[i]!)) i++;
        else if (/^u[0-9a-fA-F]{4}/.test(text.slice(i, i + 5))) i += 5;
        else fail();
      } else if (ch < ' ') fail();
      else i++;
    }
    fail();
  };
  const value = (): void => {
    space();
    const ch = text[i];
    if (ch === '{' || ch === '[') {
      const close = ch === '{' ? '}' : ']';
      i++;
      space();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (close === '}') {
          space();
          if (text[i] !== '"') fail();
          string();
          space();
          if (text[i] !== ':') fail();
          i++;
        }
        value();
        space();
        if (text[i] === ',') i++;
        else if (text[i] === close) {
          i++;
          return;
        } else fail();
      }
    }
    if (ch === '"') {
      string();
      return;
    }
    const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    number.lastIndex = i;
    if (number.test(text)) {
      i = number.lastIndex;
      return;
    }
    const literal = ['true', 'false', 'null'].find((word) => text.startsWith(word, i));
    if (literal === undefined) fail();
    i += literal!.length;
  };
  try {
    value();
    space();
    return i;
  } catch (offset) {
    return Math.min(offset as number, text.length);
  }
}

/**
 * The yaml library's message without its code frame (the quoted lines under "at line L, column C:").
 */
export function yamlSyntaxProblem(error: Error): string {
  const first = error.message.split('\n', 1)[0]!.replace(/:$/, '');
  return 'linePos' in error ? first : 'the text does not parse';
}
