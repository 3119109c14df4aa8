/**
 * A two-node cluster on Redis Sentinel (cluster.redis.sentinels) carried through
 * failovers mid-run (issue 10, "Redis itself"): the master crashes (kill -9) and the
 * sentinels promote the replica; then a planned SENTINEL FAILOVER back. See
 * helpers/cluster-outage.ts for what each scenario asserts: I/O through both nodes goes
 * on without error (beyond retries), the reservation holds, PR OUT during the outage gets
 * 02/04/0A and changes nothing, PR OUT works again afterwards, and no node reports lost
 * data.
 *
 * A crashed master is noticed after down-after-milliseconds (1 s here) and replaced a
 * second or two later, so this file gives the lease more room than the others: nodes
 * fence themselves 6 s after their last renewal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer } from '../helpers/redis.ts';
import { startSentinel, type SentinelSetup } from '../helpers/sentinel.ts';
import { startCluster, type StartedCluster } from '../helpers/cluster.ts';
import { runThroughOutage } from '../helpers/cluster-outage.ts';
import { linesOf, until } from '../helpers/cluster-scsi.ts';

const LEASE = { ttlSec: 8, renewSec: 0.5, marginSec: 2 };

let s: SentinelSetup;
let c: StartedCluster;

beforeAll(async () => {
  s = await startSentinel();
  c = await startCluster({ nodes: 2, redis: s, lease: LEASE });
});

afterAll(async () => {
  await c?.close();
  await s?.close();
});

/**
 * The replica has everything the master acknowledged before each failover: it then loses
 * nothing, which is the premise of these scenarios (losing acknowledged writes is the
 * "Redis lost data" case, tested elsewhere).
 */
const replicated = (): Promise<void> => s.caughtUp();

describe('Sentinel failover mid-run', () => {
  it('the master is killed: I/O goes on, PR OUT in between gets 02/04/0A and changes nothing, all intact on the promoted replica', async () => {
    let killed: RedisServer | undefined;
    const r = await runThroughOutage(c, {
      name: 'kill',
      outage: async (whileDown) => {
        await replicated();
        const before = await s.master();
        const at = Date.now();
        const failover = s.failover({ mode: 'kill' });
        // The kill is immediate; PR OUT goes out while the sentinels still look for a master.
        await until('master killed', () => s.servers.some((x) => !x.running));
        await whileDown();
        const { from, to } = await failover;
        killed = from;
        expect({ host: from.host, port: from.port }).toEqual(before);
        expect(to).not.toBe(from);
        return Date.now() - at;
      },
    });
    console.log(`master killed: the sentinels named a new one after ${r.outageMs} ms`);
    // The old master comes back as a replica of the new one (ready for the next failover).
    await killed!.restart();
    await s.waitReplica(killed!);
  });

  it('a planned SENTINEL FAILOVER back: I/O goes on, all intact, PR OUT works after', async () => {
    const reconnects = [0, 1].map((i) => linesOf(c, i, 'redis connection re-established').length);
    await runThroughOutage(c, {
      name: 'switch',
      // No PR OUT during this one: the switch has no moment when Redis is certainly away
      // (until the sentinels demote it the old master still takes writes).
      outage: async () => {
        await replicated();
        const at = Date.now();
        await s.failover({ mode: 'command' });
        return Date.now() - at;
      },
    });
    for (const i of [0, 1])
      expect(linesOf(c, i, 'redis connection re-established').length).toBeGreaterThan(reconnects[i]!);
  });
});
