/**
 * Latency histogram buckets shared by the writers (LUN workers, in milliseconds, the unit
 * of performance.now()) and the exporter (Prometheus, in seconds).
 *
 * Upper bounds from 50 µs (a RAM read answered on the LUN worker) to 10 s (a stalled
 * backing store); one more bucket holds everything above (+Inf). Seventeen comparisons
 * at most, five for a sub-millisecond command: the search is a linear scan from the
 * smallest bound, which is cheaper than a binary search for the common fast case.
 */

/** Upper bounds in seconds, ascending (Prometheus `le`). */
export const LATENCY_BOUNDS_S: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** The same bounds in milliseconds, as a typed array (the writers' scan reads no boxed numbers). */
export const LATENCY_BOUNDS_MS: Float64Array = Float64Array.from(LATENCY_BOUNDS_S, (s) => s * 1000);

/** Buckets per histogram: one per bound plus the +Inf bucket. */
export const LATENCY_BUCKETS = LATENCY_BOUNDS_S.length + 1;

/** Index of the bucket counting a latency of `ms` (the last one is +Inf). Allocation free. */
export function latencyBucket(ms: number): number {
  const b = LATENCY_BOUNDS_MS;
  let i = 0;
  while (i < b.length && ms > b[i]!) i++;
  return i;
}
