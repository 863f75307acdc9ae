/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): reading a client's `traceparent` and
 * writing ours. Only version 00 is written; a later version is read by its version-00 prefix, as
 * the specification asks.
 */

/** The parts of a valid traceparent, hex in lower case. */
export interface TraceParent {
  traceId: string;
  parentId: string;
  /** The trace-flags byte (bit 0: sampled). */
  flags: number;
}

const V00_LENGTH = 55;

function isLowerHex(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 97 && code <= 102);
}

/** Whether value[start, end) is lower-case hex and not all zeros (an all-zero id is invalid). */
function isId(value: string, start: number, end: number): boolean {
  let nonZero = false;
  for (let i = start; i < end; i++) {
    const code = value.charCodeAt(i);
    if (!isLowerHex(code)) return false;
    if (code !== 48) nonZero = true;
  }
  return nonZero;
}

/** The traceparent's parts, or undefined when it is malformed (then it must be replaced). */
export function parseTraceParent(value: string): TraceParent | undefined {
  if (value.length < V00_LENGTH) return undefined;
  const v0 = value.charCodeAt(0);
  const v1 = value.charCodeAt(1);
  if (!isLowerHex(v0) || !isLowerHex(v1) || (v0 === 102 && v1 === 102)) return undefined;
  const version00 = v0 === 48 && v1 === 48;
  // Version 00 is exactly 55 characters; a later version may append fields after a dash.
  if (version00 ? value.length !== V00_LENGTH : value.length > V00_LENGTH && value[V00_LENGTH] !== '-') {
    return undefined;
  }
  if (value[2] !== '-' || value[35] !== '-' || value[52] !== '-') return undefined;
  if (!isId(value, 3, 35) || !isId(value, 36, 52)) return undefined;
  if (!isLowerHex(value.charCodeAt(53)) || !isLowerHex(value.charCodeAt(54))) return undefined;
  return {
    traceId: value.slice(3, 35),
    parentId: value.slice(36, 52),
    flags: Number.parseInt(value.slice(53, 55), 16),
  };
}

/** A version-00 traceparent. */
export function formatTraceParent(traceId: string, parentId: string, flags: number): string {
  return `00-${traceId}-${parentId}-${(flags & 0xff).toString(16).padStart(2, '0')}`;
}

/** The specification's limit: a tracestate with more list members is discarded whole. */
const MAX_TRACESTATE_MEMBERS = 32;

/** The tracestate to pass on: undefined when it must be dropped (too many members). */
export function keptTraceState(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let members = 1;
  for (let i = value.indexOf(','); i !== -1; i = value.indexOf(',', i + 1)) {
    if (++members > MAX_TRACESTATE_MEMBERS) return undefined;
  }
  return value;
}
