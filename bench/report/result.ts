/**
 * The JSON result (bench/results/<time>.json): everything needed to judge and reproduce a
 * run. Its `ratios` map is what `npm run bench:check` compares to the baseline.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Ratio } from '../analysis/ratio.ts';
import type { Summary } from '../analysis/stats.ts';
import type { Environment } from '../harness/environment.ts';

export const RESULT_SCHEMA = 'spindle-bench-result/2';

/** One measured run of one target in one round. */
export interface RoundSample {
  readonly round: number;
  /** Requests per second (summed over sessions when there are several). */
  readonly iops: number;
  readonly mbps: number;
  readonly seconds: number;
  readonly count: number;
  /** Target CPU (utime + stime of its process) over the run. */
  readonly cpuSeconds: number;
  readonly cpuUsPerIo: number;
  readonly cpuCores: number;
  /** The latency probe's run in the same round, when the workload has one. */
  readonly latency?: LatencySample;
}

export interface LatencySample {
  readonly count: number;
  readonly iops: number;
  readonly meanUs: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

/** One target's numbers for one workload over all rounds. */
export interface SideStats {
  readonly target: string;
  /** Requests per measured run (per session), sized in the first round. */
  readonly countPerRun: number;
  readonly rounds: readonly RoundSample[];
  readonly iops: Summary;
  readonly mbps: Summary;
  readonly cpuUsPerIo: Summary;
  readonly cpuCores: Summary;
  readonly latency?: {
    readonly meanUs: Summary;
    readonly p50Us: Summary;
    readonly p99Us: Summary;
    readonly iops: Summary;
  };
}

export interface Comparison {
  readonly workload: string;
  readonly a: SideStats;
  readonly b: SideStats;
  readonly ratios: {
    readonly iops: Ratio;
    readonly cpuPerIo: Ratio;
    readonly p50?: Ratio;
    readonly p99?: Ratio;
    readonly mean?: Ratio;
  };
  readonly verdict: string;
  readonly verdictLine: string;
}

export interface BenchResult {
  readonly schema: typeof RESULT_SCHEMA;
  readonly mode: 'compare' | 'scaling' | 'cluster';
  readonly date: string;
  readonly durationSec: number;
  readonly environment: Environment & {
    readonly loadAverageAtEnd: readonly number[];
    readonly redis?: string;
  };
  readonly settings: Readonly<Record<string, unknown>>;
  /** Per mode: compare[backing][workload], scaling cells, cluster comparisons. */
  readonly compare?: Readonly<
    Record<string, { readonly setup: unknown; readonly workloads: Readonly<Record<string, Comparison>> }>
  >;
  readonly scaling?: unknown;
  readonly cluster?: unknown;
  /** "<backing>/<workload>" (and "cluster/...", "scaling/...") -> spindle/tgtd ratio. */
  readonly ratios: Readonly<Record<string, Ratio>>;
  readonly verdicts: readonly string[];
  readonly errors: Readonly<Record<string, string>>;
}

export function resultsDir(repo: string): string {
  return path.join(repo, 'bench', 'results');
}

export async function writeResult(repo: string, result: BenchResult): Promise<string> {
  const dir = resultsDir(repo);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${result.date.replace(/[:.]/g, '-')}-${result.mode}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

/** The newest result file (names sort by time), or undefined. */
export async function newestResult(repo: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(resultsDir(repo));
  } catch {
    return undefined;
  }
  const json = names.filter((n) => n.endsWith('.json')).sort();
  const last = json[json.length - 1];
  return last === undefined ? undefined : path.join(resultsDir(repo), last);
}
