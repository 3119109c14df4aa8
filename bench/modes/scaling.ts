/**
 * `--scaling`: how IOPS grows with concurrent sessions (1, 4, 16 qemu-img processes, each
 * its own iSCSI session; aggregate IOPS as in SessionsRun.iops), with LUs (1 and 8; sessions spread round-robin over
 * them) and with spindle's worker threads (`workers.session` and `workers.lun`, 1 and 2
 * each), for 4k random read and write at QD32 per session, tgtd alongside.
 *
 * All targets of one LU count run at once (idle while another is measured) and every cell
 * (workload x sessions) of a round visits them in a rotating order, so drift hits all of
 * them alike, as in the default mode.
 */
import os from 'node:os';
import { ratioOf, type Ratio } from '../analysis/ratio.ts';
import { summarize, type Summary } from '../analysis/stats.ts';
import { backingFilesFor, luBytes, needsPrefill, type Backing } from '../harness/backing.ts';
import { cleanupMark, isAborted, REPO, unwindTo } from '../harness/processes.ts';
import { startSpindle } from '../harness/spindle.ts';
import type { RunningTarget } from '../harness/target.ts';
import { startTgtd } from '../harness/tgtd.ts';
import { measuredRun, sizeCount } from '../measure/qemu-bench.ts';
import type { BenchOptions } from '../options.ts';
import { compact, fmt, table } from '../report/format.ts';
import { MiB, RANDOM_READ_QD32, RANDOM_WRITE_QD32, type Workload } from '../workloads.ts';
import { IQN, prefillAll } from './compare.ts';

export const SCALING_SESSIONS: readonly number[] = [1, 4, 16];
export const SCALING_LUS: readonly number[] = [1, 8];
export const SCALING_WORKERS: ReadonlyArray<{ readonly session: number; readonly lun: number }> = [
  { session: 1, lun: 1 },
  { session: 1, lun: 2 },
  { session: 2, lun: 1 },
  { session: 2, lun: 2 },
];
export const SCALING_WORKLOADS: readonly Workload[] = [RANDOM_READ_QD32, RANDOM_WRITE_QD32];
/** Small LUs: up to 5 targets x 8 LUs are held in RAM at once. */
export const SCALING_LU_BYTES = 64 * MiB;

/** Which URL each session uses: session i on LU i mod (number of LUs). */
export function sessionUrls(t: RunningTarget, sessions: number): string[] {
  return Array.from({ length: sessions }, (_, i) => t.lus[i % t.lus.length]!.url);
}

