/**
 * The last 60 seconds, one slot per second, for `/admin/stats/live` and `meli-proxy top`.
 * Slots are reused in a ring: a slot stamped with an older second is cleared before use, so an idle
 * proxy costs nothing and no timer is needed.
 */
import { type HeavyHitter, HeavyHitters } from './heavy-hitters.js';
import { LATENCY_BUCKETS, latencyBucket, quantileMs } from './latency-buckets.js';

const SECONDS = 60;
const SLOTS = SECONDS + 1;
/** The window the headline figures (dashboard tiles, `top`) claim: the last 10 complete seconds. */
export const WINDOW_SECONDS = 10;
/** Top lists are kept per 10 s (seven sketches cover the last 60 s plus the current part). */
const TOP_SLOT_SECONDS = 10;
const TOP_SLOTS = SECONDS / TOP_SLOT_SECONDS + 1;
const TOP_CAPACITY = 256;

export interface LiveSecond {
  t: number;
  requests: number;
  rateLimited: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
}

export interface TopEntry {
  key: string;
  requests: number;
}

export interface LiveSnapshot {
  now: number;
  seconds: LiveSecond[];
  /** Latency over the last WINDOW_SECONDS complete seconds (the newest, partial one left out). */
  window: { seconds: number; p50Ms: number; p99Ms: number };
  topRoutes: TopEntry[];
  topIps: TopEntry[];
  topRules: TopEntry[];
}

/** The raw counts behind a snapshot; exports of several processes add up (LiveWindow.summarize). */
export interface LiveExport {
  now: number;
  /** Seconds of the last 60 that saw requests, with per-bucket latency counts. */
  seconds: Array<{ t: number; requests: number; rateLimited: number; errors: number; latency: number[] }>;
  routes: Array<[string, number]>;
  ips: HeavyHitter[];
  rules: Array<[string, number]>;
}

export class LiveWindow {
  private readonly slotSecond = new Float64Array(SLOTS).fill(-1);
  private readonly requests = new Float64Array(SLOTS);
  private readonly rateLimited = new Float64Array(SLOTS);
  private readonly errors = new Float64Array(SLOTS);
  private readonly latency = new Float64Array(SLOTS * LATENCY_BUCKETS);

  private readonly topSlotStart = new Float64Array(TOP_SLOTS).fill(-1);
  private readonly routes: Float64Array[];
  private readonly ips: HeavyHitters[] = [];
  private readonly rules: Array<Map<string, number>> = [];

  constructor(private readonly routeCapacity: number) {
    this.routes = [];
    for (let i = 0; i < TOP_SLOTS; i++) {
      this.routes.push(new Float64Array(routeCapacity));
      this.ips.push(new HeavyHitters(TOP_CAPACITY));
      this.rules.push(new Map());
    }
  }

  record(nowMs: number, routeId: number, status: number, latencyMs: number, ip: string): void {
    const second = Math.floor(nowMs / 1000);
    const slot = this.slotFor(second);
    this.requests[slot]! += 1;
    if (status === 429) this.rateLimited[slot]! += 1;
    else if (status >= 500) this.errors[slot]! += 1;
    this.latency[slot * LATENCY_BUCKETS + latencyBucket(latencyMs)]! += 1;
    const top = this.topSlotFor(second);
    if (routeId < this.routeCapacity) this.routes[top]![routeId]! += 1;
    this.ips[top]!.add(ip, 0, 0);
  }

  recordRule(nowMs: number, ruleId: string): void {
    const rules = this.rules[this.topSlotFor(Math.floor(nowMs / 1000))]!;
    rules.set(ruleId, (rules.get(ruleId) ?? 0) + 1);
  }

  snapshot(nowMs: number, routeLabel: (id: number) => string, limit = 10): LiveSnapshot {
    return LiveWindow.summarize([this.export(nowMs, routeLabel)], nowMs, limit);
  }

