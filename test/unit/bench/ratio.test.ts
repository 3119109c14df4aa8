/** Ratios with spread, and the verdict drawn from them. */
import { describe, expect, it } from 'vitest';
import {
  EVEN_BAND,
  Goal,
  Verdict,
  fmtChange,
  goalOf,
  evenReason,
  ratioOf,
  singleRatio,
  verdictLine,
  verdictOf,
} from '../../../bench/analysis/ratio.ts';

describe('ratioOf', () => {
  it('is the ratio of medians, spread by the per-round pairs', () => {
    const r = ratioOf([110, 120, 130], [100, 100, 100]);
    expect(r.value).toBeCloseTo(1.2, 12);
    expect(r.low).toBeCloseTo(1.1, 12);
    expect(r.high).toBeCloseTo(1.3, 12);
    expect(r.rounds).toBe(3);
  });

  it('pairs by round: drift that moves both sides leaves the pairs tight', () => {
    // The machine gets slower round by round; spindle stays 1.5x tgtd in every round.
    const r = ratioOf([150, 120, 90], [100, 80, 60]);
    expect(r.value).toBeCloseTo(1.5, 12);
    expect(r.high - r.low).toBeLessThan(1e-12);
  });

  it('widens the spread to contain the headline value', () => {
    // Medians come from different rounds: 20/20 = 1, while the pairs are 0.5 and 3.
    const r = ratioOf([10, 20, 30], [20, 20, 10]);
    expect(r.value).toBe(1);
    expect(r.low).toBe(0.5);
    expect(r.high).toBe(3);
  });

  it('has no spread and zero rounds when nothing pairs up', () => {
    const r = ratioOf([Number.NaN], [1]);
    expect(r.rounds).toBe(0);
    expect(r.value).toBeNaN();
  });

  it('singleRatio is one round', () => {
    expect(singleRatio(3, 2)).toEqual({ value: 1.5, low: 1.5, high: 1.5, rounds: 1 });
  });
});

describe('verdictOf', () => {
  const r = (value: number, low: number, high: number, rounds = 5) => ({ value, low, high, rounds });

  it('AHEAD only when every round is ahead and the gap clears the even band', () => {
    expect(verdictOf(r(1.2, 1.1, 1.3))).toBe(Verdict.AHEAD);
    expect(verdictOf(r(1.2, 0.95, 1.3))).toBe(Verdict.EVEN); // one round behind
    expect(verdictOf(r(1 + EVEN_BAND / 2, 1.01, 1.02))).toBe(Verdict.EVEN); // too close to 1
  });

  it('BEHIND symmetrically', () => {
    expect(verdictOf(r(0.8, 0.7, 0.9))).toBe(Verdict.BEHIND);
    expect(verdictOf(r(0.8, 0.7, 1.01))).toBe(Verdict.EVEN);
  });

  it('inverts for ratios where lower is better (CPU per I/O, latency)', () => {
    expect(verdictOf(r(0.8, 0.7, 0.9), { lowerIsBetter: true })).toBe(Verdict.AHEAD);
    expect(verdictOf(r(1.2, 1.1, 1.3), { lowerIsBetter: true })).toBe(Verdict.BEHIND);
  });

  it('UNKNOWN without a number', () => {
    expect(verdictOf(r(Number.NaN, Number.NaN, Number.NaN, 0))).toBe(Verdict.UNKNOWN);
  });

  it('explains EVEN', () => {
    expect(evenReason(r(1.1, 0.9, 1.2))).toBe('within spread');
    expect(evenReason(r(1.01, 1.01, 1.01, 1))).toBe('within 3%');
  });
});

describe('verdictLine', () => {
  it('names the workload, the three ratios and the verdict', () => {
    const line = verdictLine({
      label: 'ram 4k random write QD1',
      iops: { value: 1.12, low: 1.05, high: 1.18, rounds: 5 },
      cpuPerIo: 0.85,
      p99: 0.9,
    });
    expect(line).toBe(
      'ram 4k random write QD1: spindle 1.12x tgtd (IOPS, rounds 1.05-1.18x), CPU/IO 0.85x, p99 0.90x — AHEAD',
    );
  });

  it('says why it is even, and when there was a single round', () => {
    const spread = verdictLine({ label: 'w', iops: { value: 1.1, low: 0.9, high: 1.2, rounds: 3 } });
    expect(spread).toMatch(/— EVEN \(within spread\)$/);
    const single = verdictLine({ label: 'w', iops: singleRatio(0.5, 1), a: 'node a', b: 'embedded' });
    expect(single).toBe('w: node a 0.50x embedded (IOPS, 1 round) — BEHIND');
  });
});

describe('goalOf (no worse than a tolerance below 1)', () => {
  const r = (value: number, low: number, high: number) => ({ value, low, high, rounds: 5 });

  it('MET only when no round is below the tolerance', () => {
    expect(goalOf(r(0.98, 0.96, 1.02), 0.05)).toBe(Goal.MET);
    expect(goalOf(r(0.98, 0.9, 1.02), 0.05)).toBe(Goal.UNSETTLED);
  });

  it('NOT MET when every round is below the bound', () => {
    expect(goalOf(r(0.9, 0.85, 0.94), 0.05)).toBe(Goal.NOT_MET);
    expect(goalOf(r(1.1, 1.06, 1.2), 0.05), 'faster than the reference is no failure').toBe(Goal.MET);
  });

  it('a single round just below the bound is NOT MET, though it rounds to the bound', () => {
    expect(goalOf(singleRatio(0.947, 1), 0.05)).toBe(Goal.NOT_MET);
    expect(fmtChange(0.947)).toBe('-5.3%');
    expect(fmtChange(1.08)).toBe('+8.0%');
  });
});
