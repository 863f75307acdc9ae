/**
 * What keeping exemplars costs per request: ProxyMetrics.requestFinished (both latency histograms,
 * the request counter) called in a loop with and without a trace id, alternating, in one process.
 * The difference is the exemplar's three stores per histogram; no clock is read for it.
 *
 *   node --import tsx bench/exemplar-cost.ts [--calls 5000000] [--rounds 5]
 */
import { parseArgs } from 'node:util';
import { ProxyMetrics } from '../src/server/metrics.js';

const { values } = parseArgs({
  options: { calls: { type: 'string', default: '5000000' }, rounds: { type: 'string', default: '5' } },
});
const CALLS = Number(values.calls);
const ROUNDS = Number(values.rounds);

const metrics = new ProxyMetrics({ routeCapacity: 64, routeLabel: (id) => `/r${id}` });
const traceIds = Array.from({ length: 1024 }, (_, i) => i.toString(16).padStart(32, '0'));

function nsPerCall(traced: boolean): number {
  const started = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) {
    metrics.requestStarted();
    const traceId = traced ? traceIds[i & 1023]! : '';
    metrics.requestFinished(0, i & 63, 200, (i & 1023) * 0.37, (i & 511) * 0.3, 1000, traceId, 5000 + i);
  }
  return Number(process.hrtime.bigint() - started) / CALLS;
}

const without: number[] = [];
const withTrace: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  without.push(nsPerCall(false));
  withTrace.push(nsPerCall(true));
}
const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
console.log(
  `requestFinished, median of ${ROUNDS} rounds of ${CALLS} calls: ${median(without).toFixed(1)} ns without a trace id, ${median(withTrace).toFixed(1)} ns with one`,
);
