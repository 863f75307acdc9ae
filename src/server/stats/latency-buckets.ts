/**
 * Fixed, log-spaced latency buckets shared by the live view and the Prometheus histograms, so that
 * a request is recorded with one index computation and a few array increments.
 */

/**
 * Upper bounds in seconds, as Prometheus `le` labels. Dense from 0.5 s to a minute, where slow
 * upstream answers and --upstream-timeout (30 s by default; any whole 5 s up to 30 lands on a
 * bound) lie, so a quantile there is read within a quarter of its value, not rounded up to the
 * next power of ten. 1 s is a bound: the latency SLO counts answers within it.
 */
export const LATENCY_BOUNDS_SECONDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15,
  20, 25, 30, 45, 60,
] as const;

/** Number of buckets including the final +Inf one. */
export const LATENCY_BUCKETS = LATENCY_BOUNDS_SECONDS.length + 1;

const BOUNDS_MS = LATENCY_BOUNDS_SECONDS.map((seconds) => seconds * 1000);

export function latencyBucket(ms: number): number {
  for (let i = 0; i < BOUNDS_MS.length; i++) if (ms <= BOUNDS_MS[i]!) return i;
  return BOUNDS_MS.length;
}

/**
 * The q-quantile (0..1) in milliseconds from per-bucket counts starting at `offset`, interpolated
 * linearly inside the bucket, as Prometheus' histogram_quantile does.
 */
export function quantileMs(counts: ArrayLike<number>, offset: number, q: number): number {
  let total = 0;
  for (let i = 0; i < LATENCY_BUCKETS; i++) total += counts[offset + i]!;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < LATENCY_BUCKETS; i++) {
    const count = counts[offset + i]!;
    if (seen + count >= rank && count > 0) {
      const lower = i === 0 ? 0 : BOUNDS_MS[i - 1]!;
      const upper = i < BOUNDS_MS.length ? BOUNDS_MS[i]! : lower;
      return lower + (upper - lower) * ((rank - seen) / count);
    }
    seen += count;
  }
  return BOUNDS_MS[BOUNDS_MS.length - 1]!;
}
