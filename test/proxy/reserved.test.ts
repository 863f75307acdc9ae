/**
 * /health, /ready and /metrics belong to the proxy: answered by it, with the right methods only,
 * and never forwarded (the origin's request log never shows them).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { httpRequest, rawGet, rawRequest } from '../support/net.js';
import { startTestProxy, type TestProxy, WORKER_MODES } from '../support/proxy.js';
import { type ProxyUnderTest, startServeProxy } from '../support/serve.js';

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** The samples of one metric in a Prometheus text scrape. */
function samples(scrape: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const row of scrape.split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(row);
    if (!match || match[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    out.push({ labels, value: Number(match[3]) });
  }
  return out;
}

/** `meli_proxy_requests_total` for one method and status, summed over any other labels (0 when absent). */
function requestsTotal(scrape: string, method: string, status: number): number {
  return samples(scrape, 'meli_proxy_requests_total')
    .filter((sample) => sample.labels.method === method && sample.labels.status === String(status))
    .reduce((sum, sample) => sum + sample.value, 0);
}

async function scrape(proxy: ProxyUnderTest): Promise<string> {
  const response = await httpRequest(proxy.url, '/metrics');
  expect(response.status).toBe(200);
  return response.body.toString();
}

/** --max-routes of the proxy under test: its lowest value, well below the junk paths sent. */
const MAX_ROUTES = 100;

describe.each(WORKER_MODES)('reserved endpoints ($name)', (mode) => {
  let origin: Origin;
  let proxy: ProxyUnderTest;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startServeProxy(mode, { upstream: origin.url, maxRoutes: MAX_ROUTES });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });
  beforeEach(() => origin.reset());

  it('answers /health with 200 {"status":"ok"}', async () => {
    const response = await httpRequest(proxy.url, '/health');
    expect(response.status).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
    expect(response.headers['cache-control']).toBe('no-store');
    expect(origin.requests).toEqual([]);
  });

  it('answers /ready with 200 when the store answers', async () => {
    const response = await httpRequest(proxy.url, '/ready');
    expect(response.status).toBe(200);
    expect(response.json()).toEqual({
      status: 'ready',
      reasons: [],
      dependencies: { store: { healthy: true } },
      upstream: { connections: 128, busy: 0, waiting: 0, exhausted: false },
    });
    expect(origin.requests).toEqual([]);
  });

  it('answers HEAD on the reserved paths without forwarding', async () => {
    for (const path of ['/health', '/ready', '/metrics']) {
      const response = await rawRequest(proxy.url, rawGet(path, 'proxy.test', [], 'HEAD'), { head: true });
      expect(response.status, path).toBe(200);
    }
    expect(origin.requests).toEqual([]);
  });

  it('answers 405 with Allow to other methods on the reserved paths, without forwarding', async () => {
    for (const [method, path] of [
      ['POST', '/health'],
      ['PUT', '/ready'],
      ['DELETE', '/metrics'],
      ['PATCH', '/health?probe=1'],
      ['OPTIONS', '/ready'],
    ] as const) {
      const response = await httpRequest(proxy.url, path, {
        method,
        headers: { 'content-type': 'application/json', 'content-length': '2' },
        body: '{}',
      });
      expect(response.status, `${method} ${path}`).toBe(405);
      expect(response.headers.allow).toBe('GET, HEAD');
      expect(response.json()).toMatchObject({ status: 405, error: 'method_not_allowed', cause: [] });
    }
    expect(origin.requests).toEqual([]);
  });

  it('does not forward reserved paths given in absolute form', async () => {
    const health = await rawRequest(
      proxy.url,
      rawGet('http://api.mercadolibre.com/health', 'api.mercadolibre.com'),
    );
    expect(health.status).toBe(200);
    const post = await rawRequest(
      proxy.url,
      'POST http://api.mercadolibre.com/metrics HTTP/1.1\r\nHost: api.mercadolibre.com\r\nContent-Length: 0\r\n\r\n',
    );
    expect(post.status).toBe(405);
    expect(origin.requests).toEqual([]);
  });

  it('forwards paths that only look like reserved ones', async () => {
    for (const path of ['/healthz', '/health/x', '/metrics2', '/items/health']) {
      await httpRequest(proxy.url, path);
    }
    expect(origin.requests.map((r) => r.url)).toEqual([
      '/healthz',
      '/health/x',
      '/metrics2',
      '/items/health',
    ]);
  });

  it('serves Prometheus text with requests counted by method and status', async () => {
    const before = await scrape(proxy);
    expect(before).toContain('# TYPE meli_proxy_requests_total counter');
    expect(before).toMatch(/^meli_proxy_process_resident_memory_bytes \d+/m);
    expect(before).toMatch(/^meli_proxy_in_flight_requests 0$/m);

    for (let i = 0; i < 3; i++) await httpRequest(proxy.url, '/categories/MLA97994');
    await httpRequest(proxy.url, '/categories/MLA1');
    await httpRequest(proxy.url, '/status/503');
    await httpRequest(proxy.url, '/echo', { method: 'POST', headers: { 'content-length': '1' }, body: 'x' });
    await httpRequest(proxy.url, '/health', { method: 'DELETE' });
    await httpRequest(proxy.url, '/health');

    const after = await scrape(proxy);
    const delta = (method: string, status: number) =>
      requestsTotal(after, method, status) - requestsTotal(before, method, status);
    // Probes and scrapes (GET /health, GET /metrics) are not usage and are not counted.
    expect(delta('GET', 200)).toBe(3);
    expect(delta('GET', 404)).toBe(1);
    expect(delta('GET', 503)).toBe(1);
    expect(delta('POST', 200)).toBe(1);
    expect(delta('DELETE', 405)).toBe(1);
    // Labels are templates, never raw paths.
    expect(after).not.toContain('MLA97994');
    expect(after).not.toMatch(/path="/);
    expect(origin.requests.some((r) => ['/health', '/ready', '/metrics'].includes(r.url))).toBe(false);
  });

  it('keeps metric labels bounded whatever paths clients send', async () => {
    await Promise.all(
      Array.from({ length: 400 }, (_, i) => httpRequest(proxy.url, `/random${i}-segment/MLA${i}?q=${i}`)),
    );
    await httpRequest(proxy.url, '/items/MLA123456789');
    const scraped = await scrape(proxy);
    const routes = new Set(
      samples(scraped, 'meli_proxy_requests_total').map((sample) => sample.labels.route),
    );
    // The cap holds for the host, not per worker; paths beyond it are reported as /other.
    expect(routes.size).toBeLessThanOrEqual(MAX_ROUTES + 1);
    expect(scraped).not.toContain('MLA123456789');
    expect(scraped).not.toMatch(/MLA\d{3}/);
    const series = samples(scraped, 'meli_proxy_requests_total').length;
    // Another wave of new paths adds no series once the route table is full.
    await Promise.all(Array.from({ length: 100 }, (_, i) => httpRequest(proxy.url, `/more${i}-segment`)));
    expect(samples(await scrape(proxy), 'meli_proxy_requests_total').length).toBeLessThanOrEqual(series + 2);
  });

  it('counts upstream failures under their status', async () => {
    const before = await scrape(proxy);
    await httpRequest(proxy.url, '/reset');
    const after = await scrape(proxy);
    expect(requestsTotal(after, 'GET', 502) - requestsTotal(before, 'GET', 502)).toBe(1);
  });
});

