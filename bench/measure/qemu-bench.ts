/**
 * IOPS through QEMU's iSCSI initiator (libiscsi): `qemu-img bench` runs, one process per
 * session, with the target's CPU time sampled around each measured run.
 *
 * Cache mode `none`: no host page cache on the initiator side (the iscsi driver has none
 * anyway) and no FUA on writes, identically for both targets. IOPS = requests / elapsed
 * seconds as qemu-img reports them (the I/O phase only: login and teardown are outside).
 */
import { execFileSync } from 'node:child_process';
import { clockTicksPerSecond, readCpuTicks } from '../analysis/proc-stat.ts';
import { mustRun, run } from '../harness/processes.ts';
import { asClient } from '../harness/placement.ts';
import type { RunningTarget } from '../harness/target.ts';
import { MiB, WRITE_PATTERN, type Workload } from '../workloads.ts';

export interface QemuRun {
  readonly count: number;
  readonly seconds: number;
  readonly iops: number;
}

export async function qemuBench(url: string, w: Workload, count: number): Promise<QemuRun> {
  const args = ['bench', '-f', 'raw', '-t', 'none', '-c', String(count), '-d', String(w.depth)];
  args.push('-s', String(w.size), '-S', String(w.step));
  if (w.write) args.push('-w', `--pattern=${WRITE_PATTERN}`);
  args.push(url);
  const r = await run(...asClient('qemu-img', args), 600_000);
  const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout);
  if (r.code !== 0 || m === null) {
    throw new Error(`qemu-img ${args.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`);
  }
  const seconds = Math.max(Number(m[1]), 0.001); // qemu-img prints millisecond resolution
  return { count, seconds, iops: count / seconds };
}

/**
 * Several sessions at once: one qemu-img process (so one iSCSI session) per URL, all
 * started together, each running the same request count.
 */
export interface SessionsRun {
  readonly sessions: readonly QemuRun[];
  /** Requests over all sessions. */
  readonly count: number;
  /** The slowest session's elapsed seconds: the window in which all requests were done. */
  readonly seconds: number;
  /**
   * Aggregate IOPS: all requests over the slowest session's time. Sessions a target
   * serves unfairly finish at different times; summing each session's own rate would then
   * add rates that never ran at the same time (a session done early never competed with
   * the rest), so it overstates. This can only understate, by the tail in which the
   * slowest sessions run alone, and equals the sum when sessions are served fairly.
   */
  readonly iops: number;
  /** Sum of each session's own IOPS, for comparison (see `iops`). */
  readonly iopsSum: number;
}

export async function qemuBenchSessions(
  urls: readonly string[],
  w: Workload,
  countPerSession: number,
): Promise<SessionsRun> {
  const sessions = await Promise.all(urls.map((u) => qemuBench(u, w, countPerSession)));
  const count = sessions.reduce((a, s) => a + s.count, 0);
  const seconds = Math.max(...sessions.map((s) => s.seconds));
  return {
    sessions,
    count,
    seconds,
    iops: count / seconds,
    iopsSum: sessions.reduce((a, s) => a + s.iops, 0),
  };
}

const MAX_COUNT = 5_000_000;
const PROBE_MIN_SECONDS = 0.3;

/**
 * The per-session request count for a run of about `targetSeconds`. Probe runs grow until
 * one lasts long enough (0.3 s) for its rate to mean something (a tiny run is dominated by
 * ramp-up); then a warm-up run of about a second, sized from the probe, gives the rate
 * the count is taken from: the first runs meet a cold target (JIT, caches) whose rate
 * would under-size every measured run.
 */
export async function sizeCount(
  urls: readonly string[],
  w: Workload,
  targetSeconds: number,
): Promise<number> {
  let probeCount = Math.max(200, w.depth * 50);
  let probe = await qemuBenchSessions(urls, w, probeCount);
  while (probe.seconds < PROBE_MIN_SECONDS && probeCount < MAX_COUNT) {
    probeCount = Math.min(
      MAX_COUNT,
      probeCount * Math.max(2, Math.ceil((PROBE_MIN_SECONDS * 1.3) / probe.seconds)),
    );
    probe = await qemuBenchSessions(urls, w, probeCount);
  }
  const perSession = (r: SessionsRun, seconds: number): number =>
    Math.round(Math.min(MAX_COUNT, Math.max(probeCount, (r.iops / urls.length) * seconds)));
  const warm = await qemuBenchSessions(urls, w, perSession(probe, Math.min(1, targetSeconds / 2)));
  return perSession(warm, targetSeconds);
}

/** One measured run with the target's CPU time around it. */
export interface MeasuredRun extends SessionsRun {
  /** utime + stime of the target process over the run, seconds. */
  readonly cpuSeconds: number;
  /** Target CPU per request, microseconds. */
  readonly cpuUsPerIo: number;
  /** cpuSeconds / seconds: cores the target kept busy. */
  readonly cpuCores: number;
}

/**
 * Flushes the target's backing files (so no run pays for the previous run's writeback),
 * samples the target's CPU ticks right before the qemu-img processes start and right
 * after the last one exits, and charges them to the requests of the run.
 */
export async function measuredRun(
  target: RunningTarget,
  urls: readonly string[],
  w: Workload,
  countPerSession: number,
): Promise<MeasuredRun> {
  if (target.syncFiles.length > 0) execFileSync('sync', [...target.syncFiles]);
  const before = readCpuTicks(target.pid);
  const r = await qemuBenchSessions(urls, w, countPerSession);
  const after = readCpuTicks(target.pid);
  const cpuSeconds = (after - before) / clockTicksPerSecond();
  return { ...r, cpuSeconds, cpuUsPerIo: (cpuSeconds * 1e6) / r.count, cpuCores: cpuSeconds / r.seconds };
}

/**
 * Writes the whole LU once (1 MiB sequential writes, QD8), so reads never hit areas the
 * target has never written: a RAM or sparse-file LU may answer those from a shortcut
 * (no page, a hole) that differs between targets and from real data.
 */
export async function prefill(url: string, bytes: number): Promise<void> {
  const size = MiB;
  const args = ['bench', '-f', 'raw', '-t', 'none', '-w', `--pattern=${WRITE_PATTERN}`];
  args.push('-c', String(Math.ceil(bytes / size)), '-d', '8', '-s', String(size), '-S', String(size), url);
  await mustRun(...asClient('qemu-img', args), 600_000);
}

/** `qemu-img --version`, first line. */
export async function qemuVersion(): Promise<string> {
  try {
    return (await mustRun('qemu-img', ['--version'])).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}
