/** Maps a failure talking to the upstream onto the status and message the client receives. */

/** Every kind of upstream failure, as the `kind` label of meli_proxy_upstream_errors_total. */
export const UPSTREAM_ERROR_KINDS = [
  'timeout',
  'refused',
  'reset',
  'dns',
  'tls',
  'protocol',
  'other',
] as const;
export type UpstreamErrorKind = (typeof UPSTREAM_ERROR_KINDS)[number];

export interface UpstreamFailure {
  kind: UpstreamErrorKind;
  status: 502 | 504;
  error: string;
  message: string;
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
]);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN']);

function codeOf(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string')
    return error.code;
  return '';
}

export function classifyUpstreamError(error: unknown): UpstreamFailure {
  const code = codeOf(error);
  const cause = error && typeof error === 'object' && 'cause' in error ? codeOf(error.cause) : '';
  if (TIMEOUT_CODES.has(code) || TIMEOUT_CODES.has(cause)) {
    return {
      kind: 'timeout',
      status: 504,
      error: 'gateway_timeout',
      message: 'The upstream did not answer in time.',
    };
  }
  if (code === 'ECONNREFUSED' || cause === 'ECONNREFUSED') {
    return {
      kind: 'refused',
      status: 502,
      error: 'bad_gateway',
      message: 'The upstream refused the connection.',
    };
  }
  if (RESET_CODES.has(code) || RESET_CODES.has(cause)) {
    return {
      kind: 'reset',
      status: 502,
      error: 'bad_gateway',
      message: 'The upstream closed the connection.',
    };
  }
  if (DNS_CODES.has(code) || DNS_CODES.has(cause)) {
    return {
      kind: 'dns',
      status: 502,
      error: 'bad_gateway',
      message: 'The upstream host name could not be resolved.',
    };
  }
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || cause.includes('CERT')) {
    return { kind: 'tls', status: 502, error: 'bad_gateway', message: 'The upstream TLS handshake failed.' };
  }
  if (code.startsWith('HPE_') || code === 'UND_ERR_INFO' || code === 'UND_ERR_RESPONSE_EXCEEDED_MAX_SIZE') {
    return {
      kind: 'protocol',
      status: 502,
      error: 'bad_gateway',
      message: 'The upstream sent an invalid response.',
    };
  }
  return { kind: 'other', status: 502, error: 'bad_gateway', message: 'The upstream request failed.' };
}
