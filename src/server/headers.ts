import type { TracedRequest, Tracing } from '../tracing/index.js';

/**
 * Header rewriting between client and upstream. Headers travel as flat [name, value, …] arrays,
 * the shape Node and undici both produce and accept, so no per-request objects are built.
 */

/** RFC 9110 §7.6.1 connection-specific fields, plus fields this proxy owns or undici refuses. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/**
 * Request fields the proxy sets itself, or passes on only from a trusted peer (other names for the
 * client's address); a client's copy is dropped or rebuilt.
 */
const OWNED_REQUEST_FIELDS = new Set([
  'host',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-real-ip',
  'x-request-id',
  'traceparent',
  'tracestate',
]);

/** Lengths of the request header names the proxy owns or drops: only those are looked up. */
const REQUEST_SPECIAL_LENGTH = new Uint8Array(32);
for (const name of [...HOP_BY_HOP, ...OWNED_REQUEST_FIELDS]) REQUEST_SPECIAL_LENGTH[name.length] = 1;

/** Names listed in a Connection header value are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionOptions(value: string | undefined): Set<string> | undefined {
  if (!value) return undefined;
  // What nearly every peer sends: nothing named, no set to build.
  if (value.length <= 10) {
    const lower = value.toLowerCase();
    if (lower === 'keep-alive' || lower === 'close') return undefined;
  }
  let names: Set<string> | undefined;
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name.length === 0 || name === 'close' || name === 'keep-alive') continue;
    names ??= new Set();
    names.add(name);
  }
  return names;
}

/** What is the same for every request: where it goes, and what the proxy lets through. */
export interface HeaderPolicy {
  upstreamHost: string;
  /**
   * Pass on names with an underscore. Off, they are dropped (as nginx's `underscores_in_headers
   * off`): CGI-style origins map `-` and `_` alike, so `X_Forwarded_For` would pose as ours.
   */
  underscoresInHeaders: boolean;
  /** Writes the upstream's W3C trace headers (the client's are read here, never passed on as such). */
  tracing: Tracing;
}

/** What belongs to one request (the request's context carries these fields). */
export interface ForwardedInfo extends TracedRequest {
  /** The client's address as the rate limiter and logs see it. */
  readonly clientIp: string;
  /**
   * Whether the direct peer is a configured trusted proxy (its X-Forwarded-*, Forwarded and X-Real-IP
   * are kept).
   */
  readonly peerTrusted: boolean;
  /** The immediate peer's address, appended to X-Forwarded-For. */
  readonly peerIp: string;
  readonly requestId: string;
}

