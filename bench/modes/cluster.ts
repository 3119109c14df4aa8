/**
 * `--cluster`: what being a cluster node costs. spindle as node a of a two-node cluster
 * (a real redis-server started here; nodes a and b as separate `spindle serve --node`
 * processes on 127.0.0.1 and 127.0.0.2, sharing one file) against an embedded single node
 * on the same file, with the same device settings (direct I/O, which a cluster requires,
 * and writeback):
 *   - 4k random write and read at QD32 in paired rounds: READ and WRITE never wait on
 *     Redis, so the goal is a ratio no more than 5% below 1;
 *   - PERSISTENT RESERVE OUT latency (REGISTER, then REGISTER to a new key, repeatedly)
 *     from the latency probe: on a cluster node each is a compare-and-set in Redis (with
 *     its fsync) and waits for node b to adopt the new state; embedded, it is local.
 *
 * The shared file is on /dev/shm when that tmpfs accepts O_DIRECT (Linux 6.6 and later),
 * so the comparison measures spindle's path rather than this machine's disk; otherwise on
 * a disk file system. Which one is in the result.
 */
import { constants, openSync, closeSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { fmtChange, goalOf, ratioOf, type Ratio } from '../analysis/ratio.ts';
import { summarize } from '../analysis/stats.ts';
import { createBackingFile, diskDir, fsType, shmDir } from '../harness/backing.ts';
import { freePort, REPO } from '../harness/processes.ts';
import { startRedis } from '../harness/redis.ts';
import { launchSpindle } from '../harness/spindle.ts';
import type { RunningTarget } from '../harness/target.ts';
import { runProbe } from '../measure/latency.ts';
import type { BenchOptions } from '../options.ts';
import { ProbeOp } from '../probe/iscsi-client.ts';
import { compact, fmt, table } from '../report/format.ts';
import type { LatencySample } from '../report/result.ts';
import { RANDOM_READ_QD32, RANDOM_WRITE_QD32 } from '../workloads.ts';
import { compareTables, prefillAll } from './compare.ts';
import { firstIsA, pairedRounds } from './paired-rounds.ts';

export const CLUSTER_IQN = 'iqn.2026-11.io.spindle:bench-cluster';
/** The cluster-overhead goal for READ/WRITE IOPS: within this of the embedded node. */
export const CLUSTER_GOAL = 0.05;

/** Whether O_DIRECT opens work in `dir` (tmpfs supports it from Linux 6.6). */
export function directIoWorks(dir: string): boolean {
  const probe = path.join(dir, `spindle-bench-odirect-${process.pid}`);
  try {
    closeSync(openSync(probe, constants.O_RDWR | constants.O_CREAT | constants.O_DIRECT));
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { force: true });
  }
}

export function goalLine(workload: string, r: Ratio): string {
  const spread = r.rounds > 1 ? ` (rounds ${fmtChange(r.low)} to ${fmtChange(r.high)})` : '';
  return `cluster goal, IOPS within ${CLUSTER_GOAL * 100}% of embedded: ${workload} ${fmtChange(r.value)}${spread} — ${goalOf(r, CLUSTER_GOAL)}`;
}

