/** Console formatting: numbers, spreads and aligned tables. */
import type { Summary } from '../analysis/stats.ts';

export function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** 41234 -> "41.2k", 1456 -> "1,456", 12.34 -> "12.3" (for spreads, where width matters). */
export function compact(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e7 ? 1 : 2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  if (a >= 100) return fmt(n);
  return n.toFixed(1);
}

/** "41,234 (40.1k-42.0k)": median and the min-max of the rounds; just the median for one round. */
export function withSpread(s: Summary | undefined, digits = 0): string {
  if (s === undefined || s.n === 0) return '-';
  const m = fmt(s.median, digits);
  return s.n > 1 ? `${m} (${compact(s.min)}-${compact(s.max)})` : m;
}

export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}
