/** Order statistics of the bench: quantiles (type 7), summaries, latency percentiles, paired ratios. */
import { describe, expect, it } from 'vitest';
import {
  latencySummary,
  mean,
  median,
  pairedRatios,
  quantileSorted,
  relativeSpread,
  summarize,
} from '../../../bench/analysis/stats.ts';

describe('quantileSorted', () => {
  it('interpolates linearly between neighbouring order statistics', () => {
    const s = [10, 20, 30, 40];
    expect(quantileSorted(s, 0)).toBe(10);
    expect(quantileSorted(s, 1)).toBe(40);
    expect(quantileSorted(s, 0.5)).toBe(25);
    expect(quantileSorted(s, 0.25)).toBeCloseTo(17.5, 12); // h = 0.75
    expect(quantileSorted(s, 0.75)).toBeCloseTo(32.5, 12);
  });

  it('gives p99 of 1..100 as 99.01 (between the 99th and 100th values)', () => {
    const s = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantileSorted(s, 0.99)).toBeCloseTo(99.01, 10);
  });

  it('is NaN for no values and rejects q outside 0..1', () => {
    expect(quantileSorted([], 0.5)).toBeNaN();
    expect(() => quantileSorted([1], 1.5)).toThrow(RangeError);
    expect(() => quantileSorted([1], Number.NaN)).toThrow(RangeError);
  });
});

describe('median and mean', () => {
  it('median of odd and even counts, in numeric (not string) order', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([100, 9, 10, 1])).toBe(9.5); // string order would put 100 before 9
  });

  it('mean over a prefix', () => {
    expect(mean([1, 2, 3, 100], 3)).toBe(2);
    expect(mean([])).toBeNaN();
  });
});

describe('summarize', () => {
  it('reports min, quartiles, median and max, leaving out failed rounds', () => {
    const s = summarize([5, Number.NaN, 1, 4, 2, 3, Number.POSITIVE_INFINITY]);
    expect(s).toEqual({ n: 5, min: 1, q1: 2, median: 3, q3: 4, max: 5 });
    expect(relativeSpread(s)).toBeCloseTo(4 / 3, 12);
  });

  it('a single round has no spread', () => {
    const s = summarize([7]);
    expect(s).toMatchObject({ n: 1, min: 7, median: 7, max: 7 });
    expect(relativeSpread(s)).toBe(0);
  });

  it('no rounds: all NaN', () => {
    const s = summarize([]);
    expect(s.n).toBe(0);
    expect(s.median).toBeNaN();
    expect(relativeSpread(s)).toBeNaN();
  });
});

describe('latencySummary', () => {
  it('converts nanoseconds to microseconds over the first `count` samples, sorting in place', () => {
    const ns = new Float64Array([5000, 1000, 3000, 2000, 4000, 999_999_999]);
    const l = latencySummary(ns, 5);
    expect(l).toEqual({ count: 5, meanUs: 3, p50Us: 3, p99Us: 4.96, minUs: 1, maxUs: 5 });
    expect(Array.from(ns.subarray(0, 5))).toEqual([1000, 2000, 3000, 4000, 5000]);
    expect(ns[5]).toBe(999_999_999); // beyond count: untouched
  });

  it('p99 of 10,000 samples ignores the slowest 1% only', () => {
    const ns = new Float64Array(10_000).fill(100_000); // 100 µs
    for (let i = 0; i < 99; i++) ns[i * 100] = 50_000_000; // 99 outliers of 50 ms
    const l = latencySummary(ns);
    expect(l.p50Us).toBe(100);
    expect(l.p99Us).toBe(100);
    expect(l.maxUs).toBe(50_000);
  });
});

describe('pairedRatios', () => {
  it('divides round by round and skips rounds missing on either side', () => {
    expect(pairedRatios([10, 20, Number.NaN, 40], [5, 0, 10, 20, 99])).toEqual([2, 2]);
  });
});
