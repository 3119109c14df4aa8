/**
 * Order statistics for the benchmark: the median and spread of a handful of rounds, and
 * latency percentiles of many thousands of samples. Pure functions, no I/O.
 *
 * One definition of a quantile serves both: linear interpolation between the two nearest
 * order statistics (Hyndman & Fan type 7, what R, NumPy and spreadsheets use by default),
 * so a median of an even count is the mean of the middle two and p99 of 20,000 samples
 * lies between the 19,800th and 19,801st.
 */

/** Median and spread of a set of measurements (one per round). */
export interface Summary {
  readonly n: number;
  readonly min: number;
  /** First quartile. */
  readonly q1: number;
  readonly median: number;
  /** Third quartile. */
  readonly q3: number;
  readonly max: number;
}

/**
 * The q-quantile (0 <= q <= 1) of values already sorted ascending, by linear
 * interpolation between neighbouring order statistics. NaN for an empty input.
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} outside 0..1`);
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  const a = sorted[lo]!;
  return a + (h - lo) * (sorted[hi]! - a);
}

/** Sorted ascending copy; numeric order (not the default string order of Array#sort). */
export function sortedCopy(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

export function median(values: readonly number[]): number {
  return quantileSorted(sortedCopy(values), 0.5);
}

export function mean(values: ArrayLike<number>, count = values.length): number {
  if (count === 0) return Number.NaN;
  let sum = 0;
  for (let i = 0; i < count; i++) sum += values[i]!;
  return sum / count;
}

/** Median, quartiles and extremes. Non-finite values (a failed round) are left out. */
export function summarize(values: readonly number[]): Summary {
  const s = sortedCopy(values.filter((v) => Number.isFinite(v)));
  return {
    n: s.length,
    min: s.length > 0 ? s[0]! : Number.NaN,
    q1: quantileSorted(s, 0.25),
    median: quantileSorted(s, 0.5),
    q3: quantileSorted(s, 0.75),
    max: s.length > 0 ? s[s.length - 1]! : Number.NaN,
  };
}

/** (max - min) / median: the relative width of the spread, 0 for a single round. */
export function relativeSpread(s: Summary): number {
  return s.n === 0 || s.median === 0 ? Number.NaN : (s.max - s.min) / s.median;
}

/** Latency of a set of commands, in microseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly meanUs: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly minUs: number;
  readonly maxUs: number;
}

/**
 * Percentiles of the first `count` samples (nanoseconds), sorted IN PLACE: the probe
 * records into one preallocated array and summarizes it once at the end, so no copy.
 */
export function latencySummary(samplesNs: Float64Array, count = samplesNs.length): LatencySummary {
  const s = samplesNs.subarray(0, count).sort(); // typed arrays sort numerically
  const us = (ns: number): number => ns / 1000;
  return {
    count,
    meanUs: us(mean(s)),
    p50Us: us(quantileSorted(s, 0.5)),
    p99Us: us(quantileSorted(s, 0.99)),
    minUs: count > 0 ? us(s[0]!) : Number.NaN,
    maxUs: count > 0 ? us(s[count - 1]!) : Number.NaN,
  };
}

/**
 * Ratios a/b of measurements paired by round: round r of spindle against round r of
 * tgtd, run back to back, so slow drift of the machine cancels out of each ratio. Pairs
 * with a missing or non-finite side are skipped.
 */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const r = a[i]! / b[i]!;
    if (Number.isFinite(r)) out.push(r);
  }
  return out;
}