// In this process only: it needs a store whose health check the test switches.
describe('/ready with a failing store', () => {
  let origin: Origin;
  let proxy: TestProxy;
  let storeDown = false;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startTestProxy(
      { upstream: origin.url },
      {
        store: (memory) => {
          // The memory store, with a check() the test can make fail.
          const check = memory.check.bind(memory);
          memory.check = async () => {
            if (storeDown) throw new Error('connection refused by the test');
            await check();
          };
          return memory;
        },
      },
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });

  it('stays ready while the store is down, reporting the store in its body', async () => {
    storeDown = true;
    const down = await httpRequest(proxy.url, '/ready');
    // Every replica shares the store: an outage must not empty the Service of all its pods.
    expect(down.status).toBe(200);
    expect(down.json()).toMatchObject({
      status: 'ready',
      reasons: [],
      dependencies: { store: { healthy: false, reason: 'connection refused by the test' } },
    });
    // Liveness is not readiness: the process itself is fine.
    expect((await httpRequest(proxy.url, '/health')).status).toBe(200);
    // Forwarding does not depend on the store.
    expect((await httpRequest(proxy.url, '/items/MLA1')).status).toBe(200);
    storeDown = false;
    const up = await httpRequest(proxy.url, '/ready');
    expect(up.status).toBe(200);
    expect(up.json()).toMatchObject({ dependencies: { store: { healthy: true } } });
  });
});
