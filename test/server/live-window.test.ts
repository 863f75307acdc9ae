/**
 * The live window's headline latency: quantiles over the last 10 complete seconds from their merged
 * buckets, as the dashboard tile and `top` claim, not the newest second's.
 */
import { describe, expect, it } from 'vitest';
import { LiveWindow, WINDOW_SECONDS } from '../../src/server/stats/live-window.js';

const T0 = Date.parse('2025-03-01T10:00:00.000Z');

describe('live window latency', () => {
  it('p99 covers the whole 10 s window, the partial current second left out', () => {
    const live = new LiveWindow(4);
    // Nine seconds of fast answers, then one second with slow ones: 2 % of the window is slow.
    for (let second = 0; second < 9; second++) {
      for (let i = 0; i < 98; i++) live.record(T0 + second * 1000 + 10, 1, 200, 4, '10.0.0.1');
    }
    for (let i = 0; i < 18; i++) live.record(T0 + 9000 + 10, 1, 200, 2_600, '10.0.0.1');
    // The current, partial second: a single very slow answer that must not count yet.
    live.record(T0 + 10_000 + 10, 1, 200, 50_000, '10.0.0.1');

    const snapshot = live.snapshot(T0 + 10_500, () => '/items/:id');
    expect(snapshot.window.seconds).toBe(WINDOW_SECONDS);
    // 900 requests: the 891st (99 %) is among the 18 slow ones (between 2.5 s and 3 s).
    expect(snapshot.window.p99Ms).toBeGreaterThan(2_500);
    expect(snapshot.window.p99Ms).toBeLessThanOrEqual(3_000);
    // The median is a fast answer.
    expect(snapshot.window.p50Ms).toBeLessThanOrEqual(5);
    // The newest complete second alone says something else: only slow answers.
    const newest = snapshot.seconds.at(-2)!;
    expect(newest.p50Ms).toBeGreaterThan(2_500);
  });

  it('an empty window has no latency (0, shown as a dash by the clients)', () => {
    const snapshot = new LiveWindow(4).snapshot(T0, () => '/');
    expect(snapshot.window).toEqual({ seconds: WINDOW_SECONDS, p50Ms: 0, p99Ms: 0 });
  });
});
