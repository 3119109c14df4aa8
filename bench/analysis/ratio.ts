/**
 * spindle/tgtd ratios with the spread the rounds give them, and the verdict drawn from
 * them. Pure functions, no I/O.
 */
import { median, pairedRatios } from './stats.ts';

/** A ratio a/b of two sets of per-round measurements. */
export interface Ratio {
  /** median(a) / median(b): the headline number. */
  readonly value: number;
  /** Lowest and highest ratio of one round's pair (a run of a and of b back to back). */
  readonly low: number;
  readonly high: number;
  /** Rounds with both sides measured. */
  readonly rounds: number;
}

/**
 * The ratio of medians, with the range of the paired per-round ratios as its spread. The
 * range is widened to include the headline value (the ratio of medians can fall outside
 * the per-round ratios when the two sides' medians come from different rounds).
 */
export function ratioOf(a: readonly number[], b: readonly number[]): Ratio {
  const fa = a.filter(Number.isFinite);
  const fb = b.filter(Number.isFinite);
  const value = fa.length > 0 && fb.length > 0 ? median(fa) / median(fb) : Number.NaN;
  const paired = pairedRatios(a, b);
  if (paired.length === 0) return { value, low: value, high: value, rounds: 0 };
  return {
    value,
    low: Math.min(value, ...paired),
    high: Math.max(value, ...paired),
    rounds: paired.length,
  };
}

/** A single pair of numbers as a ratio with no spread. */
export function singleRatio(a: number, b: number): Ratio {
  const value = a / b;
  return { value, low: value, high: value, rounds: Number.isFinite(value) ? 1 : 0 };
}

export const Verdict = {
  AHEAD: 'AHEAD',
  BEHIND: 'BEHIND',
  EVEN: 'EVEN',
  UNKNOWN: 'UNKNOWN',
} as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

/**
 * Ratios within this of 1 are EVEN even when every round agrees: back-to-back runs of
 * one target on this kind of machine differ by a few percent, so a single round (or
 * rounds that happen to agree) cannot tell 1.02 from 1.
 */
export const EVEN_BAND = 0.03;

/**
 * AHEAD when every round's pair has spindle ahead (the whole spread above 1) and the
 * ratio clears the even band; BEHIND symmetrically; EVEN otherwise. For a ratio where
 * lower is better (CPU per I/O, latency) pass `lowerIsBetter`.
 */
export function verdictOf(r: Ratio, opts: { lowerIsBetter?: boolean; band?: number } = {}): Verdict {
  if (!Number.isFinite(r.value)) return Verdict.UNKNOWN;
  const band = opts.band ?? EVEN_BAND;
  const better =
    opts.lowerIsBetter === true ? r.high < 1 && r.value <= 1 - band : r.low > 1 && r.value >= 1 + band;
  const worse =
    opts.lowerIsBetter === true ? r.low > 1 && r.value >= 1 + band : r.high < 1 && r.value <= 1 - band;
  if (better) return Verdict.AHEAD;
  if (worse) return Verdict.BEHIND;
  return Verdict.EVEN;
}

/** Why an EVEN verdict is even: the rounds disagree, or the difference is too small. */
export function evenReason(r: Ratio, band = EVEN_BAND): string {
  return r.low <= 1 && r.high >= 1 && r.rounds > 1 ? 'within spread' : `within ${Math.round(band * 100)}%`;
}

export function fmtRatio(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '-' : `${v.toFixed(2)}x`;
}

export interface VerdictInput {
  /** e.g. "ram 4k random write QD1". */
  readonly label: string;
  readonly iops: Ratio;
  /** spindle/tgtd CPU time per I/O (lower is better). */
  readonly cpuPerIo?: number | undefined;
  /** spindle/tgtd p99 latency (lower is better). */
  readonly p99?: number | undefined;
  /** Names of the two sides; default spindle and tgtd. */
  readonly a?: string;
  readonly b?: string;
}

/**
 * One line a reviewer reads: "ram 4k random write QD1: spindle 1.12x tgtd (IOPS, rounds
 * 1.05-1.18x), CPU/IO 0.85x, p99 0.90x — AHEAD". The verdict is the IOPS one; CPU and
 * latency ratios are shown beside it, not folded in.
 */
export function verdictLine(v: VerdictInput): string {
  const verdict = verdictOf(v.iops);
  const spread =
    v.iops.rounds > 1
      ? `, rounds ${v.iops.low.toFixed(2)}-${v.iops.high.toFixed(2)}x`
      : v.iops.rounds === 1
        ? ', 1 round'
        : '';
  const parts = [
    `${v.label}: ${v.a ?? 'spindle'} ${fmtRatio(v.iops.value)} ${v.b ?? 'tgtd'} (IOPS${spread})`,
  ];
  if (v.cpuPerIo !== undefined) parts.push(`CPU/IO ${fmtRatio(v.cpuPerIo)}`);
  if (v.p99 !== undefined) parts.push(`p99 ${fmtRatio(v.p99)}`);
  const tail = verdict === Verdict.EVEN ? `EVEN (${evenReason(v.iops)})` : verdict;
  return `${parts.join(', ')} — ${tail}`;
}

export const Goal = { MET: 'MET', NOT_MET: 'NOT MET', UNSETTLED: 'UNSETTLED' } as const;
export type Goal = (typeof Goal)[keyof typeof Goal];

/**
 * Whether a ratio is no worse than `tolerance` below 1 (e.g. a cluster node's IOPS within
 * 5% of an embedded node's; being faster is no failure): MET when every round is, NOT MET
 * when every round is below the bound, UNSETTLED when the rounds straddle it.
 */
export function goalOf(r: Ratio, tolerance: number): Goal {
  if (!Number.isFinite(r.value)) return Goal.UNSETTLED;
  const lo = 1 - tolerance;
  if (r.low >= lo) return Goal.MET;
  if (r.high < lo) return Goal.NOT_MET;
  return Goal.UNSETTLED;
}

/** A ratio as a signed percentage: 0.947 -> "-5.3%". */
export function fmtChange(v: number): string {
  if (!Number.isFinite(v)) return '-';
  const pct = (v - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%`;
}