/** The order targets are visited in for cell `cell` of round `round`: a rotation. */
export function rotation<T>(items: readonly T[], round: number, cell: number): T[] {
  const k = (round + cell) % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** spindle's default worker count on this machine (schema: cores, at most 64). */
export function defaultWorkers(): number {
  return Math.min(os.availableParallelism(), 64);
}

export interface ScalingRound {
  readonly round: number;
  /** All requests over the slowest session's time (see SessionsRun.iops). */
  readonly iops: number;
  /** Sum of the sessions' own rates (overstates when sessions are served unfairly). */
  readonly iopsSum: number;
  readonly seconds: number;
  readonly cpuUsPerIo: number;
  readonly cpuCores: number;
  readonly sessionIops: readonly number[];
}

export interface ScalingCell {
  readonly workload: string;
  readonly lus: number;
  readonly sessions: number;
  readonly target: string;
  readonly countPerSession: number;
  readonly rounds: readonly ScalingRound[];
  readonly iops: Summary;
  readonly iopsSum: Summary;
  readonly cpuUsPerIo: Summary;
  /** Slowest session's IOPS over the fastest's, median over rounds: 1 is perfectly fair. */
  readonly fairness: number;
}

export async function runScaling(o: BenchOptions, work: string) {
  const backing: Backing = o.backings[0] ?? 'ram';
  const cores = defaultWorkers();
  const targetNames = new Map<string, string>(); // name -> role
  const cells: ScalingCell[] = [];
  const errors: Record<string, string> = {};
  const setups: Record<string, unknown> = {};

  for (const lus of SCALING_LUS) {
    const mark = cleanupMark();
    try {
      const bytes = luBytes(backing, SCALING_LU_BYTES);
      const files = (target: 'spindle' | 'tgtd', name: string): Promise<string[]> =>
        backingFilesFor(target, backing, `${name}-${lus}lu`, lus, bytes, REPO);
      const targets: RunningTarget[] = [];
      console.error(
        `bench: scaling, ${lus} LU(s) of ${backing}: starting tgtd and ${SCALING_WORKERS.length} spindles`,
      );
      targets.push(
        await startTgtd({
          work,
          name: 'tgtd',
          iqn: IQN,
          backing,
          bytes: SCALING_LU_BYTES,
          count: lus,
          files: await files('tgtd', 'tgtd'),
        }),
      );
      const grid = [...SCALING_WORKERS];
      if (!grid.some((w) => w.session === cores && w.lun === cores))
        grid.push({ session: cores, lun: cores });
      for (const w of grid) {
        const name = `spindle s${w.session}/l${w.lun}`;
        targetNames.set(name, w.session === cores && w.lun === cores ? 'default' : 'grid');
        targets.push(
          await startSpindle({
            work,
            name,
            iqn: IQN,
            workers: w,
            lus: {
              backing,
              bytes: SCALING_LU_BYTES,
              count: lus,
              files: await files('spindle', `s${w.session}l${w.lun}`),
            },
          }),
        );
      }
      for (const t of targets) setups[`${t.name} (${lus} LU)`] = t.setup;
      if (needsPrefill(backing)) await prefillAll(targets, bytes);

      const grid2 = SCALING_WORKLOADS.flatMap((w) => SCALING_SESSIONS.map((s) => ({ w, sessions: s })));
      const counts = new Map<string, number>();
      const key = (t: RunningTarget, w: Workload, s: number): string => `${t.name}\0${w.name}\0${s}`;
      for (const { w, sessions } of grid2) {
        for (const t of targets)
          counts.set(key(t, w, sessions), await sizeCount(sessionUrls(t, sessions), w, o.targetSeconds));
      }
      const samples = new Map<string, ScalingRound[]>();
      for (let r = 0; r < o.rounds; r++) {
        for (const [ci, { w, sessions }] of grid2.entries()) {
          for (const t of rotation(targets, r, ci)) {
            const run = await measuredRun(t, sessionUrls(t, sessions), w, counts.get(key(t, w, sessions))!);
            const list = samples.get(key(t, w, sessions)) ?? [];
            list.push({
              round: r + 1,
              iops: run.iops,
              iopsSum: run.iopsSum,
              seconds: run.seconds,
              cpuUsPerIo: run.cpuUsPerIo,
              cpuCores: run.cpuCores,
              sessionIops: run.sessions.map((s) => s.iops),
            });
            samples.set(key(t, w, sessions), list);
            console.error(
              `bench: round ${r + 1}/${o.rounds} ${lus} LU ${w.name} x${String(sessions).padEnd(2)} ${t.name.padEnd(16)} ${fmt(run.iops).padStart(8)} IOPS  ${run.cpuUsPerIo.toFixed(1).padStart(6)} µs CPU/IO`,
            );
          }
        }
      }
      for (const { w, sessions } of grid2) {
        for (const t of targets) {
          const rounds = samples.get(key(t, w, sessions)) ?? [];
          const fair = rounds.map((x) => Math.min(...x.sessionIops) / Math.max(...x.sessionIops));
          cells.push({
            workload: w.name,
            lus,
            sessions,
            target: t.name,
            countPerSession: counts.get(key(t, w, sessions))!,
            rounds,
            iops: summarize(rounds.map((x) => x.iops)),
            iopsSum: summarize(rounds.map((x) => x.iopsSum)),
            cpuUsPerIo: summarize(rounds.map((x) => x.cpuUsPerIo)),
            fairness: summarize(fair).median,
          });
        }
      }
    } catch (err) {
      if (isAborted()) break;
      errors[`scaling ${lus} LU`] = err instanceof Error ? err.message : String(err);
      console.error(`bench: scaling with ${lus} LU(s) failed: ${errors[`scaling ${lus} LU`]}`);
    } finally {
      await unwindTo(mark);
    }
  }

  const defaultName = [...targetNames].find(([, role]) => role === 'default')?.[0];
  const ratios: Record<string, Ratio> = {};
  const verdicts: string[] = [];
  const find = (w: string, lus: number, s: number, t: string): ScalingCell | undefined =>
    cells.find((c) => c.workload === w && c.lus === lus && c.sessions === s && c.target === t);
  for (const w of SCALING_WORKLOADS) {
    for (const lus of SCALING_LUS) {
      for (const s of SCALING_SESSIONS) {
        const a = defaultName === undefined ? undefined : find(w.name, lus, s, defaultName);
        const b = find(w.name, lus, s, 'tgtd');
        if (a === undefined || b === undefined) continue;
        ratios[`scaling/${w.name}/${lus} LU/${s} sessions`] = ratioOf(
          a.rounds.map((x) => x.iops),
          b.rounds.map((x) => x.iops),
        );
      }
    }
  }
  for (const w of SCALING_WORKLOADS) {
    console.log();
    console.log(
      `${w.name} per session, ${backing}, LUs of ${fmt(SCALING_LU_BYTES / MiB)} MiB: aggregate IOPS (all sessions' requests / slowest session's time), median of ${o.rounds} round(s); "sN/lM" = workers.session N, workers.lun M; fairness = slowest/fastest session`,
    );
    const names = [...new Set(cells.filter((c) => c.workload === w.name).map((c) => c.target))];
    const cols = SCALING_LUS.flatMap((l) => SCALING_SESSIONS.map((s) => ({ l, s })));
    const rows = names.map((n) => [
      n + (targetNames.get(n) === 'default' ? ' (default)' : ''),
      ...cols.map(({ l, s }) => compact(find(w.name, l, s, n)?.iops.median ?? Number.NaN)),
    ]);
    if (defaultName !== undefined) {
      rows.push([
        `${defaultName}/tgtd`,
        ...cols.map(({ l, s }) => {
          const r = ratios[`scaling/${w.name}/${l} LU/${s} sessions`];
          return r === undefined ? '-' : `${r.value.toFixed(2)}x`;
        }),
      ]);
      rows.push([
        `CPU µs/IO ${defaultName}`,
        ...cols.map(({ l, s }) => fmt(find(w.name, l, s, defaultName)?.cpuUsPerIo.median, 1)),
      ]);
      rows.push([
        'CPU µs/IO tgtd',
        ...cols.map(({ l, s }) => fmt(find(w.name, l, s, 'tgtd')?.cpuUsPerIo.median, 1)),
      ]);
      rows.push([
        `fairness ${defaultName}`,
        ...cols.map(({ l, s }) => fmt(find(w.name, l, s, defaultName)?.fairness, 2)),
      ]);
      rows.push(['fairness tgtd', ...cols.map(({ l, s }) => fmt(find(w.name, l, s, 'tgtd')?.fairness, 2))]);
    }
    console.log(table([['target', ...cols.map(({ l, s }) => `${l} LU x${s}`)], ...rows]));
    if (defaultName !== undefined) {
      for (const lus of SCALING_LUS) {
        const r = ratios[`scaling/${w.name}/${lus} LU/16 sessions`];
        const one = find(w.name, lus, 1, defaultName)?.iops.median;
        const sixteen = find(w.name, lus, 16, defaultName)?.iops.median;
        const t1 = find(w.name, lus, 1, 'tgtd')?.iops.median;
        const t16 = find(w.name, lus, 16, 'tgtd')?.iops.median;
        if (
          r === undefined ||
          one === undefined ||
          sixteen === undefined ||
          t1 === undefined ||
          t16 === undefined
        )
          continue;
        verdicts.push(
          `scaling ${w.name}, ${lus} LU: 1 -> 16 sessions spindle x${(sixteen / one).toFixed(2)}, tgtd x${(t16 / t1).toFixed(2)}; at 16 sessions spindle ${r.value.toFixed(2)}x tgtd`,
        );
      }
    }
  }

  return {
    sections: {
      scaling: {
        backing,
        luBytes: luBytes(backing, SCALING_LU_BYTES),
        sessions: SCALING_SESSIONS,
        lus: SCALING_LUS,
        workers: SCALING_WORKERS,
        defaultWorkers: cores,
        defaultTarget: defaultName,
        cells,
        setups,
      },
    },
    settings: {
      scaling: {
        backing,
        workloads: SCALING_WORKLOADS.map((w) => w.name),
        sessionsSpread: 'session i uses LU i mod LUs; each session is its own qemu-img process',
        iops: "all sessions' requests / the slowest session's run time (iopsSum, the sum of each session's own rate, is in each cell too)",
      },
    },
    ratios,
    verdicts,
    errors,
  };
}
