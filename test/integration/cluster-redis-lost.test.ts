/**
 * Redis coming back without its data (issue 10, "A Redis that comes back empty or older
 * (lost data) is detected ... and never taken as 'no reservations'"; DESIGN.md "Redis
 * data loss"): the cluster's epoch marker is gone, and every node must notice it, say so
 * in its log, refuse PR OUT (CHECK CONDITION 02/04/0A) and go on serving READ/WRITE with
 * the reservations it knows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startCluster, type StartedCluster } from '../helpers/cluster.ts';
import {
  closeAll,
  conflict,
  currentLinesOf,
  good,
  linesOf,
  loginHost,
  notReady,
  outcomeOf as outcome,
  pastAccessStateChanged,
  pastUnitAttentions,
  prout,
  readBlocks,
  readKeys,
  readReservation,
  SA,
  saveLogs,
  sleep,
  stamp,
  TYPE,
  until,
  writeBlocks,
  type Host,
  type Keys,
  type Reservation,
  registerKey,
} from '../helpers/cluster-scsi.ts';
import { ClusterKeys } from '../../src/supervisor/cluster/keys.ts';

const LEASE = { ttlSec: 3, renewSec: 0.3, marginSec: 0.9 };
const CLUSTER_ID = 'lost';
const LOST = 'Redis has lost the cluster state';

let redis: RedisServer;
let c: StartedCluster;

beforeAll(async () => {
  redis = await startRedis();
  c = await startCluster({ nodes: 2, redis, lease: LEASE, clusterId: CLUSTER_ID });
});

afterAll(async () => {
  saveLogs(c, 'lost');
  await c?.close();
  await redis?.close();
});

const KA = 0xa11n;
const KB = 0xb22n;

describe('Redis restarted empty', () => {
  let holder: Host | undefined;
  let registrant: Host | undefined;
  let outsider: Host | undefined;
  let keysBefore: Keys;
  let resBefore: Reservation;

  afterAll(() => closeAll(holder, registrant, outsider));

  it('is detected by every node: the log says so, PR OUT is refused, I/O goes on under the reservations it knows', async () => {
    holder = await loginHost(c, 0, 'lost-holder-a');
    registrant = await loginHost(c, 1, 'lost-registrant-b');
    outsider = await loginHost(c, 1, 'lost-outsider-b');
    await registerKey(holder, KA, 'holder registers through a');
    await registerKey(registrant, KB, 'registrant registers through b');
    good(await prout(holder, SA.RESERVE, TYPE.WE, { key: KA }), 'holder RESERVE WE through a');
    keysBefore = await readKeys(outsider);
    resBefore = await readReservation(outsider);
    expect(keysBefore.keys).toEqual([KA, KB]);
    expect(resBefore).toMatchObject({ key: KA, type: TYPE.WE });
    expect([0, 1].map((i) => linesOf(c, i, LOST).length)).toEqual([0, 0]);

    await redis.restart({ empty: true });
    // Empty of reservation state (the nodes may already have renewed their leases and
    // saved recovery snapshots into it; those are theirs, not the lost state).
    const prPrefix = `${new ClusterKeys(CLUSTER_ID).prefix}pr:*`;
    expect(await redis.command('KEYS', prPrefix), 'PR state right after the restart').toEqual([]);
    await until('both nodes noticed', () => [0, 1].every((i) => linesOf(c, i, LOST).length > 0), 20_000);
    for (const i of [0, 1])
      expect(
        linesOf(c, i, LOST)[0]!.level,
        `node ${c.nodes[i]!.id} logs it as an error`,
      ).toBeGreaterThanOrEqual(50);

    // PR OUT through either node is refused: a change, a new registration, the holder's
    // RELEASE and CLEAR alike.
    notReady(
      await pastAccessStateChanged(() => prout(registrant!, SA.PREEMPT, TYPE.WE, { key: KB, saKey: KA })),
      'PREEMPT through b',
    );
    notReady(
      await pastAccessStateChanged(() => prout(outsider!, SA.REGISTER, 0, { saKey: 0xc33n })),
      'REGISTER through b',
    );
    notReady(
      await pastAccessStateChanged(() => prout(holder!, SA.RELEASE, TYPE.WE, { key: KA })),
      'RELEASE through a',
    );
    notReady(await pastAccessStateChanged(() => prout(holder!, SA.CLEAR, 0, { key: KA })), 'CLEAR through a');

    // READ/WRITE honour the reservation Redis no longer has, through both nodes.
    const blk = stamp('HOLD', 1, 10, 1);
    good(await pastAccessStateChanged(() => writeBlocks(holder!, 10, blk)), 'holder writes through a');
    good(await readBlocks(holder!, 10, 1), 'holder reads through a');
    conflict(
      await pastAccessStateChanged(() => writeBlocks(outsider!, 10, stamp('OUTS', 1, 10, 1))),
      'unregistered host writes through b',
    );
    conflict(
      await pastAccessStateChanged(() => writeBlocks(registrant!, 10, stamp('REGB', 1, 10, 1))),
      'registrant (not holder, WE) writes through b',
    );
    const back = await readBlocks(outsider!, 10, 1);
    good(back, 'unregistered host reads through b');
    expect(back.data.equals(blk), 'the holder data is what is there').toBe(true);
    expect(await readKeys(outsider!), 'keys through b, as before').toEqual(keysBefore);
    expect(await readReservation(holder!), 'reservation through a, as before').toEqual(resBefore);
    // Both nodes still serve (the loss is no reason to fence).
    for (const i of [0, 1])
      expect(linesOf(c, i, 'lease not renewed in time'), `node ${c.nodes[i]!.id} kept its lease`).toEqual([]);
  });

  it('stays so (nothing takes the empty Redis for "no reservations" later on), and the nodes left what they know for recovery', async () => {
    // Well past a lease and many renewals and reconnect-free resyncs.
    await sleep(LEASE.ttlSec * 1000 * 2);
    notReady(
      await pastAccessStateChanged(() => prout(registrant!, SA.PREEMPT, TYPE.WE, { key: KB, saKey: KA })),
      'PREEMPT through b later',
    );
    notReady(
      await pastAccessStateChanged(() => prout(holder!, SA.RESERVE, TYPE.WE, { key: KA })),
      'RESERVE through a later',
    );
    conflict(
      await pastAccessStateChanged(() => writeBlocks(outsider!, 11, stamp('OUTS', 2, 11, 1))),
      'unregistered host writes through b later',
    );
    good(
      await pastAccessStateChanged(() => writeBlocks(holder!, 11, stamp('HOLD', 2, 11, 1))),
      'holder writes through a later',
    );
    expect(await readKeys(holder!)).toEqual(keysBefore);
    // No reservation state was written back into the empty Redis ...
    const keys = new ClusterKeys(CLUSTER_ID);
    const stored = (await redis.command('KEYS', `${keys.prefix}pr:*`)) as string[];
    expect(stored, 'PR state in Redis after the loss').toEqual([]);
    // ... but each node's recovery snapshot holds the reservation it knows.
    for (const n of c.nodes) {
      const snap = (await redis.command('GET', keys.recovery(n.id))) as string | null;
      expect(snap, `recovery snapshot of node ${n.id}`).not.toBeNull();
      const pr = (
        JSON.parse(snap!) as { pr: Record<string, { registrations: unknown[]; reservation: unknown }> }
      ).pr;
      const states = Object.values(pr);
      expect(states.length, `node ${n.id} snapshot: one LU`).toBe(1);
      expect(states[0]!.registrations.length).toBe(2);
      expect(states[0]!.reservation).not.toBeNull();
    }
  });

  // Regression: a node that starts while the epoch is lost remembers the epoch (stateDir)
  // but not the reservations. It adopts the other nodes' recovery snapshots (and stays
  // fenced for LUs nobody knows), rather than serving what Redis has, nothing: hosts
  // without access must not write through it while the holder's Write Exclusive
  // reservation stands on the other node.
  it('a node restarted meanwhile does not serve the LU as unreserved either', async () => {
    await c.restart(1);
    expect(
      currentLinesOf(c, 1, LOST).length,
      'the restarted node knows Redis lost the state (its stateDir keeps the epoch)',
    ).toBe(1);
    const outsider2 = await loginHost(c, 1, 'lost-outsider2-b', { settle: false });
    const registrant2 = await loginHost(c, 1, 'lost-registrant-b', { settle: false });
    try {
      // Either the reservation is in force on it, or it does not serve media commands at all;
      // a GOOD WRITE from a host without access is the one wrong answer.
      const w1 = await pastUnitAttentions(() => writeBlocks(outsider2, 12, stamp('OUTS', 3, 12, 1)));
      const w2 = await pastUnitAttentions(() => writeBlocks(registrant2, 12, stamp('REGB', 3, 12, 1)));
      expect(
        [outcome(w1), outcome(w2)],
        'WRITEs of hosts without access through the restarted node',
      ).not.toContain('GOOD');
      notReady(
        await pastUnitAttentions(() => prout(registrant2, SA.PREEMPT, TYPE.WE, { key: KB, saKey: KA })),
        'PREEMPT through the restarted node',
      );
      good(
        await pastUnitAttentions(() => writeBlocks(holder!, 12, stamp('HOLD', 3, 12, 1))),
        'holder writes through a',
      );
    } finally {
      closeAll(outsider2, registrant2);
    }
  });
});
