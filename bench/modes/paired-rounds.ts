/**
 * Two targets measured side by side in rounds: in every round, each workload runs on
 * both, back to back, the order alternating from one (round, workload) to the next so
 * neither target always goes first. Drift of the machine (another engineer's tests,
 * thermal, page cache) then hits both sides of each pair alike, and the pair's ratio
 * stays meaningful even when the absolute numbers move between rounds.
 *
 * Each target's request count per workload is sized once (probe runs, which also warm it
 * up) and kept for every round, so the rounds are the same experiment repeated.
 */
import { ratioOf, verdictLine, verdictOf } from '../analysis/ratio.ts';
import { summarize } from '../analysis/stats.ts';
import type { RunningTarget } from '../harness/target.ts';
import { probeRequestFor, runProbe } from '../measure/latency.ts';
import { measuredRun, sizeCount } from '../measure/qemu-bench.ts';
import { compact, fmt } from '../report/format.ts';
import type { Comparison, RoundSample, SideStats } from '../report/result.ts';
import { hasLatencyProbe, type Workload } from '../workloads.ts';

export interface PairedOptions {
  /** The target under test (numerator of every ratio) and the reference. */
  readonly a: RunningTarget;
  readonly b: RunningTarget;
  readonly workloads: readonly Workload[];
  readonly rounds: number;
  readonly targetSeconds: number;
  /** Commands per latency-probe run; 0: no latency probe. */
  readonly latencyCount: number;
  /** Prefix of verdict lines and progress output, e.g. "ram". */
  readonly label: string;
}

/** Which target runs first for workload `wi` in round `r`: alternates in both. */
export function firstIsA(round: number, workloadIndex: number): boolean {
  return (round + workloadIndex) % 2 === 0;
}

export async function pairedRounds(o: PairedOptions): Promise<Record<string, Comparison>> {
  const sides = [o.a, o.b] as const;
  const counts = new Map<string, number>();
  const key = (t: RunningTarget, w: Workload): string => `${t.name}\0${w.name}`;
  for (const w of o.workloads) {
    for (const t of sides) {
      counts.set(key(t, w), await sizeCount([t.lus[0]!.url], w, o.targetSeconds));
    }
  }

  const samples = new Map<string, RoundSample[]>();
  for (let r = 0; r < o.rounds; r++) {
    for (const [wi, w] of o.workloads.entries()) {
      const order = firstIsA(r, wi) ? sides : ([o.b, o.a] as const);
      for (const t of order) {
        const run = await measuredRun(t, [t.lus[0]!.url], w, counts.get(key(t, w))!);
        const lat =
          o.latencyCount > 0 && hasLatencyProbe(w)
            ? await runProbe(t, probeRequestFor(w, o.latencyCount))
            : undefined;
        const sample: RoundSample = {
          round: r + 1,
          iops: run.iops,
          mbps: (run.iops * w.size) / 1e6,
          seconds: run.seconds,
          count: run.count,
          cpuSeconds: run.cpuSeconds,
          cpuUsPerIo: run.cpuUsPerIo,
          cpuCores: run.cpuCores,
          ...(lat === undefined
            ? {}
            : {
                latency: {
                  count: lat.count,
                  iops: lat.iops,
                  meanUs: lat.meanUs,
                  p50Us: lat.p50Us,
                  p99Us: lat.p99Us,
                  maxUs: lat.maxUs,
                },
              }),
        };
        const list = samples.get(key(t, w)) ?? [];
        list.push(sample);
        samples.set(key(t, w), list);
        const latText =
          lat === undefined ? '' : `  p50 ${compact(lat.p50Us)} µs  p99 ${compact(lat.p99Us)} µs`;
        console.error(
          `bench: round ${r + 1}/${o.rounds} ${o.label} ${w.name.padEnd(21)} ${t.name.padEnd(8)} ${fmt(run.iops).padStart(8)} IOPS  ${run.cpuUsPerIo.toFixed(1).padStart(6)} µs CPU/IO${latText}`,
        );
      }
    }
  }

  const out: Record<string, Comparison> = {};
  for (const w of o.workloads) {
    const a = sideStats(o.a.name, counts.get(key(o.a, w))!, samples.get(key(o.a, w)) ?? []);
    const b = sideStats(o.b.name, counts.get(key(o.b, w))!, samples.get(key(o.b, w)) ?? []);
    out[w.name] = compareSides(`${o.label} ${w.name}`, w.name, a, b);
  }
  return out;
}

export function sideStats(target: string, countPerRun: number, rounds: readonly RoundSample[]): SideStats {
  const lat = rounds.map((s) => s.latency).filter((l) => l !== undefined);
  return {
    target,
    countPerRun,
    rounds,
    iops: summarize(rounds.map((s) => s.iops)),
    mbps: summarize(rounds.map((s) => s.mbps)),
    cpuUsPerIo: summarize(rounds.map((s) => s.cpuUsPerIo)),
    cpuCores: summarize(rounds.map((s) => s.cpuCores)),
    ...(lat.length === 0
      ? {}
      : {
          latency: {
            meanUs: summarize(lat.map((l) => l.meanUs)),
            p50Us: summarize(lat.map((l) => l.p50Us)),
            p99Us: summarize(lat.map((l) => l.p99Us)),
            iops: summarize(lat.map((l) => l.iops)),
          },
        }),
  };
}

/** Ratios a/b per metric (rounds paired by index) and the verdict line. */
export function compareSides(label: string, workload: string, a: SideStats, b: SideStats): Comparison {
  const per = (f: (s: RoundSample) => number | undefined): [number[], number[]] => [
    a.rounds.map((s) => f(s) ?? Number.NaN),
    b.rounds.map((s) => f(s) ?? Number.NaN),
  ];
  const iops = ratioOf(...per((s) => s.iops));
  const cpuPerIo = ratioOf(...per((s) => s.cpuUsPerIo));
  const hasLatency = a.latency !== undefined && b.latency !== undefined;
  const p50 = hasLatency ? ratioOf(...per((s) => s.latency?.p50Us)) : undefined;
  const p99 = hasLatency ? ratioOf(...per((s) => s.latency?.p99Us)) : undefined;
  const mean = hasLatency ? ratioOf(...per((s) => s.latency?.meanUs)) : undefined;
  return {
    workload,
    a,
    b,
    ratios: { iops, cpuPerIo, ...(p50 && { p50 }), ...(p99 && { p99 }), ...(mean && { mean }) },
    verdict: verdictOf(iops),
    verdictLine: verdictLine({
      label,
      iops,
      cpuPerIo: cpuPerIo.value,
      p99: p99?.value,
      a: a.target,
      b: b.target,
    }),
  };
}
