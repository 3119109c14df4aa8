/**
 * CPU time of a whole process from /proc/<pid>/stat (proc(5)): utime (field 14) plus
 * stime (field 15), in clock ticks. For a multi-threaded process these count every
 * thread of the thread group, live or exited, so spindle's worker threads and tgtd's
 * backing-store threads are all included.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface CpuTicks {
  readonly utime: number;
  readonly stime: number;
}

/**
 * Parses the text of /proc/<pid>/stat. Field 2, the command name, is in parentheses and
 * may itself hold spaces and parentheses, so fields are counted from the LAST ')':
 * after it come field 3 (state), 4, ..., so field k is at index k - 3.
 */
export function parseProcStat(text: string): CpuTicks {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: ${JSON.stringify(text.slice(0, 80))}`);
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isSafeInteger(utime) || !Number.isSafeInteger(stime)) {
    throw new Error(`no utime/stime in /proc/<pid>/stat: ${JSON.stringify(text.slice(0, 200))}`);
  }
  return { utime, stime };
}

/** utime + stime of process `pid`, in clock ticks (synchronous: sampled right at a boundary). */
export function readCpuTicks(pid: number): number {
  const t = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return t.utime + t.stime;
}

let ticksPerSecond: number | undefined;

/** `getconf CLK_TCK`: the unit of utime and stime (100 on Linux, but asked, not assumed). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    const v = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    if (!(Number.isInteger(v) && v > 0)) throw new Error(`getconf CLK_TCK gave ${v}`);
    ticksPerSecond = v;
  }
  return ticksPerSecond;
}
