/**
 * Log lines for a person at a terminal: `12:00:01 WARN  message  key=value …`, the same records
 * the JSON log carries (already redacted by the logger), with the fields every line repeats left out.
 */
import { Writable } from 'node:stream';

const LEVEL_NAMES = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);
const HIDDEN = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname']);
const COLOURS: Readonly<Record<string, string>> = { warn: '\x1b[33m', error: '\x1b[31m', fatal: '\x1b[31m' };
const RESET = '\x1b[0m';

function fieldText(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** One JSON log record as one human line (a line that is not JSON is passed on as it is). */
export function prettyLine(json: string, colour: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const level = typeof record.level === 'string' && LEVEL_NAMES.has(record.level) ? record.level : 'info';
  const time = typeof record.time === 'string' ? record.time.slice(11, 19) : '';
  const fields = Object.entries(record)
    .filter(([key, value]) => !HIDDEN.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${fieldText(value)}`)
    .join(' ');
  const label = level.toUpperCase().padEnd(5);
  const shown = colour && COLOURS[level] ? `${COLOURS[level]}${label}${RESET}` : label;
  return `${time} ${shown} ${String(record.msg ?? '')}${fields ? `  ${fields}` : ''}`;
}

/** A pino destination that writes pretty lines to `out`. */
export function prettyDestination(out: NodeJS.WritableStream & { isTTY?: boolean }): Writable {
  let partial = '';
  const colour = out.isTTY === true && !process.env.NO_COLOR;
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      const lines = (partial + String(chunk)).split('\n');
      partial = lines.pop() ?? '';
      const text = lines.map((line) => `${prettyLine(line, colour)}\n`).join('');
      if (text === '' || out.write(text)) done();
      else out.once('drain', () => done());
    },
    final(done) {
      if (partial) out.write(`${prettyLine(partial, colour)}\n`);
      done();
    },
  });
}
