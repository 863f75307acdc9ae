/**
 * Open-loop load at a fixed request rate, for "latency at half load". wrk2 is not available and
 * autocannon's rate limit sends each second's quota in a burst at the start of the second, which
 * measures full-load latency; this client schedules request k at t0 + k/rate instead and measures
 * each latency from that intended start (so queueing in the client counts: no coordinated omission).
 * The scheduler ticks every millisecond, so requests leave in groups of rate/1000.
 *
 * Usage: node --import tsx bench/tools/rate-load.ts --url U --rate R [--connections 64]
 *        [--warmup 2] [--duration 10] [--ips N]
 * Prints one JSON line: {requests, achievedRps, p50Ms, p90Ms, p99Ms, maxMs, non2xx, errors, overloaded}.
 * `overloaded`: the target fell so far behind that the run stopped early; the percentiles then
 * cover only what completed and understate the latency.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { clientIp } from '../lib/loadgen.js';
import { percentile } from '../lib/stats.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    rate: { type: 'string' },
    connections: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '2' },
    duration: { type: 'string', default: '10' },
    ips: { type: 'string', default: '1' },
  },
});
if (!values.url || !values.rate) throw new Error('--url and --rate are required');
const url = new URL(values.url);
const rate = Number(values.rate);
const connections = Number(values.connections);
const warmupMs = Number(values.warmup) * 1000;
const durationMs = Number(values.duration) * 1000;
const ips = Number(values.ips);
const path = url.pathname + url.search;

const intervalMs = 1000 / rate;
const total = Math.floor(((warmupMs + durationMs) / 1000) * rate);
/** More requests waiting than this (≥ 1 s of backlog) means the target cannot keep up with the rate. */
const maxInflight = Math.max(1000, connections * 20, rate);

const pool = new Pool(url.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
const latencies = new Float64Array(Math.ceil((durationMs / 1000) * rate) + 16);
let measured = 0;
let completed = 0;
let non2xx = 0;
let errors = 0;
let issued = 0;
let inflight = 0;
let overloaded = false;
/** Set once results are taken: requests still in flight then count as errors, once. */
let closed = false;

// Open every connection and warm both JITs before the clock starts: a cold start otherwise
// builds a backlog that the warm-up period has to drain.
await Promise.all(
  Array.from({ length: connections }, async () => {
    for (let i = 0; i < 20; i++) {
      const { body } = await pool.request({ path, method: 'GET' });
      await body.dump();
    }
  }),
);

const t0 = performance.now();

function send(k: number): void {
  const intended = k * intervalMs;
  const counts = intended >= warmupMs;
  inflight++;
  pool
    .request({
      path,
      method: 'GET',
      headers: ips > 1 ? { 'x-forwarded-for': clientIp(k % ips) } : {},
    })
    .then(async ({ statusCode, body }) => {
      await body.dump();
      if (closed) return;
      const latency = performance.now() - t0 - intended;
      inflight--;
      completed++;
      if (!counts) return;
      if (statusCode < 200 || statusCode >= 400) non2xx++;
      else latencies[measured++] = latency;
    })
    .catch(() => {
      if (closed) return;
      inflight--;
      completed++;
      if (counts) errors++;
    });
}

await new Promise<void>((resolve) => {
  const timer = setInterval(() => {
    const due = Math.min(total, Math.floor((performance.now() - t0) / intervalMs) + 1);
    while (issued < due) send(issued++);
    // Judge overload in the measured window only; the warm-up may still be draining a backlog.
    const limit = performance.now() - t0 < warmupMs ? maxInflight * 10 : maxInflight;
    if (inflight > limit) overloaded = true;
    if (issued >= total || overloaded) {
      clearInterval(timer);
      resolve();
    }
  }, 1);
});

// Let the last requests finish (bounded).
const deadline = performance.now() + 10_000;
while (completed < issued && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
closed = true;
errors += issued - completed;
await pool.destroy();

if (overloaded) {
  console.error(
    `rate-load: more than ${maxInflight} requests in flight: ${url.origin} cannot sustain ${rate}/s`,
  );
}
const sorted = latencies.subarray(0, measured).sort();
console.log(
  JSON.stringify({
    requests: measured + non2xx + errors,
    achievedRps: measured / (durationMs / 1000),
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: percentile(sorted, 100),
    non2xx,
    errors,
    overloaded,
  }),
);
