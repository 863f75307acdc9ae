/**
 * Requests whose counter --on-store-error decided, by rule: the store (or, for the workers of one
 * host, the primary's leases) was unreachable, and the rule's counter was admitted (fail-open) or
 * refused (fail-closed) without it. Counted where that decision is taken (exact-policy.ts,
 * lease-policy.ts); the totals live as long as the process, across rule reloads.
 */
export interface StoreErrorCounts {
  readonly allowed: ReadonlyMap<string, number>;
  readonly rejected: ReadonlyMap<string, number>;
}

export class StoreErrorDecisions implements StoreErrorCounts {
  readonly allowed = new Map<string, number>();
  readonly rejected = new Map<string, number>();

  count(ruleId: string, allowed: boolean): void {
    const counts = allowed ? this.allowed : this.rejected;
    counts.set(ruleId, (counts.get(ruleId) ?? 0) + 1);
  }
}
