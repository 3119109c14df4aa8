/**
 * `npm run bench`: spindle side by side with tgtd (the STGT userspace target) on free
 * loopback ports, with numbers a reviewer can trust:
 *   - IOPS from QEMU's iSCSI initiator (`qemu-img bench`), in N rounds with the two
 *     targets alternating within each round, reported as median, min-max of the rounds
 *     and the spindle/tgtd ratio with the range of the per-round ratios;
 *   - the CPU time each target process spends per I/O (utime + stime of all its threads);
 *   - per-command latency (p50, p99, mean) from bench/latency-probe.ts, one lean client
 *     for both targets;
 *   - a verdict per workload (AHEAD / BEHIND / EVEN), printed last and kept in the JSON
 *     result in bench/results/, with the commit, tools, machine and every setting.
 *
 *   npm run bench                        # ram backing, 6 workloads, 5 rounds (~8 min)
 *   npm run bench -- --quick             # smoke: 1 round, 1 s runs
 *   npm run bench -- --backing all       # ram, null and file
 *   npm run bench -- --scaling           # sessions, LUs and worker counts
 *   npm run bench -- --cluster           # two-node cluster vs embedded
 *   npm run bench:check                  # newest result against bench/baseline.json
 *
 * Modes live in bench/modes/, targets and processes in bench/harness/, measurements in
 * bench/measure/, statistics and verdicts in bench/analysis/ (pure, unit-tested).
 * Everything started is torn down at the end, on failure and on Ctrl-C.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Ratio } from './analysis/ratio.ts';
import { collectEnvironment } from './harness/environment.ts';
import {
  installSignalHandlers,
  isAborted,
  onCleanup,
  onPath,
  REPO,
  runCleanups,
} from './harness/processes.ts';
import { runCluster } from './modes/cluster.ts';
import { BACKING_DESCRIPTION, compareBacking, compareTables, type BackingResult } from './modes/compare.ts';
import { runScaling } from './modes/scaling.ts';
import { parseOptions, USAGE, type BenchOptions } from './options.ts';
import { LOGIN_KEYS } from './probe/negotiation.ts';
import { writeResult, RESULT_SCHEMA, type BenchResult } from './report/result.ts';
import { WRITE_PATTERN } from './workloads.ts';
import { placementFor, usePlacement, type Placement } from './harness/placement.ts';

interface ModeOutput {
  readonly sections: Partial<Pick<BenchResult, 'compare' | 'scaling' | 'cluster'>>;
  readonly settings: Readonly<Record<string, unknown>>;
  readonly ratios: Record<string, Ratio>;
  readonly verdicts: string[];
  readonly errors: Record<string, string>;
  readonly redis?: string;
}

async function runCompare(o: BenchOptions, work: string): Promise<ModeOutput> {
  const compare: Record<string, BackingResult> = {};
  const ratios: Record<string, Ratio> = {};
  const verdicts: string[] = [];
  const errors: Record<string, string> = {};
  for (const b of o.backings) {
    try {
      const res = await compareBacking({
        work,
        backing: b,
        workloads: o.workloads,
        rounds: o.rounds,
        targetSeconds: o.targetSeconds,
        latencyCount: o.latencyCount,
        luBytes: o.luBytes,
      });
      compare[b] = res;
      for (const c of Object.values(res.workloads)) {
        ratios[`${b}/${c.workload}`] = c.ratios.iops;
        verdicts.push(c.verdictLine);
      }
    } catch (err) {
      if (isAborted()) break;
      errors[b] = err instanceof Error ? err.message : String(err);
      console.error(`bench: ${b} failed: ${errors[b]}`);
    }
  }
  for (const [b, res] of Object.entries(compare)) {
    console.log();
    console.log(
      `${b}: ${BACKING_DESCRIPTION[b as keyof typeof BACKING_DESCRIPTION]}; ${o.rounds} round(s), ~${o.targetSeconds} s per qemu-img run; median (min-max of rounds), ratio [range of per-round ratios]`,
    );
    console.log(compareTables(res.workloads));
  }
  return {
    sections: { compare },
    settings: { backings: o.backings, luBytes: o.luBytes },
    ratios,
    verdicts,
    errors,
  };
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    const parsed = parseOptions(process.argv.slice(2));
    if (parsed.help) {
      console.log(USAGE);
      return 0;
    }
    options = parsed.options;
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }

  const needed = ['qemu-img', 'iscsi-readcapacity16', 'tgtd', 'tgtadm', 'getconf', 'sync'];
  if (options.mode === 'cluster') needed.push('redis-server');
  if (options.pinClients) needed.push('taskset');
  const missing = needed.filter((c) => !onPath(c));
  if (missing.length > 0) {
    console.error(`bench: missing ${missing.join(', ')}; run: bash scripts/install-deps.sh`);
    return 1;
  }

  let placement: Placement | null = null;
  if (options.pinClients) {
    try {
      placement = placementFor(os.availableParallelism());
    } catch (err) {
      console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
      return 2;
    }
  }
  usePlacement(placement);

  installSignalHandlers();
  const started = Date.now();
  const environment = await collectEnvironment();
  console.error(
    `bench: ${options.mode} mode on ${environment.host.cores} cores (${environment.host.model}), load average ${environment.host.loadAverageAtStart.join(' ')}, commit ${environment.git.commit.slice(0, 12)}${environment.git.dirty ? ' (dirty)' : ''}`,
  );
  if (placement !== null) {
    console.error(`bench: --pin-clients: targets on CPU ${placement.target}, clients on CPU ${placement.clients}`);
  }
  const work = await mkdtemp(path.join(os.tmpdir(), 'spindle-bench-'));
  onCleanup(() => rm(work, { recursive: true, force: true }));

  let out: ModeOutput;
  try {
    out =
      options.mode === 'scaling'
        ? await runScaling(options, work)
        : options.mode === 'cluster'
          ? await runCluster(options, work)
          : await runCompare(options, work);
  } catch (err) {
    if (!isAborted())
      console.error(`bench: ${options.mode} failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await runCleanups();
  }

  const result: BenchResult = {
    schema: RESULT_SCHEMA,
    mode: options.mode,
    date: new Date(started).toISOString(),
    durationSec: Math.round((Date.now() - started) / 100) / 10,
    environment: {
      ...environment,
      loadAverageAtEnd: os.loadavg().map((v) => Math.round(v * 100) / 100),
      ...(out.redis === undefined ? {} : { redis: out.redis }),
    },
    settings: {
      mode: options.mode,
      quick: options.quick,
      rounds: options.rounds,
      targetSeconds: options.targetSeconds,
      workloads: options.workloads,
      iops: {
        client: 'qemu-img bench (QEMU iscsi driver, libiscsi)',
        cacheMode: 'none (no FUA, no initiator cache)',
        writePattern: WRITE_PATTERN,
        countSizing:
          'probe runs grow until one lasts >= 0.3 s; the measured run gets rate x seconds requests, fixed for all rounds',
        order: 'targets alternate within each round; who goes first alternates per round and workload',
      },
      placement:
        placement === null
          ? 'none: targets and clients share every CPU'
          : { targetCpus: placement.target, clientCpus: placement.clients, how: 'taskset -c at spawn (threads inherit)' },
      cpu: 'utime+stime of the target process (/proc/<pid>/stat fields 14+15, all threads) right before and after each measured run, over its requests',
      latency: {
        client:
          'bench/latency-probe.ts (own process, lean initiator, READ(10)/WRITE(10), same addressing as qemu-img bench)',
        commandsPerRun: options.latencyCount,
        warmup: 'min(2000, count/10) commands before timing',
        loginKeys: Object.fromEntries(LOGIN_KEYS),
        timing: 'process.hrtime.bigint() from handing the PDU to the socket to parsing its status',
      },
      ...out.settings,
    },
    ...out.sections,
    ratios: out.ratios,
    verdicts: out.verdicts,
    errors: out.errors,
  };
  const file = await writeResult(REPO, result);

  if (out.verdicts.length > 0) {
    console.log(
      options.mode === 'scaling'
        ? '\nsummary:'
        : '\nverdicts (IOPS ratio of medians; AHEAD/BEHIND only when every round agrees and the gap is over 3%):',
    );
    for (const v of out.verdicts) console.log(`  ${v}`);
  }
  for (const [what, e] of Object.entries(out.errors)) console.log(`\n${what} failed: ${e}`);
  const load = result.environment.loadAverageAtEnd;
  console.log(
    `\nload average ${environment.host.loadAverageAtStart[0]} at start, ${load[0]} at end on ${environment.host.cores} cores; took ${result.durationSec} s`,
  );
  console.log(`results: ${path.relative(REPO, file)}`);
  return Object.keys(out.errors).length > 0 ? 1 : 0;
}

process.exitCode = await main();
