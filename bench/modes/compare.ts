/**
 * The default mode: spindle against tgtd, one LU each, per backing, in paired rounds
 * (see paired-rounds.ts). Both targets run for the whole backing (idle while the other
 * is measured) so the rounds can alternate between them without restarts.
 */
import path from 'node:path';
import type { Ratio } from '../analysis/ratio.ts';
import { backingFilesFor, fsType, luBytes, needsPrefill, type Backing } from '../harness/backing.ts';
import { cleanupMark, REPO, unwindTo } from '../harness/processes.ts';
import { startSpindle } from '../harness/spindle.ts';
import type { RunningTarget } from '../harness/target.ts';
import { startTgtd } from '../harness/tgtd.ts';
import { prefill } from '../measure/qemu-bench.ts';
import { compact, fmt, table, withSpread } from '../report/format.ts';
import type { Comparison } from '../report/result.ts';
import type { Workload } from '../workloads.ts';
import { pairedRounds } from './paired-rounds.ts';

export const IQN = 'iqn.2026-11.io.spindle:bench';

export interface CompareOptions {
  readonly work: string;
  readonly backing: Backing;
  readonly workloads: readonly Workload[];
  readonly rounds: number;
  readonly targetSeconds: number;
  readonly latencyCount: number;
  /** Size of ram and file LUs (null LUs are always 1 TiB). */
  readonly luBytes: number;
}

export interface BackingResult {
  readonly setup: Readonly<Record<string, unknown>>;
  readonly workloads: Readonly<Record<string, Comparison>>;
}

export const BACKING_DESCRIPTION: Readonly<Record<Backing, string>> = {
  ram: 'spindle `ram` vs tgtd rdwr on a /dev/shm file',
  null: 'spindle `null` vs tgtd --bstype null: no medium, the protocol path alone',
  file: 'a file on a local disk file system: spindle `file` (page cache, writeback) vs tgtd rdwr (buffered, no O_SYNC)',
};

export async function compareBacking(o: CompareOptions): Promise<BackingResult> {
  const mark = cleanupMark();
  try {
    const bytes = luBytes(o.backing, o.luBytes);
    const spindleFiles = await backingFilesFor('spindle', o.backing, `spindle-${o.backing}`, 1, bytes, REPO);
    const tgtdFiles = await backingFilesFor('tgtd', o.backing, `tgtd-${o.backing}`, 1, bytes, REPO);
    console.error(`bench: ${o.backing}: starting spindle and tgtd (${BACKING_DESCRIPTION[o.backing]})`);
    const spindle = await startSpindle({
      work: o.work,
      name: 'spindle',
      iqn: IQN,
      lus: { backing: o.backing, bytes: o.luBytes, count: 1, files: spindleFiles },
    });
    const tgtd = await startTgtd({
      work: o.work,
      iqn: IQN,
      backing: o.backing,
      bytes: o.luBytes,
      count: 1,
      files: tgtdFiles,
    });
    if (needsPrefill(o.backing)) await prefillAll([spindle, tgtd], bytes);

    const workloads = await pairedRounds({
      a: spindle,
      b: tgtd,
      workloads: o.workloads,
      rounds: o.rounds,
      targetSeconds: o.targetSeconds,
      latencyCount: o.latencyCount,
      label: o.backing,
    });
    const fileInfo = (files: string[]): unknown[] =>
      files.map((f) => ({ path: f, fs: fsType(path.dirname(f)) }));
    return {
      setup: {
        description: BACKING_DESCRIPTION[o.backing],
        luBytes: bytes,
        prefilled: needsPrefill(o.backing),
        files: { spindle: fileInfo(spindleFiles), tgtd: fileInfo(tgtdFiles) },
        ...(o.backing === 'file'
          ? {
              writeCache:
                'both buffered with no sync per write: spindle file device direct: false, writeCache: writeback; ' +
                'tgtd rdwr without bsoflags (no O_SYNC/O_DIRECT) and WCE on; both flush on SYNCHRONIZE CACHE/FUA. ' +
                'Each file is flushed (sync FILE) before every measured run.',
            }
          : {}),
        spindle: spindle.setup,
        tgtd: tgtd.setup,
      },
      workloads,
    };
  } finally {
    await unwindTo(mark);
  }
}

/** Writes every LU of every target once in full (see prefill()). */
export async function prefillAll(targets: readonly RunningTarget[], bytes: number): Promise<void> {
  const t0 = Date.now();
  for (const t of targets) for (const lu of t.lus) await prefill(lu.url, bytes);
  const lus = targets.reduce((n, t) => n + t.lus.length, 0);
  console.error(
    `bench: prefilled ${lus} LU(s) of ${fmt(bytes / 2 ** 20)} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}

/** The two console tables of one backing: throughput and CPU, then latency. */
export function compareTables(workloads: Readonly<Record<string, Comparison>>): string {
  const list = Object.values(workloads);
  if (list.length === 0) return '(no results)';
  const a = list[0]!.a.target;
  const b = list[0]!.b.target;
  const r = (x: Ratio | undefined): string =>
    x === undefined || !Number.isFinite(x.value)
      ? '-'
      : x.rounds > 1
        ? `${x.value.toFixed(2)}x [${x.low.toFixed(2)}-${x.high.toFixed(2)}]`
        : `${x.value.toFixed(2)}x`;
  const throughput = table([
    ['workload', `${a} IOPS`, `${b} IOPS`, `${a}/${b}`, `CPU µs/IO ${a}`, b, `${a}/${b}`, `cores ${a}`, b],
    ...list.map((c) => [
      c.workload,
      withSpread(c.a.iops),
      withSpread(c.b.iops),
      r(c.ratios.iops),
      fmt(c.a.cpuUsPerIo.median, 1),
      fmt(c.b.cpuUsPerIo.median, 1),
      r(c.ratios.cpuPerIo),
      fmt(c.a.cpuCores.median, 2),
      fmt(c.b.cpuCores.median, 2),
    ]),
  ]);
  const withLatency = list.filter((c) => c.a.latency !== undefined && c.b.latency !== undefined);
  if (withLatency.length === 0) return throughput;
  const us = (s: { median: number } | undefined): string => (s === undefined ? '-' : compact(s.median));
  const latency = table([
    [
      'per-command latency (µs, probe)',
      `${a} p50`,
      'p99',
      'mean',
      `${b} p50`,
      'p99',
      'mean',
      `p50 ${a}/${b}`,
      `p99 ${a}/${b}`,
    ],
    ...withLatency.map((c) => [
      c.workload,
      us(c.a.latency?.p50Us),
      us(c.a.latency?.p99Us),
      us(c.a.latency?.meanUs),
      us(c.b.latency?.p50Us),
      us(c.b.latency?.p99Us),
      us(c.b.latency?.meanUs),
      r(c.ratios.p50),
      r(c.ratios.p99),
    ]),
  ]);
  return `${throughput}\n\n${latency}`;
}