/**
 * Builds the upstream request headers from the client's raw headers: hop-by-hop fields and (by
 * policy) names with an underscore dropped, Host set to the upstream, X-Forwarded-* and
 * X-Request-Id set, Forwarded and X-Real-IP kept only from a trusted peer, traceparent and
 * tracestate written by the tracing policy.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  policy: HeaderPolicy,
  info: ForwardedInfo,
): string[] {
  const dropUnderscores = !policy.underscoresInHeaders;
  const out: string[] = [];
  let connection: string | undefined;
  let clientHost: string | undefined;
  let priorForwardedFor: string | undefined;
  let priorProto: string | undefined;
  let priorHost: string | undefined;
  let traceparent: string | undefined;
  let tracestate: string | undefined;

  // One pass; only names as long as a field we own or drop are lower-cased and looked up.
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if (dropUnderscores && raw.includes('_')) continue;
    if (raw.length < 32 && REQUEST_SPECIAL_LENGTH[raw.length] === 1) {
      const name = raw.toLowerCase();
      if (OWNED_REQUEST_FIELDS.has(name)) {
        if (name === 'host') clientHost = value;
        else if (name === 'x-forwarded-for')
          priorForwardedFor = priorForwardedFor ? `${priorForwardedFor}, ${value}` : value;
        else if (name === 'x-forwarded-proto') priorProto ??= value;
        else if (name === 'x-forwarded-host') priorHost ??= value;
        // Two traceparents are as good as none (''): a new trace starts.
        else if (name === 'traceparent') traceparent = traceparent === undefined ? value : '';
        else if (name === 'tracestate')
          tracestate = tracestate === undefined ? value : `${tracestate},${value}`;
        // A trusted peer's are passed on as they came (nothing of this hop is added to them).
        else if (info.peerTrusted && (name === 'forwarded' || name === 'x-real-ip')) out.push(raw, value);
        continue;
      }
      if (HOP_BY_HOP.has(name)) {
        if (name === 'connection') connection = connection ? `${connection},${value}` : value;
        continue;
      }
    }
    out.push(raw, value);
  }
  // Fields a Connection header names are hop-by-hop too (rare: the list is filtered afterwards).
  const named = connectionOptions(connection);
  if (named) {
    let kept = 0;
    for (let i = 0; i < out.length; i += 2) {
      if (named.has(out[i]!.toLowerCase())) continue;
      out[kept++] = out[i]!;
      out[kept++] = out[i + 1]!;
    }
    out.length = kept;
  }

  // Only a trusted proxy's view of the chain is passed on; anyone else could forge it.
  const forwardedFor =
    info.peerTrusted && priorForwardedFor ? `${priorForwardedFor}, ${info.peerIp}` : info.peerIp;
  out.push('host', policy.upstreamHost);
  out.push('x-forwarded-for', forwardedFor);
  out.push('x-forwarded-proto', info.peerTrusted && priorProto ? priorProto : 'http');
  const forwardedHost = info.peerTrusted && priorHost ? priorHost : clientHost;
  if (forwardedHost) out.push('x-forwarded-host', forwardedHost);
  out.push('x-request-id', info.requestId);
  policy.tracing.upstream(out, traceparent, tracestate, info);
  return out;
}

/** Lengths of the response header names that need a closer look: hop-by-hop ones, x-request-id. */
const SPECIAL_LENGTH = new Uint8Array(32);
for (const name of [...HOP_BY_HOP, 'x-request-id']) SPECIAL_LENGTH[name.length] = 1;

/**
 * Converts undici's raw response headers to a flat string array for `writeHead`, dropping
 * hop-by-hop fields. The upstream's own request id is kept under another name so ours stays unique.
 *
 * One pass, lower-casing only names whose length is that of a field to drop or rename (most are
 * not); a `Connection` header naming other fields (rare) sends the whole list through the general
 * two-pass version instead.
 */
export function clientResponseHeaders(
  rawHeaders: readonly Buffer[],
  requestId: string,
  closeAfter: boolean,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toString('latin1');
    if (name.length < 32 && SPECIAL_LENGTH[name.length] === 1) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) {
        if (lower === 'connection' && connectionOptions(rawHeaders[i + 1]!.toString('latin1'))) {
          return headersNamedByConnection(rawHeaders, requestId, closeAfter);
        }
        continue;
      }
      if (lower === 'x-request-id') {
        out.push('x-upstream-request-id', rawHeaders[i + 1]!.toString('latin1'));
        continue;
      }
    }
    out.push(name, rawHeaders[i + 1]!.toString('latin1'));
  }
  out.push('x-request-id', requestId);
  if (closeAfter) out.push('connection', 'close');
  return out;
}

/** clientResponseHeaders when a Connection header names further hop-by-hop fields. */
function headersNamedByConnection(
  rawHeaders: readonly Buffer[],
  requestId: string,
  closeAfter: boolean,
): string[] {
  const out: string[] = [];
  const named = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toString('latin1').toLowerCase() === 'connection') {
      for (const option of connectionOptions(rawHeaders[i + 1]!.toString('latin1')) ?? []) named.add(option);
    }
  }
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    if (lower === 'x-request-id') {
      out.push('x-upstream-request-id', rawHeaders[i + 1]!.toString('latin1'));
      continue;
    }
    out.push(name, rawHeaders[i + 1]!.toString('latin1'));
  }
  out.push('x-request-id', requestId);
  if (closeAfter) out.push('connection', 'close');
  return out;
}
