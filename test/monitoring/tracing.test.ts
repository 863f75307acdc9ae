/**
 * W3C trace context through the real `meli-proxy serve` (built binary, under one process and under
 * the default worker count) to a real origin, the trace
 * id in the access log, and spans exported over OTLP/HTTP to a real receiver of ours when
 * OpenTelemetry's standard environment asks for it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Origin, startOrigin } from '../peers/origin.js';
import { type OtlpReceiver, startOtlpReceiver } from '../peers/otlp-receiver.js';
import { runCliProcess, tempDir, WORKER_MODES } from '../support/proxy.js';
import { type ServedProxy, startServeProxy } from '../support/serve.js';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_PARENT = '00f067aa0ba902b7';
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE}-${CLIENT_PARENT}-01`;

function serveArgs(origin: Origin, dataDir: string): string[] {
  return ['serve', '--upstream', origin.url, '--port', '0', '--admin-port', '0', '--store', 'memory'].concat([
    '--data-dir',
    dataDir,
  ]);
}

/** Sends one request through the proxy and returns the headers the origin received. */
async function through(
  proxy: ServedProxy,
  origin: Origin,
  target: string,
  headers: Record<string, string> = {},
) {
  const response = await fetch(`${proxy.url}${target}`, { headers });
  await response.arrayBuffer();
  const received = origin.requests.findLast((request) => request.url === target);
  if (!received) throw new Error(`${target} never reached the origin`);
  return { status: response.status, requestId: response.headers.get('x-request-id'), received };
}

function accessLine(proxy: ServedProxy, requestId: string | null) {
  return proxy.logs.waitForRecord('request', (record) => record.reqId === requestId);
}

describe.each(WORKER_MODES)('trace context propagation (export off: the default; $name)', (mode) => {
  let origin: Origin;
  let proxy: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startServeProxy(mode, { upstream: origin.url });
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
  });

  it('starts a trace when the client sent none, and logs its id', async () => {
    const first = await through(proxy, origin, '/echo?trace=none-1');
    const second = await through(proxy, origin, '/echo?trace=none-2');
    const match = TRACEPARENT.exec(String(first.received.headers.traceparent));
    expect(match, String(first.received.headers.traceparent)).not.toBeNull();
    expect(match![3]).toBe('00');
    expect(first.received.headers.tracestate).toBeUndefined();
    expect(second.received.headers.traceparent).not.toBe(first.received.headers.traceparent);
    expect((await accessLine(proxy, first.requestId)).traceId).toBe(match![1]);
  });

  it('passes a valid traceparent and its tracestate on unchanged', async () => {
    const { received, requestId } = await through(proxy, origin, '/echo?trace=valid', {
      traceparent: CLIENT_TRACEPARENT,
      tracestate: 'vendor=abc,other=1',
    });
    expect(received.headers.traceparent).toBe(CLIENT_TRACEPARENT);
    expect(received.headers.tracestate).toBe('vendor=abc,other=1');
    expect((await accessLine(proxy, requestId)).traceId).toBe(CLIENT_TRACE);
  });

  it('replaces a malformed traceparent with a new trace and drops its tracestate', async () => {
    for (const [index, bad] of [
      `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_PARENT}-01`,
      `00-${'0'.repeat(32)}-${CLIENT_PARENT}-01`,
      `ff-${CLIENT_TRACE}-${CLIENT_PARENT}-01`,
      `00-${CLIENT_TRACE}-${CLIENT_PARENT}-01-extra`,
      'not-a-traceparent',
    ].entries()) {
      const { received, requestId } = await through(proxy, origin, `/echo?trace=bad-${index}`, {
        traceparent: bad,
        tracestate: 'vendor=abc',
      });
      const value = String(received.headers.traceparent);
      expect(value, bad).toMatch(TRACEPARENT);
      expect(value, bad).not.toContain(CLIENT_TRACE);
      expect(received.headers.tracestate, bad).toBeUndefined();
      expect((await accessLine(proxy, requestId)).traceId).toBe(TRACEPARENT.exec(value)![1]);
    }
  });
});

describe.each(WORKER_MODES)('span export over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT set; $name)', (mode) => {
  let origin: Origin;
  let receiver: OtlpReceiver;
  let proxy: ServedProxy;

  beforeAll(async () => {
    origin = await startOrigin();
    receiver = await startOtlpReceiver();
    proxy = await startServeProxy(
      mode,
      { upstream: origin.url },
      {
        env: {
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_SERVICE_NAME: 'meli-proxy-test',
          // Export each batch at once (the SDK's standard setting; the default waits 5 s).
          OTEL_BSP_SCHEDULE_DELAY: '50',
        },
      },
    );
  });
  afterAll(async () => {
    await proxy?.close();
    await origin?.close();
    await receiver?.close();
  });

  async function spanFor(requestId: string | null) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const span = receiver.spans.find((item) => item.attributes['meli_proxy.request_id'] === requestId);
      if (span) return span;
      if (Date.now() > deadline) {
        throw new Error(`no span for ${requestId}: ${JSON.stringify(receiver.exports)}\n${proxy.logs.text}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it("continues the client's trace: the proxy's span is the upstream's parent", async () => {
    const { received, requestId } = await through(proxy, origin, '/items/MLA1?trace=otlp', {
      traceparent: CLIENT_TRACEPARENT,
      tracestate: 'vendor=abc',
    });
    const span = await spanFor(requestId);
    expect(span.traceId).toBe(CLIENT_TRACE);
    expect(span.parentSpanId).toBe(CLIENT_PARENT);
    expect(span.kind).toBe(2);
    expect(span.name).toBe('GET /items/:id');
    expect(span.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.route': '/items/:id',
      'http.response.status_code': 200,
    });
    expect(span.resource['service.name']).toBe('meli-proxy-test');
    expect(BigInt(span.endTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(span.startTimeUnixNano));
    expect(received.headers.traceparent).toBe(`00-${CLIENT_TRACE}-${span.spanId}-01`);
    expect(received.headers.tracestate).toBe('vendor=abc');
    expect((await accessLine(proxy, requestId)).traceId).toBe(CLIENT_TRACE);
    expect(receiver.exports.every((item) => item.path === '/v1/traces')).toBe(true);
  });

  it('starts a sampled trace when the client sent none; an upstream 5xx marks the span an error', async () => {
    const { received, requestId } = await through(proxy, origin, '/status/503');
    const span = await spanFor(requestId);
    expect(span.parentSpanId).toBe('');
    expect(received.headers.traceparent).toBe(`00-${span.traceId}-${span.spanId}-01`);
    expect(span.attributes['http.response.status_code']).toBe(503);
    expect(span.statusCode).toBe(2);
    expect((await accessLine(proxy, requestId)).traceId).toBe(span.traceId);
  });
});

describe('OTLP settings', () => {
  it('a malformed endpoint is a usage error naming the variable (exit 2)', async () => {
    const origin = await startOrigin();
    const data = tempDir('meli-otlp-bad-');
    try {
      const result = await runCliProcess(serveArgs(origin, data.dir), {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
      });
      expect(result.code).toBe(2);
      expect(result.stderr + result.stdout).toContain('OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318"');
    } finally {
      await origin.close();
      data.remove();
    }
  });
});
