/**
 * Contracts between the proxy and its shared store. A backend is a thin object: the plumbing
 * (batching, retries, outage handling) lives once in the callers, not in every backend.
 */

/** One window of one counter, as pushed by a replica. */
export interface CounterDelta {
  /** Counter identity: rule id plus the partition values, already joined by the limiter. */
  key: string;
  /** Start of the window, epoch milliseconds, aligned to `windowMs`. */
  windowStart: number;
  /** Window length in milliseconds; the backend may use it to expire rows. */
  windowMs: number;
  /** Requests admitted locally since the last successful push (may be 0 to just read the total). */
  delta: number;
}

export interface CounterSyncResult {
  /** Global totals after applying the deltas, keyed by `${key}@${windowStart}`. */
  totals: Map<string, number>;
  /** Replicas that pushed within the liveness horizon, this one included (at least 1). */
  replicas: number;
}

/** Atomic shared counters (PostgreSQL `INSERT … ON CONFLICT … DO UPDATE`, Redis `INCRBY`). */
export interface CounterBackend {
  /** Adds the deltas atomically and returns the resulting global totals; throws when unreachable. */
  sync(replicaId: string, deltas: readonly CounterDelta[]): Promise<CounterSyncResult>;
}

/** One counter of an exact decision: the window a request falls in, and how to judge it. */
export interface ExactCounter {
  /** Counter identity, as in CounterDelta; its rows are the same ones sync() adds deltas to. */
  key: string;
  /** Start of the request's window (epoch ms, aligned); the previous window starts windowMs earlier. */
  windowStart: number;
  windowMs: number;
  /** Milliseconds left in the window: the previous window weighs previous × leftMs / windowMs. */
  leftMs: number;
  /** limit + burst: admitted while floor(weighted previous) + current + 1 ≤ cap. */
  cap: number;
}

export interface ExactTakeResult {
  /** Whether every counter had room; then each was incremented by one, else none was. */
  admitted: boolean;
  /** Per counter, in order: the previous window's total. */
  previous: number[];
  /** Per counter, in order: the current window's total, after the increment when admitted. */
  current: number[];
}

/**
 * Exact shared counting: one atomic store operation per request (a Lua script, a PostgreSQL
 * function call) judges every counter by its sliding estimate and counts the request in all or none.
 */
export interface ExactCounterStore {
  take(counters: readonly ExactCounter[]): Promise<ExactTakeResult>;
}

/** A key/value document store (keyv semantics) for rules, tokens and other small documents. */
export interface DocumentStore {
  get<T>(key: string): Promise<T | undefined>;
  set<T>(key: string, value: T, ttlMs?: number): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** All entries whose key starts with `prefix`. */
  list<T>(prefix: string): Promise<Array<[string, T]>>;
}

/**
 * What a statistics row is counted by. `total` has one row per minute with the empty value;
 * `account` counts the requests forwarded with an injected token, by the account (user id) it
 * belongs to.
 */
export type StatDimension = 'total' | 'route' | 'status' | 'rule' | 'ip' | 'account';
export const STAT_DIMENSIONS: readonly StatDimension[] = [
  'total',
  'route',
  'status',
  'rule',
  'ip',
  'account',
];

/** Usage of one minute along one dimension; rows for the same key add up. */
export interface StatRow {
  /** Start of the minute, epoch milliseconds. */
  minute: number;
  dimension: StatDimension;
  value: string;
  requests: number;
  bytes: number;
  latencyMsSum: number;
}

export interface StatsQuery {
  /** Inclusive start, epoch ms (rounded down to the minute by the store). */
  from: number;
  /** Exclusive end, epoch ms. */
  to: number;
  dimension: StatDimension;
  /** Most rows returned, largest `requests` first. */
  limit: number;
}

/** Per-minute usage aggregates: additive writes, grouped reads. */
export interface StatsStore {
  /**
   * Adds the rows to what is stored (same minute, dimension and value sum up). With `batchId`
   * the rows are added at most once: a call naming an id the store already added changes
   * nothing, so a sender may repeat a call whose outcome it never learnt (a timeout) without
   * counting twice. Ids are `<sender>:<sequence>`, unique per sending process.
   */
  add(rows: readonly StatRow[], batchId?: string): Promise<void>;
  /** Rows summed over [from, to) per value; `minute` in the result is `from`. */
  query(query: StatsQuery): Promise<StatRow[]>;
  /** Drops minutes before `before` (epoch ms); returns how many rows went. */
  prune(before: number): Promise<number>;
}

export type StoreKind = 'embedded' | 'postgres' | 'redis';

export interface Store {
  readonly kind: StoreKind;
  /** A URL safe to print: credentials removed. */
  readonly displayUrl: string;
  readonly documents: DocumentStore;
  readonly counters: CounterBackend;
  /** Exact shared counting, on the stores replicas share (PostgreSQL, Redis). */
  readonly exact?: ExactCounterStore;
  readonly stats: StatsStore;
  /** Resolves when the store answers; rejects with the reason otherwise. Used by `/ready`. */
  check(): Promise<void>;
  close(): Promise<void>;
}
