/**
 * Sliding-window-counter arithmetic (the algorithm is explained in docs/rate-limiting.md). Counts live in two
 * aligned fixed windows; the estimate of the last `windowMs` is the current window's count plus the
 * previous window's count weighted by how much of it the sliding window still covers.
 *
 * The weighted share is rounded down: counts are whole requests, and without rounding the residue
 * of a request made almost a window ago (0.98 of one) would reject a client that sends exactly its
 * limit — with 1/m, every other minute. Rounding admits at most one request more than the exact
 * weighted estimate, and changes nothing inside a window whose predecessor was empty.
 */

/** Requests in the sliding window ending `elapsed` ms into the current window (a whole number). */
export function slidingEstimate(
  previous: number,
  current: number,
  windowMs: number,
  elapsed: number,
): number {
  // The epsilon keeps 4.9999999 (float noise for 5) from rounding down to 4.
  return Math.floor((previous * (windowMs - elapsed)) / windowMs + 1e-9) + current;
}

/**
 * Milliseconds until one more request fits under `cap`, assuming nothing else is admitted meanwhile.
 * Within the current window only the previous window's share decays; once this window's own count
 * leaves no room, the answer lies in the next window, where this count becomes the decaying one.
 */
export function msUntilAvailable(
  previous: number,
  current: number,
  windowMs: number,
  elapsed: number,
  cap: number,
): number {
  const room = cap - 1;
  if (current <= room) {
    // Need floor(previous × left / windowMs) ≤ room − current, i.e. previous × left / windowMs < share.
    const share = room - current + 1;
    if (previous < share) return 0;
    return Math.max(0, windowMs - elapsed - (share * windowMs) / previous);
  }
  return windowMs - elapsed + Math.max(0, windowMs - ((room + 1) * windowMs) / current);
}
