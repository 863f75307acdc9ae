/**
 * Rules kept in the shared store, one document per rule under `limits/<id>`, in the same input
 * form a config file uses (tokens only ever as their hash). The CLI and the admin API write here;
 * every running proxy reads it back within a couple of seconds.
 */
import type { DocumentStore } from '../store/types.js';
import { parseRule, type Rule, serializeRule } from './rule.js';

export const RULE_PREFIX = 'limits/';

export async function listStoredRules(
  documents: DocumentStore,
): Promise<{ rules: Rule[]; invalid: string[] }> {
  const rules: Rule[] = [];
  const invalid: string[] = [];
  for (const [key, value] of await documents.list<unknown>(RULE_PREFIX)) {
    try {
      rules.push(parseRule(value, `store ${key}`));
    } catch (error) {
      // One damaged document must not take every other rule down with it.
      invalid.push(`${key}: ${(error as Error).message}`);
    }
  }
  rules.sort((a, b) => a.id.localeCompare(b.id));
  return { rules, invalid };
}

export async function saveRule(documents: DocumentStore, rule: Rule): Promise<void> {
  await documents.set(`${RULE_PREFIX}${rule.id}`, serializeRule(rule));
}

export async function deleteRule(documents: DocumentStore, id: string): Promise<boolean> {
  return documents.delete(`${RULE_PREFIX}${id}`);
}
