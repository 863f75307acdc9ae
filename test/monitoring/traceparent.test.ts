/** Reading and writing W3C traceparent/tracestate (the specification's own examples and edge cases). */
import { describe, expect, it } from 'vitest';
import { newSpanId, newTraceId } from '../../src/tracing/ids.js';
import { formatTraceParent, keptTraceState, parseTraceParent } from '../../src/tracing/traceparent.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('reads version 00 and a later version by its version-00 prefix', () => {
    expect(parseTraceParent(`00-${TRACE}-${PARENT}-01`)).toEqual({
      traceId: TRACE,
      parentId: PARENT,
      flags: 1,
    });
    expect(parseTraceParent(`00-${TRACE}-${PARENT}-00`)?.flags).toBe(0);
    expect(parseTraceParent(`01-${TRACE}-${PARENT}-09-future`)).toEqual({
      traceId: TRACE,
      parentId: PARENT,
      flags: 9,
    });
  });

  it.each([
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${PARENT}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${PARENT}-01`],
    ['all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${PARENT}-01`],
    ['version 00 with more fields', `00-${TRACE}-${PARENT}-01-extra`],
    ['a later version without a dash after the flags', `01-${TRACE}-${PARENT}-01x`],
    ['short', `00-${TRACE}-${PARENT}-1`],
    ['bad flags', `00-${TRACE}-${PARENT}-0g`],
    ['wrong separators', `00_${TRACE}_${PARENT}_01`],
    ['empty', ''],
  ])('refuses %s', (_name, value) => {
    expect(parseTraceParent(value)).toBeUndefined();
  });

  it('writes version 00 with two-digit flags', () => {
    expect(formatTraceParent(TRACE, PARENT, 1)).toBe(`00-${TRACE}-${PARENT}-01`);
    expect(formatTraceParent(TRACE, PARENT, 0)).toBe(`00-${TRACE}-${PARENT}-00`);
    expect(parseTraceParent(formatTraceParent(newTraceId(), newSpanId(), 0))).toBeDefined();
  });

  it('new ids are lower-case hex of the right length, and differ', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newTraceId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(newSpanId()).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('tracestate', () => {
  it('is kept up to 32 list members and dropped whole past them', () => {
    const members = (count: number) => Array.from({ length: count }, (_, index) => `k${index}=v`).join(',');
    expect(keptTraceState(members(32))).toBe(members(32));
    expect(keptTraceState(members(33))).toBeUndefined();
    expect(keptTraceState(undefined)).toBeUndefined();
  });
});
