/**
 * What the proxy path asks of tracing. Two implementations: propagation only (the default: W3C
 * headers passed on or started, nothing recorded) and OTLP export (otlp.ts), chosen once at start.
 */
import type { Span } from '@opentelemetry/api';
import { newSpanId, newTraceId } from './ids.js';
import { formatTraceParent, keptTraceState, parseTraceParent } from './traceparent.js';

/** The request fields tracing reads and fills (the request context carries them). */
export interface TracedRequest {
  readonly method: string;
  readonly route: number;
  readonly clientIp: string;
  readonly requestId: string;
  /** performance.now() at arrival. */
  readonly startedAt: number;
  /** The trace this request belongs to, once it is forwarded ('' before). */
  traceId: string;
  /** The request's span, when spans are exported. */
  span: Span | undefined;
}

export interface Tracing {
  /** Whether spans are exported. */
  readonly exporting: boolean;
  /** Where spans go (scheme, host and path only), when exported. */
  readonly endpoint?: string;
  /**
   * Appends `traceparent` (and `tracestate`) for the upstream request to `out` and notes the trace
   * id on the request: the client's trace continued, or a new one when it sent none or a malformed
   * one. The arguments are the client's headers (undefined when absent, '' when repeated: invalid).
   */
  upstream(
    out: string[],
    traceparent: string | undefined,
    tracestate: string | undefined,
    request: TracedRequest,
  ): void;
  /** Ends the request's span, if it has one. */
  finish(request: TracedRequest, status: number, failed: boolean): void;
  /** Sends what is still buffered. */
  shutdown(): Promise<void>;
}

/**
 * Propagation only: a valid client traceparent goes on unchanged (this hop records nothing, so it
 * adds no span of its own); otherwise a new trace starts here, not sampled, without the tracestate
 * of a malformed parent.
 */
export const PROPAGATE_ONLY: Tracing = {
  exporting: false,
  upstream(out, traceparent, tracestate, request) {
    const parent = traceparent ? parseTraceParent(traceparent) : undefined;
    if (parent) {
      request.traceId = parent.traceId;
      out.push('traceparent', traceparent!);
      const state = keptTraceState(tracestate);
      if (state !== undefined) out.push('tracestate', state);
      return;
    }
    const traceId = newTraceId();
    request.traceId = traceId;
    out.push('traceparent', formatTraceParent(traceId, newSpanId(), 0));
  },
  finish() {},
  shutdown: async () => undefined,
};
