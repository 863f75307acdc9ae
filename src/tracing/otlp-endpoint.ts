/**
 * Whether spans are exported, and where: OpenTelemetry's standard environment variables, read the
 * way its SDKs read them. Nothing set (the default) means no export.
 */
import { UsageError } from '../errors.js';

function present(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function checkedUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${name}="${value}" is not a URL: give the collector's http(s)://host:port`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${name}="${value}" must be an http:// or https:// URL (OTLP over HTTP)`);
  }
  return value;
}

/**
 * The URL traces are posted to, or undefined when export is off. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
 * is used as it is; OTEL_EXPORTER_OTLP_ENDPOINT gets `/v1/traces` appended. OTEL_SDK_DISABLED=true
 * or OTEL_TRACES_EXPORTER=none turn export off. A malformed URL is a usage error (exit 2).
 */
export function otlpTracesUrl(env: NodeJS.ProcessEnv): string | undefined {
  if (present(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined;
  const exporters = present(env, 'OTEL_TRACES_EXPORTER');
  if (exporters !== undefined) {
    const names = exporters.split(',').map((name) => name.trim().toLowerCase());
    if (names.includes('none')) return undefined;
    if (!names.includes('otlp')) {
      throw new UsageError(`OTEL_TRACES_EXPORTER="${exporters}": this proxy exports with "otlp" (or "none")`);
    }
  }
  const specific = present(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  if (specific) return checkedUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', specific);
  const base = present(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (!base) return undefined;
  checkedUrl('OTEL_EXPORTER_OTLP_ENDPOINT', base);
  return `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
}