  /** The raw counts of the last 60 s, in a form that adds up across processes (see summarize). */
  export(nowMs: number, routeLabel: (id: number) => string): LiveExport {
    const current = Math.floor(nowMs / 1000);
    const seconds: LiveExport['seconds'] = [];
    for (let t = current - SECONDS + 1; t <= current; t++) {
      const slot = t % SLOTS;
      if (this.slotSecond[slot] !== t) continue;
      const offset = slot * LATENCY_BUCKETS;
      seconds.push({
        t,
        requests: this.requests[slot]!,
        rateLimited: this.rateLimited[slot]!,
        errors: this.errors[slot]!,
        latency: Array.from(this.latency.subarray(offset, offset + LATENCY_BUCKETS)),
      });
    }
    const oldestTop = Math.floor((current - SECONDS + 1) / TOP_SLOT_SECONDS);
    const routeTotals = new Float64Array(this.routeCapacity);
    const ips = new HeavyHitters(TOP_CAPACITY);
    const rules = new Map<string, number>();
    for (let i = 0; i < TOP_SLOTS; i++) {
      if (this.topSlotStart[i]! < oldestTop) continue;
      const routes = this.routes[i]!;
      for (let id = 0; id < routes.length; id++) routeTotals[id]! += routes[id]!;
      ips.merge(this.ips[i]!);
      for (const [rule, count] of this.rules[i]!) rules.set(rule, (rules.get(rule) ?? 0) + count);
    }
    // Labels, not ids: route ids are assigned per process and differ between workers.
    const routes: Array<[string, number]> = [];
    routeTotals.forEach((requests, id) => {
      if (requests > 0) routes.push([routeLabel(id), requests]);
    });
    return { now: nowMs, seconds, routes, ips: ips.entries(), rules: [...rules] };
  }

  /** One snapshot from the exports of one or several processes (cluster workers). */
  static summarize(exports: readonly LiveExport[], nowMs: number, limit = 10): LiveSnapshot {
    const current = Math.floor(nowMs / 1000);
    const first = current - SECONDS + 1;
    const requests = new Float64Array(SECONDS);
    const rateLimited = new Float64Array(SECONDS);
    const errors = new Float64Array(SECONDS);
    const latency = new Float64Array(SECONDS * LATENCY_BUCKETS);
    const routes = new Map<string, number>();
    const ips = new HeavyHitters(TOP_CAPACITY);
    const rules = new Map<string, number>();
    for (const part of exports) {
      for (const second of part.seconds) {
        const i = second.t - first;
        if (i < 0 || i >= SECONDS) continue;
        requests[i]! += second.requests;
        rateLimited[i]! += second.rateLimited;
        errors[i]! += second.errors;
        for (let b = 0; b < LATENCY_BUCKETS; b++) latency[i * LATENCY_BUCKETS + b]! += second.latency[b] ?? 0;
      }
      for (const [label, count] of part.routes) routes.set(label, (routes.get(label) ?? 0) + count);
      for (const [rule, count] of part.rules) rules.set(rule, (rules.get(rule) ?? 0) + count);
      ips.load(part.ips);
    }
    const seconds: LiveSecond[] = [];
    for (let i = 0; i < SECONDS; i++) {
      const offset = i * LATENCY_BUCKETS;
      seconds.push({
        t: first + i,
        requests: requests[i]!,
        rateLimited: rateLimited[i]!,
        errors: errors[i]!,
        p50Ms: round(quantileMs(latency, offset, 0.5)),
        p99Ms: round(quantileMs(latency, offset, 0.99)),
      });
    }
    // Quantiles of the window from its merged buckets (not an average of per-second quantiles).
    const windowLatency = new Float64Array(LATENCY_BUCKETS);
    for (let i = SECONDS - 1 - WINDOW_SECONDS; i < SECONDS - 1; i++) {
      for (let b = 0; b < LATENCY_BUCKETS; b++) windowLatency[b]! += latency[i * LATENCY_BUCKETS + b]!;
    }
    const byRequests = (a: TopEntry, b: TopEntry) => b.requests - a.requests;
    return {
      now: nowMs,
      seconds,
      window: {
        seconds: WINDOW_SECONDS,
        p50Ms: round(quantileMs(windowLatency, 0, 0.5)),
        p99Ms: round(quantileMs(windowLatency, 0, 0.99)),
      },
      topRoutes: [...routes]
        .map(([key, requests]) => ({ key, requests }))
        .sort(byRequests)
        .slice(0, limit),
      topIps: ips.top(limit).map((entry) => ({ key: entry.key, requests: entry.requests })),
      topRules: [...rules]
        .map(([key, requests]) => ({ key, requests }))
        .sort(byRequests)
        .slice(0, limit),
    };
  }

  private slotFor(second: number): number {
    const slot = second % SLOTS;
    if (this.slotSecond[slot] !== second) {
      this.slotSecond[slot] = second;
      this.requests[slot] = 0;
      this.rateLimited[slot] = 0;
      this.errors[slot] = 0;
      this.latency.fill(0, slot * LATENCY_BUCKETS, (slot + 1) * LATENCY_BUCKETS);
    }
    return slot;
  }

  private topSlotFor(second: number): number {
    const index = Math.floor(second / TOP_SLOT_SECONDS);
    const slot = index % TOP_SLOTS;
    if (this.topSlotStart[slot] !== index) {
      this.topSlotStart[slot] = index;
      this.routes[slot]!.fill(0);
      this.ips[slot]!.clear();
      this.rules[slot]!.clear();
    }
    return slot;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
