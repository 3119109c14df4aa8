/** What a result was measured on: code, tools and machine, for the JSON result. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { clockTicksPerSecond } from '../analysis/proc-stat.ts';
import { qemuVersion } from '../measure/qemu-bench.ts';
import { REPO, run } from './processes.ts';
import { tgtdVersion } from './tgtd.ts';

export interface Environment {
  readonly git: { readonly commit: string; readonly dirty: boolean; readonly branch: string };
  readonly node: string;
  readonly tgtd: string;
  readonly qemuImg: string;
  readonly host: {
    readonly hostname: string;
    readonly cores: number;
    readonly model: string;
    readonly kernel: string;
    readonly memoryGiB: number;
    /** 1, 5, 15-minute load averages when the run started: a busy machine shows here. */
    readonly loadAverageAtStart: readonly number[];
  };
  readonly clockTicksPerSecond: number;
  /** SPINDLE_* variables of this environment, which spindle (started from it) reads, e.g. SPINDLE_POLL_US. */
  readonly spindleEnv: Readonly<Record<string, string>>;
}

async function git(args: string[]): Promise<string> {
  const r = await run('git', ['-C', REPO, ...args]);
  return r.code === 0 ? r.stdout.trim() : '';
}

/** "model name" of the first CPU in /proc/cpuinfo (os.cpus() may abbreviate it). */
export function cpuModel(cpuinfo: string): string {
  const m = /^model name\s*:\s*(.+)$/m.exec(cpuinfo);
  return m?.[1]?.trim() ?? 'unknown';
}

export async function collectEnvironment(): Promise<Environment> {
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {}
  return {
    git: {
      commit: (await git(['rev-parse', 'HEAD'])) || 'unknown',
      // Uncommitted changes to tracked files: the numbers are not those of `commit`.
      dirty: (await git(['status', '--porcelain', '--untracked-files=no'])).length > 0,
      branch: await git(['rev-parse', '--abbrev-ref', 'HEAD']),
    },
    node: process.version,
    tgtd: await tgtdVersion(),
    qemuImg: await qemuVersion(),
    host: {
      hostname: os.hostname(),
      cores: os.availableParallelism(),
      model: cpuModel(cpuinfo),
      kernel: os.release(),
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      loadAverageAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
    },
    clockTicksPerSecond: clockTicksPerSecond(),
    spindleEnv: Object.fromEntries(
      Object.entries(process.env).filter(
        (e): e is [string, string] => e[0].startsWith('SPINDLE_') && e[1] !== undefined,
      ),
    ),
  };
}
