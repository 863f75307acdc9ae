/**
 * Closed-loop load with autocannon (the fallback when wrk is not installed), run as a child process
 * so it can be pinned. Prints one JSON line: {rps, p50Ms, p99Ms, requests, non2xx, socketErrors}.
 * Usage: node --import tsx bench/tools/autocannon-load.ts --url U --connections 64 --duration 10 [--ips N]
 *
 * autocannon's own histogram has 1 ms resolution, too coarse for sub-millisecond latencies, so the
 * percentiles come from the per-response times it reports as events (float milliseconds).
 */
import { parseArgs } from 'node:util';
import autocannon, { type Request } from 'autocannon';
import { clientIp } from '../lib/loadgen.js';
import { percentile } from '../lib/stats.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '64' },
    duration: { type: 'string', default: '10' },
    ips: { type: 'string', default: '1' },
  },
});
if (!values.url) throw new Error('--url is required');
const ips = Number(values.ips);
const url = new URL(values.url);

let next = 0;
const requests: Request[] | undefined =
  ips > 1
    ? [
        {
          method: 'GET',
          path: url.pathname + url.search,
          setupRequest: (request) => {
            const ip = clientIp(next++ % ips);
            return { ...request, headers: { ...request.headers, 'x-forwarded-for': ip } };
          },
        },
      ]
    : undefined;

let latencies = new Float64Array(1 << 16);
let count = 0;
const instance = autocannon({
  url: values.url,
  connections: Number(values.connections),
  duration: Number(values.duration),
  timeout: 10,
  ...(requests ? { requests } : {}),
});
instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
  if (statusCode < 200 || statusCode >= 400) return;
  if (count === latencies.length) {
    const grown = new Float64Array(latencies.length * 2);
    grown.set(latencies);
    latencies = grown;
  }
  latencies[count++] = responseTime;
});
const result = await instance;
const sorted = latencies.subarray(0, count).sort();
console.log(
  JSON.stringify({
    rps: result.requests.total / result.duration,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    requests: result.requests.total,
    non2xx: result.non2xx,
    socketErrors: result.errors,
  }),
);