export async function runCluster(o: BenchOptions, work: string) {
  const redis = await startRedis(work);
  const dir = directIoWorks(shmDir()) ? shmDir() : diskDir(REPO);
  const bytes = o.luBytes;
  const file = await createBackingFile(dir, 'cluster-shared', bytes);
  const hostA = '127.0.0.1';
  const hostB = '127.0.0.2';
  const portA = await freePort(hostA);
  const portB = await freePort(hostB);
  let portE = await freePort(hostA);
  while (portE === portA) portE = await freePort(hostA);

  // Same device on every node; a cluster makes file devices direct by default, the
  // embedded node is told so explicitly.
  const device = { name: 'shared', file: { path: file, size: bytes }, writeCache: 'writeback' };
  const clusterConfig = {
    clusterId: 'bench-cluster',
    stateDir: path.join(work, 'cluster-state-{node}'),
    logging: { level: 'warn' },
    cluster: {
      redis: { url: redis.url },
      nodes: [
        { id: 'a', portals: [`${hostA}:${portA}`] },
        { id: 'b', portals: [`${hostB}:${portB}`] },
      ],
    },
    devices: [device],
    targets: [
      { iqn: CLUSTER_IQN, portals: [`${hostA}:${portA}`, `${hostB}:${portB}`], luns: { 0: 'shared' } },
    ],
  };
  const embeddedConfig = {
    clusterId: 'bench-cluster',
    stateDir: path.join(work, 'embedded-state'),
    logging: { level: 'warn' },
    devices: [{ ...device, direct: true }],
    targets: [{ iqn: CLUSTER_IQN, portals: [`${hostA}:${portE}`], luns: { 0: 'shared' } }],
  };
  const clusterFile = path.join(work, 'cluster.yaml');
  const embeddedFile = path.join(work, 'embedded.yaml');
  await writeFile(clusterFile, YAML.stringify(clusterConfig));
  await writeFile(embeddedFile, YAML.stringify(embeddedConfig));

  console.error(
    `bench: cluster: redis on ${redis.port}, nodes a and b, and an embedded node, on ${file} (${fsType(dir)})`,
  );
  const common = { luns: [0], bytes, syncFiles: [] as string[], iqn: CLUSTER_IQN };
  const nodeA = await launchSpindle({
    ...common,
    name: 'node a',
    configFile: clusterFile,
    config: clusterConfig,
    args: ['--node', 'a'],
    logFile: path.join(work, 'node-a.log'),
    host: hostA,
    port: portA,
  });
  const nodeB = await launchSpindle({
    ...common,
    name: 'node b',
    configFile: clusterFile,
    config: clusterConfig,
    args: ['--node', 'b'],
    logFile: path.join(work, 'node-b.log'),
    host: hostB,
    port: portB,
  });
  const embedded = await launchSpindle({
    ...common,
    name: 'embedded',
    configFile: embeddedFile,
    config: embeddedConfig,
    args: [],
    logFile: path.join(work, 'embedded.log'),
    host: hostA,
    port: portE,
  });
  await prefillAll([embedded], bytes); // one file: filling it through one node fills it for all

  const workloads = o.workloads.filter((w) => w === RANDOM_WRITE_QD32 || w === RANDOM_READ_QD32);
  const comparisons = await pairedRounds({
    a: nodeA,
    b: embedded,
    workloads: workloads.length > 0 ? workloads : [RANDOM_WRITE_QD32, RANDOM_READ_QD32],
    rounds: o.rounds,
    targetSeconds: o.targetSeconds,
    latencyCount: o.latencyCount,
    label: 'cluster',
  });

  // PR OUT REGISTER latency, alternating between the two as well.
  const prCount = o.quick ? 300 : 2000;
  const pr = new Map<RunningTarget, LatencySample[]>([
    [nodeA, []],
    [embedded, []],
  ]);
  for (let r = 0; r < o.rounds; r++) {
    for (const t of firstIsA(r, 0) ? [nodeA, embedded] : [embedded, nodeA]) {
      const p = await runProbe(t, { op: ProbeOp.PR_REGISTER, size: 24, depth: 1, step: 0, count: prCount });
      pr.get(t)!.push({
        count: p.count,
        iops: p.iops,
        meanUs: p.meanUs,
        p50Us: p.p50Us,
        p99Us: p.p99Us,
        maxUs: p.maxUs,
      });
      console.error(
        `bench: round ${r + 1}/${o.rounds} cluster PR OUT REGISTER ${t.name.padEnd(8)} p50 ${compact(p.p50Us)} µs  p99 ${compact(p.p99Us)} µs  (${fmt(p.iops)}/s)`,
      );
    }
  }
  const prStats = (t: RunningTarget) => {
    const s = pr.get(t)!;
    return {
      target: t.name,
      commandsPerRun: prCount,
      rounds: s,
      p50Us: summarize(s.map((x) => x.p50Us)),
      p99Us: summarize(s.map((x) => x.p99Us)),
      meanUs: summarize(s.map((x) => x.meanUs)),
    };
  };
  const prA = prStats(nodeA);
  const prE = prStats(embedded);
  const prRatio = {
    p50: ratioOf(
      prA.rounds.map((x) => x.p50Us),
      prE.rounds.map((x) => x.p50Us),
    ),
    p99: ratioOf(
      prA.rounds.map((x) => x.p99Us),
      prE.rounds.map((x) => x.p99Us),
    ),
  };

  console.log();
  console.log(
    `cluster: node a of a two-node cluster (Redis ${/v=(\S+)/.exec(redis.version)?.[1] ?? redis.version}, appendfsync always) vs an embedded node, same file (${fsType(dir)}, direct I/O, writeback); ${o.rounds} round(s)`,
  );
  console.log(compareTables(comparisons));
  console.log();
  console.log(
    table([
      ['PR OUT REGISTER (µs, probe, QD1)', 'p50', 'p99', 'mean'],
      [nodeA.name, compact(prA.p50Us.median), compact(prA.p99Us.median), compact(prA.meanUs.median)],
      [embedded.name, compact(prE.p50Us.median), compact(prE.p99Us.median), compact(prE.meanUs.median)],
      ['ratio', `${prRatio.p50.value.toFixed(2)}x`, `${prRatio.p99.value.toFixed(2)}x`, ''],
    ]),
  );

  const ratios: Record<string, Ratio> = {};
  const verdicts: string[] = [];
  for (const c of Object.values(comparisons)) {
    ratios[`cluster/${c.workload}`] = c.ratios.iops;
    verdicts.push(c.verdictLine, goalLine(c.workload, c.ratios.iops));
  }
  verdicts.push(
    `cluster PR OUT REGISTER: node a p50 ${fmt(prA.p50Us.median)} µs, p99 ${fmt(prA.p99Us.median)} µs; embedded p50 ${fmt(prE.p50Us.median)} µs, p99 ${fmt(prE.p99Us.median)} µs (p50 ${prRatio.p50.value.toFixed(2)}x, p99 ${prRatio.p99.value.toFixed(2)}x)`,
  );

  return {
    sections: {
      cluster: {
        sharedFile: { path: file, fs: fsType(dir), bytes },
        redis: { version: redis.version, args: redis.args },
        nodes: { a: nodeA.setup, b: nodeB.setup, embedded: embedded.setup },
        workloads: comparisons,
        prOutRegister: { nodeA: prA, embedded: prE, ratios: prRatio },
        goal: `READ/WRITE IOPS of a cluster node within ${CLUSTER_GOAL * 100}% of the embedded node`,
      },
    },
    settings: { cluster: { prCommandsPerRun: prCount, luBytes: bytes } },
    ratios,
    verdicts,
    errors: {} as Record<string, string>,
    redis: redis.version,
  };
}
