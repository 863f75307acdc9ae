/**
 * Default rules from the environment, for deployments that need a sane limit without a config file:
 * MELI_PROXY_LIMIT_PER_IP=600/m becomes `{ id: default-per-ip, by: [ip], limit: 600/m }` and
 * MELI_PROXY_LIMIT_GLOBAL=50000/s becomes `{ id: default-global, limit: 50000/s }` (one counter for
 * every request). Unset or empty variables add nothing.
 */
import { parseRule, parseRules, type Rule } from './rule.js';

export const ENV_PER_IP = 'MELI_PROXY_LIMIT_PER_IP';
export const ENV_GLOBAL = 'MELI_PROXY_LIMIT_GLOBAL';

export function rulesFromEnv(env: Readonly<Record<string, string | undefined>>): Rule[] {
  const rules: Rule[] = [];
  const perIp = env[ENV_PER_IP]?.trim();
  if (perIp) rules.push(parseRule({ id: 'default-per-ip', by: ['ip'], limit: perIp }, ENV_PER_IP));
  const global = env[ENV_GLOBAL]?.trim();
  if (global) rules.push(parseRule({ id: 'default-global', limit: global }, ENV_GLOBAL));
  return rules;
}

/**
 * The rules a server has before it reads the store: the config file's `limits:` list, then the
 * defaults from the environment. Throws a RuleError (exit 2) naming the file, rule and field.
 */
export function startupRules(
  fileRules: unknown,
  fileName: string,
  env: Readonly<Record<string, string | undefined>>,
): Rule[] {
  return [...parseRules(fileRules, `${fileName} limits`), ...rulesFromEnv(env)];
}
