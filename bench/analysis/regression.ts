/**
 * The regression check of `npm run bench:check`: a result's spindle/tgtd ratios against a
 * committed baseline of ratios. Ratios, not IOPS: both targets run on the same machine in
 * the same minutes, so a faster or slower machine moves both and the ratio stays put far
 * better than either absolute number. Pure functions, no I/O.
 */
import type { Ratio } from './ratio.ts';

export const BASELINE_SCHEMA = 'spindle-bench-baseline/1';

export interface Baseline {
  readonly schema: typeof BASELINE_SCHEMA;
  /** Where the ratios come from (the result file, its commit and machine). */
  readonly source: {
    readonly file: string;
    readonly date: string;
    readonly commit: string;
    readonly dirty: boolean;
    readonly host: string;
  };
  /** Keyed "<backing>/<workload>" (and "cluster/...", "scaling/..." when those ran). */
  readonly ratios: Readonly<Record<string, Ratio>>;
}

export const CheckStatus = {
  OK: 'ok',
  /** Dropped by more than the threshold and the whole spread lies below the baseline's. */
  REGRESSED: 'regressed',
  /** Dropped by more than the threshold, but the spreads overlap: noise cannot be ruled out. */
  NOISY_DROP: 'noisy drop',
  IMPROVED: 'improved',
} as const;
export type CheckStatus = (typeof CheckStatus)[keyof typeof CheckStatus];

export interface RatioCheck {
  readonly key: string;
  readonly baseline: Ratio;
  readonly current: Ratio;
  /** current / baseline - 1: -0.12 is a 12% drop. */
  readonly change: number;
  readonly status: CheckStatus;
}

export interface CheckReport {
  readonly checks: readonly RatioCheck[];
  /** In the baseline, not measured in this result (another backing or mode). */
  readonly notMeasured: readonly string[];
  readonly regressed: readonly RatioCheck[];
}

export const DEFAULT_THRESHOLD = 0.1;

/**
 * Classifies one ratio. A regression needs both: a drop of the headline ratio by more
 * than `threshold`, AND the current spread (its best round) wholly below the baseline's
 * spread (its worst round), so a drop that the rounds' own scatter could explain is
 * reported as a noisy drop rather than failing the check. Improvements are symmetric.
 */
export function classify(baseline: Ratio, current: Ratio, threshold: number): CheckStatus {
  if (!Number.isFinite(baseline.value) || !Number.isFinite(current.value)) return CheckStatus.OK;
  if (current.value < baseline.value * (1 - threshold)) {
    return current.high < baseline.low ? CheckStatus.REGRESSED : CheckStatus.NOISY_DROP;
  }
  if (current.value > baseline.value * (1 + threshold) && current.low > baseline.high)
    return CheckStatus.IMPROVED;
  return CheckStatus.OK;
}

export function compareToBaseline(
  current: Readonly<Record<string, Ratio>>,
  baseline: Baseline,
  threshold = DEFAULT_THRESHOLD,
): CheckReport {
  if (!(threshold > 0 && threshold < 1)) throw new RangeError(`threshold ${threshold} outside (0, 1)`);
  const checks: RatioCheck[] = [];
  const notMeasured: string[] = [];
  for (const [key, base] of Object.entries(baseline.ratios)) {
    const cur = current[key];
    if (cur === undefined || !Number.isFinite(cur.value)) {
      notMeasured.push(key);
      continue;
    }
    checks.push({
      key,
      baseline: base,
      current: cur,
      change: cur.value / base.value - 1,
      status: classify(base, cur, threshold),
    });
  }
  return { checks, notMeasured, regressed: checks.filter((c) => c.status === CheckStatus.REGRESSED) };
}

/** The baseline holding a result's ratios (only the finite ones). */
export function baselineFrom(ratios: Readonly<Record<string, Ratio>>, source: Baseline['source']): Baseline {
  const kept: Record<string, Ratio> = {};
  for (const [k, r] of Object.entries(ratios)) if (Number.isFinite(r.value)) kept[k] = r;
  return { schema: BASELINE_SCHEMA, source, ratios: kept };
}

/** Checks the shape of a parsed baseline file, naming what is wrong. */
export function parseBaseline(doc: unknown): Baseline {
  const d = doc as Partial<Baseline> | null;
  if (d === null || typeof d !== 'object' || d.schema !== BASELINE_SCHEMA) {
    throw new Error(`not a ${BASELINE_SCHEMA} file`);
  }
  if (typeof d.ratios !== 'object' || d.ratios === null) throw new Error('baseline has no ratios');
  for (const [k, r] of Object.entries(d.ratios)) {
    if (typeof r?.value !== 'number' || typeof r.low !== 'number' || typeof r.high !== 'number') {
      throw new Error(`baseline ratio ${JSON.stringify(k)} needs numeric value, low and high`);
    }
  }
  return d as Baseline;
}

/** One line per check, e.g. "REGRESSED  ram/4k random read QD1: 1.10x -> 0.92x (-16%)". */
export function formatCheck(c: RatioCheck): string {
  const pct = `${c.change >= 0 ? '+' : ''}${(c.change * 100).toFixed(0)}%`;
  const span = (r: Ratio): string =>
    r.rounds > 1
      ? `${r.value.toFixed(2)}x [${r.low.toFixed(2)}-${r.high.toFixed(2)}]`
      : `${r.value.toFixed(2)}x`;
  return `${c.status.toUpperCase().padEnd(10)} ${c.key}: ${span(c.baseline)} -> ${span(c.current)} (${pct})`;
}
