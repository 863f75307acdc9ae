/** The config file of `serve --config`: a YAML or JSON mapping of settings, rules and routes. */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.js';
import { jsonSyntaxProblem, yamlSyntaxProblem } from '../syntax-errors.js';

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(
      `Cannot read config file ${path} (${code}): pass an existing YAML or JSON file to --config.`,
    );
  }
  let data: unknown;
  try {
    data = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(
      `Config file ${path} is not valid ${extname(path).toLowerCase() === '.json' ? `JSON (${jsonSyntaxProblem(text, error as Error)})` : `YAML: ${yamlSyntaxProblem(error as Error)}`}`,
    );
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new UsageError(`Config file ${path} must hold a mapping of settings (e.g. "port: 8080").`);
  }
  return data as Record<string, unknown>;
}

const ROUTE_TEMPLATE =
  /^\/([A-Za-z0-9._~-]+|:[A-Za-z_][A-Za-z0-9_]*|\*)?(\/([A-Za-z0-9._~-]+|:[A-Za-z_][A-Za-z0-9_]*|\*))*$/;

export function routeTemplates(value: unknown, file: string): string[] {
  if (!Array.isArray(value)) {
    throw new UsageError(
      `Config file ${file}: "routes" must be a list of path templates such as /items/:id.`,
    );
  }
  return value.map((item, index) => {
    if (typeof item !== 'string' || !ROUTE_TEMPLATE.test(item)) {
      throw new UsageError(
        `Config file ${file}: routes[${index}] ${JSON.stringify(item)} is not a path template: expected segments, ":name" parameters or "*" (e.g. /items/:id/pictures).`,
      );
    }
    return item;
  });
}
