/** bench:check's comparison of a result's ratios to the committed baseline. */
import { describe, expect, it } from 'vitest';
import {
  BASELINE_SCHEMA,
  CheckStatus,
  baselineFrom,
  classify,
  compareToBaseline,
  formatCheck,
  parseBaseline,
} from '../../../bench/analysis/regression.ts';
import type { Ratio } from '../../../bench/analysis/ratio.ts';

const ratio = (value: number, low = value, high = value, rounds = low === high ? 1 : 5): Ratio => ({
  value,
  low,
  high,
  rounds,
});
const SOURCE = {
  file: 'bench/results/x.json',
  date: '2026-12-04',
  commit: 'abc',
  dirty: false,
  host: '2 cores',
};

describe('classify', () => {
  const base = ratio(1.0, 0.97, 1.03);

  it('a drop beyond the threshold with the spreads apart is a regression', () => {
    expect(classify(base, ratio(0.85, 0.82, 0.9), 0.1)).toBe(CheckStatus.REGRESSED);
  });

  it('the same drop with overlapping spreads is only noisy', () => {
    expect(classify(base, ratio(0.85, 0.7, 0.99), 0.1)).toBe(CheckStatus.NOISY_DROP);
  });

  it('a drop within the threshold is fine, however tight the spread', () => {
    expect(classify(base, ratio(0.92, 0.91, 0.93), 0.1)).toBe(CheckStatus.OK);
  });

  it('the threshold is relative to the baseline ratio', () => {
    const high = ratio(2.0, 1.95, 2.05);
    expect(classify(high, ratio(1.85, 1.84, 1.86), 0.1)).toBe(CheckStatus.OK); // -7.5%
    expect(classify(high, ratio(1.75, 1.74, 1.76), 0.1)).toBe(CheckStatus.REGRESSED); // -12.5%
  });

  it('improvements are reported symmetrically', () => {
    expect(classify(base, ratio(1.2, 1.15, 1.25), 0.1)).toBe(CheckStatus.IMPROVED);
    expect(classify(base, ratio(1.2, 1.0, 1.25), 0.1)).toBe(CheckStatus.OK);
  });

  it('single-round results compare their values directly', () => {
    expect(classify(ratio(1.0), ratio(0.89), 0.1)).toBe(CheckStatus.REGRESSED);
  });
});

describe('compareToBaseline', () => {
  const baseline = baselineFrom(
    {
      'ram/4k random read QD1': ratio(1.1, 1.05, 1.15),
      'ram/4k random write QD1': ratio(0.9, 0.88, 0.92),
      'null/4k random read QD1': ratio(1.3, 1.2, 1.4),
    },
    SOURCE,
  );

  it('names the regressed ratios and lists what the result did not measure', () => {
    const report = compareToBaseline(
      {
        'ram/4k random read QD1': ratio(0.8, 0.75, 0.85),
        'ram/4k random write QD1': ratio(0.91, 0.89, 0.93),
        'file/4k random read QD1': ratio(1, 1, 1), // not in the baseline: ignored
      },
      baseline,
    );
    expect(report.regressed.map((c) => c.key)).toEqual(['ram/4k random read QD1']);
    expect(report.notMeasured).toEqual(['null/4k random read QD1']);
    expect(report.checks).toHaveLength(2);
    expect(report.checks[0]!.change).toBeCloseTo(0.8 / 1.1 - 1, 12);
  });

  it('a looser threshold lets the same drop pass', () => {
    const report = compareToBaseline({ 'ram/4k random read QD1': ratio(0.8, 0.75, 0.85) }, baseline, 0.5);
    expect(report.regressed).toEqual([]);
  });

  it('rejects thresholds outside (0, 1)', () => {
    expect(() => compareToBaseline({}, baseline, 0)).toThrow(RangeError);
    expect(() => compareToBaseline({}, baseline, 10)).toThrow(RangeError);
  });

  it('formats one line per check', () => {
    const [c] = compareToBaseline({ 'ram/4k random read QD1': ratio(0.8, 0.75, 0.85) }, baseline).checks;
    expect(formatCheck(c!)).toBe(
      'REGRESSED  ram/4k random read QD1: 1.10x [1.05-1.15] -> 0.80x [0.75-0.85] (-27%)',
    );
  });
});

describe('baseline files', () => {
  it('baselineFrom keeps only finite ratios', () => {
    const b = baselineFrom({ a: ratio(1), b: ratio(Number.NaN) }, SOURCE);
    expect(Object.keys(b.ratios)).toEqual(['a']);
    expect(b.schema).toBe(BASELINE_SCHEMA);
  });

  it('parseBaseline round-trips and names what is wrong', () => {
    const b = baselineFrom({ a: ratio(1.2, 1.1, 1.3) }, SOURCE);
    expect(parseBaseline(JSON.parse(JSON.stringify(b)))).toEqual(b);
    expect(() => parseBaseline({ schema: 'other' })).toThrow(/not a spindle-bench-baseline/);
    expect(() => parseBaseline({ schema: BASELINE_SCHEMA })).toThrow(/no ratios/);
    expect(() => parseBaseline({ schema: BASELINE_SCHEMA, ratios: { a: { value: 1 } } })).toThrow(
      /"a" needs numeric/,
    );
  });
});
