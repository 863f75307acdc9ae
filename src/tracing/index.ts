/**
 * Chooses the tracing of this process once, at start: OTLP export when OpenTelemetry's standard
 * environment asks for it, propagation only otherwise. The SDK is loaded only when exporting.
 */
import { otlpTracesUrl } from './otlp-endpoint.js';
import { PROPAGATE_ONLY, type TracedRequest, type Tracing } from './tracing.js';

export type { TracedRequest, Tracing } from './tracing.js';
export { PROPAGATE_ONLY } from './tracing.js';

export interface TracingOptions {
  version: string;
  routeLabel: (route: number) => string;
}

export async function createTracing(env: NodeJS.ProcessEnv, options: TracingOptions): Promise<Tracing> {
  const url = otlpTracesUrl(env);
  if (!url) return PROPAGATE_ONLY;
  const { OtlpTracing } = await import('./otlp.js');
  return new OtlpTracing({
    url,
    serviceName: env.OTEL_SERVICE_NAME?.trim() || 'meli-proxy',
    version: options.version,
    routeLabel: options.routeLabel,
  });
}

/** The request fields the end of a span reads. */
interface FinishedRequest extends TracedRequest {
  readonly status: number;
  readonly clientAborted: boolean;
  readonly failure: unknown;
}

/**
 * The request recorder, ending each request's span after it when spans are exported; without
 * export, the recorder itself (no extra call per request).
 */
export function endingSpans<T extends FinishedRequest>(
  tracing: Tracing,
  record: (request: T) => void,
): (request: T) => void {
  if (!tracing.exporting) return record;
  return (request) => {
    record(request);
    // As the access log counts it: a client gone before any answer is 499.
    const status = request.clientAborted && request.status === 0 ? 499 : request.status;
    tracing.finish(request, status, request.failure !== undefined);
  };
}
