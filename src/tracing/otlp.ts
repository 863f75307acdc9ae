/**
 * Tracing with span export: one SERVER span per forwarded request, exported in batches over
 * OTLP/HTTP by OpenTelemetry's SDK. The span continues the client's trace (or starts one) and is
 * the parent the upstream sees in its traceparent.
 */
import {
  createTraceState,
  ROOT_CONTEXT,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { formatTraceParent, keptTraceState, parseTraceParent } from './traceparent.js';
import type { TracedRequest, Tracing } from './tracing.js';

export interface OtlpTracingOptions {
  url: string;
  serviceName: string;
  version: string;
  /** The route template of a route id (bounded: never the raw path). */
  routeLabel: (route: number) => string;
}

function parentContext(traceparent: string | undefined, tracestate: string | undefined) {
  const parent = traceparent ? parseTraceParent(traceparent) : undefined;
  if (!parent) return ROOT_CONTEXT;
  const state = keptTraceState(tracestate);
  const spanContext: SpanContext = {
    traceId: parent.traceId,
    spanId: parent.parentId,
    traceFlags: parent.flags,
    isRemote: true,
    ...(state !== undefined ? { traceState: createTraceState(state) } : {}),
  };
  return trace.setSpanContext(ROOT_CONTEXT, spanContext);
}

export class OtlpTracing implements Tracing {
  readonly exporting = true;
  readonly endpoint: string;
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;

  constructor(private readonly options: OtlpTracingOptions) {
    const url = new URL(options.url);
    // Credentials in the URL stay out of the logs.
    this.endpoint = `${url.protocol}//${url.host}${url.pathname}`;
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': options.serviceName,
        'service.version': options.version,
      }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: options.url }))],
    });
    this.tracer = this.provider.getTracer('meli-proxy', options.version);
  }

  upstream(
    out: string[],
    traceparent: string | undefined,
    tracestate: string | undefined,
    request: TracedRequest,
  ): void {
    const route = this.options.routeLabel(request.route);
    const span = this.tracer.startSpan(
      `${request.method} ${route}`,
      {
        kind: SpanKind.SERVER,
        startTime: request.startedAt,
        attributes: {
          'http.request.method': request.method,
          'http.route': route,
          'client.address': request.clientIp,
          'meli_proxy.request_id': request.requestId,
        },
      },
      parentContext(traceparent, tracestate),
    );
    const context = span.spanContext();
    request.span = span;
    request.traceId = context.traceId;
    out.push('traceparent', formatTraceParent(context.traceId, context.spanId, context.traceFlags));
    // The client's tracestate, carried by the span context (dropped with a malformed parent).
    const state = context.traceState?.serialize();
    if (state) out.push('tracestate', state);
  }

  finish(request: TracedRequest, status: number, failed: boolean): void {
    const span = request.span;
    if (!span) return;
    request.span = undefined;
    span.setAttribute('http.response.status_code', status);
    // Server spans mark 5xx as errors; 4xx are the client's (OpenTelemetry HTTP conventions).
    if (failed || status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }

  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}
