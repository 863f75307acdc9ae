/**
 * Per-rule totals behind meli_proxy_rule_matched_total and GET /admin/limits: they only grow,
 * whatever happens to the limiter's own counts (which start again at 0 with every new rule set).
 */
import { describe, expect, it } from 'vitest';
import type { RuleStats } from '../../src/limits/limiter.js';
import { RuleCounters } from '../../src/server/metrics-sources.js';

function stats(id: string, matched: number, rejected = 0, shadowExceeded = 0): RuleStats {
  return { id, mode: shadowExceeded > 0 ? 'shadow' : 'enforce', matched, rejected, shadowExceeded };
}

describe('rule counters', () => {
  it('keep counting across a rule-set swap, even when the new counts pass the old ones before a read', () => {
    let current: RuleStats[] = [stats('items', 6, 2), stats('other', 1)];
    const counters = new RuleCounters(() => current);
    expect(counters.read().get('items')).toEqual({ matched: 6, rejected: 2, shadowExceeded: 0 });
    current = [stats('items', 7, 2), stats('other', 1)];
    counters.rebase(); // an unrelated rule changes: a new limiter, counts from 0
    current = [stats('items', 9, 3), stats('other', 0), stats('new', 4)];
    expect(counters.read().get('items')).toEqual({ matched: 16, rejected: 5, shadowExceeded: 0 });
    expect(counters.read().get('other')).toEqual({ matched: 1, rejected: 0, shadowExceeded: 0 });
    expect(counters.read().get('new')).toEqual({ matched: 4, rejected: 0, shadowExceeded: 0 });
  });

  it('take a count lower than before as a restart, and forget removed rules', () => {
    let current: RuleStats[] = [stats('watch', 10, 0, 4)];
    const counters = new RuleCounters(() => current);
    counters.read();
    current = [stats('watch', 3, 0, 1)];
    expect(counters.read().get('watch')).toEqual({ matched: 13, rejected: 0, shadowExceeded: 5 });
    current = [];
    expect(counters.read().size).toBe(0);
  });
});
