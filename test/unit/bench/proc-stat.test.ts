/** CPU time of a process from /proc/<pid>/stat. */
import { describe, expect, it } from 'vitest';
import { clockTicksPerSecond, parseProcStat, readCpuTicks } from '../../../bench/analysis/proc-stat.ts';

// A real line's layout (proc(5)): pid (comm) state ppid pgrp session tty tpgid flags minflt
// cminflt majflt cmajflt utime stime cutime cstime ...
const line = (comm: string, utime: number, stime: number): string =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 1000 0 0 0 ${utime} ${stime} 77 88 20 0 17 0 123 456 789\n`;

describe('parseProcStat', () => {
  it('reads utime (field 14) and stime (field 15), not the children (16, 17)', () => {
    expect(parseProcStat(line('tgtd', 1234, 567))).toEqual({ utime: 1234, stime: 567 });
  });

  it('counts fields from the last parenthesis: a command name may hold spaces and ")"', () => {
    expect(parseProcStat(line('a b) S 9 9 (x', 10, 20))).toEqual({ utime: 10, stime: 20 });
  });

  it('refuses text that is not a stat line', () => {
    expect(() => parseProcStat('hello')).toThrow(/not a \/proc/);
    expect(() => parseProcStat('1 (x) S 1 2')).toThrow(/no utime/);
  });
});

describe('readCpuTicks on this process', () => {
  it('grows by about the CPU time burnt, in CLK_TCK units', () => {
    const hz = clockTicksPerSecond();
    expect(hz).toBeGreaterThan(0);
    const before = readCpuTicks(process.pid);
    const cpu0 = process.cpuUsage();
    const end = Date.now() + 300;
    let x = 0;
    while (Date.now() < end) x += Math.sqrt(x + 1); // ~0.3 s of CPU
    const used = process.cpuUsage(cpu0);
    const after = readCpuTicks(process.pid);
    const seconds = (after - before) / hz;
    const expected = (used.user + used.system) / 1e6;
    expect(x).toBeGreaterThan(0);
    // Tick granularity (1/hz) plus other threads of this process (GC, vitest's own).
    expect(seconds).toBeGreaterThanOrEqual(expected - 2 / hz);
    expect(seconds).toBeLessThan(expected + 0.5);
  });
});
