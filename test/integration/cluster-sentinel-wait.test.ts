/**
 * Reservation changes wait for a Redis replica (cluster.redis.waitReplicas, default 1
 * with Sentinel): Redis replicates asynchronously, so without the wait a PR OUT could be
 * reported GOOD while its change exists only on the master, and a failover right after
 * would lose it (pr-store.ts #replicated).
 *
 * The replica is held up with DEBUG SLEEP: while it sleeps it confirms nothing, which is
 * what a lagging replica looks like to the master's WAIT. The nodes' Redis command
 * timeout is marginSec / 2 = 1 s, which is also how long a change waits for the replica.
 *
 * 1. A replica that wakes within the wait: the PR OUT completes only after it woke, and
 *    the master is killed at once after the GOOD; the promoted replica has the change
 *    (both nodes show it, neither reports lost state) and PR OUT works on.
 * 2. A replica that sleeps past the wait: the PR OUT completes after the wait, GOOD, with
 *    the warning in the log and the counter on the metrics page.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { respCommand, type RedisServer } from '../helpers/redis.ts';
import { startSentinel, type SentinelSetup } from '../helpers/sentinel.ts';
import { allocateNodes, startCluster, type StartedCluster } from '../helpers/cluster.ts';
import { freePort } from '../helpers/target.ts';
import {
  closeAll,
  good,
  linesOf,
  loginHost,
  prout,
  readKeys,
  registerKey,
  SA,
  settle,
  until,
  type Host,
} from '../helpers/cluster-scsi.ts';

const LEASE = { ttlSec: 8, renewSec: 0.5, marginSec: 2 };
/** The nodes' Redis command timeout (cluster-node.ts), which bounds the wait for replicas. */
const WAIT_MS = 1000;
const WARNING = 'not confirmed by enough Redis replicas';

let s: SentinelSetup;
let c: StartedCluster;
let a: Host | undefined;
let b: Host | undefined;
const apiPorts: number[] = [];

beforeAll(async () => {
  s = await startSentinel();
  const nodes = await allocateNodes(2);
  for (const n of nodes) apiPorts.push(await freePort(n.host));
  c = await startCluster({ nodes, redis: s, lease: LEASE, args: (i) => ['--api', `${nodes[i]!.host}:${apiPorts[i]}`] });
  a = await loginHost(c, 0, 'wait-a');
  b = await loginHost(c, 1, 'wait-b');
});

afterAll(async () => {
  closeAll(a, b);
  await c?.close();
  await s?.close();
});

async function replica(): Promise<RedisServer> {
  const master = await s.masterServer();
  return s.servers.find((x) => x !== master)!;
}

/** Each scenario starts from a replica in sync. */
const replicated = (): Promise<void> => s.caughtUp();

/**
 * Put the replica to sleep for `ms`. Resolves once it sleeps, with `woke`: the moment it
 * answers again. (An object, not the promise itself: an async function would wait for a
 * promise it returns.)
 */
async function sleepReplica(ms: number): Promise<{ woke: Promise<number> }> {
  const r = await replica();
  const woke = respCommand(r.endpoint(), ['DEBUG', 'SLEEP', String(ms / 1000)], ms + 10_000).then(() => performance.now());
  // The command is on its way; give the replica a moment to start sleeping.
  await new Promise((res) => setTimeout(res, 50));
  return { woke };
}

/** REGISTER AND IGNORE EXISTING KEY through `h`, timed. */
async function timedRegister(h: Host, key: bigint): Promise<{ ms: number; at: number }> {
  const t0 = performance.now();
  good(await prout(h, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: key }), `register ${key.toString(16)}`);
  const at = performance.now();
  return { ms: at - t0, at };
}

async function unreplicatedCounter(i: number): Promise<number> {
  const res = await fetch(`http://${c.nodes[i]!.host}:${apiPorts[i]}/metrics`);
  const m = /^spindle_cluster_pr_unreplicated_total (\d+)$/m.exec(await res.text());
  if (m === null) throw new Error('spindle_cluster_pr_unreplicated_total not exported');
  return Number(m[1]);
}

describe('a reservation change waits for a Redis replica (waitReplicas)', () => {
  it('a replica that sleeps past the wait: PR OUT completes after the wait, GOOD, with a warning and the counter', async () => {
    await replicated();
    const warned = linesOf(c, 0, WARNING).length;
    const counted = await unreplicatedCounter(0);
    const { woke } = await sleepReplica(5000);
    const r = await timedRegister(a!, 0x5a01n);
    console.log(`PR OUT with the replica asleep past the wait: ${Math.round(r.ms)} ms`);
    expect(r.ms, 'the change waited for the replica').toBeGreaterThan(WAIT_MS * 0.8);
    expect(r.ms, 'but not until the replica woke').toBeLessThan(4000);
    expect(linesOf(c, 0, WARNING).length, 'the warning').toBe(warned + 1);
    expect(await unreplicatedCounter(0)).toBe(counted + 1);
    await woke;
    // In force on the other node, as any reported change.
    expect((await readKeys(b!)).keys).toContain(0x5a01n);
  });

  it('a replica that wakes within the wait: PR OUT completes only after, and survives the master killed right after it', async () => {
    await replicated();
    const warned = linesOf(c, 0, WARNING).length;
    const { woke } = await sleepReplica(500);
    const r = await timedRegister(a!, 0x5a02n);
    const wokeAt = await woke;
    console.log(`PR OUT with the replica asleep for 500 ms: ${Math.round(r.ms)} ms`);
    expect(r.ms, 'the change waited for the replica').toBeGreaterThan(400);
    expect(r.at, 'reported after the replica woke').toBeGreaterThanOrEqual(wokeAt);
    expect(linesOf(c, 0, WARNING).length, 'confirmed in time: no warning').toBe(warned);

    // The master dies right after the GOOD: the replica the sentinels promote has it.
    const { from, to } = await s.failover({ mode: 'kill' });
    expect(to).not.toBe(from);
    for (const h of [a!, b!]) {
      await settle(h, 30_000);
      await until(`${h.name}: the change is still there after the failover`, async () =>
        (await readKeys(h)).keys.includes(0x5a02n),
      );
    }
    for (const i of [0, 1]) expect(linesOf(c, i, 'Redis has lost the cluster state'), `node ${i}: no lost state`).toEqual([]);
    // And PR OUT goes on through both nodes (retrying while the nodes resynchronize).
    await until('PR OUT through a after the failover', async () => {
      const x = await prout(a!, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: 0x5a03n });
      return x.status === 0;
    });
    await registerKey(b!, 0x5b03n, 'register through b after the failover');
    // One registration per I_T nexus: each REGISTER AND IGNORE EXISTING KEY replaced a's key.
    expect((await readKeys(a!)).keys.sort()).toEqual([0x5a03n, 0x5b03n]);
  });
});
