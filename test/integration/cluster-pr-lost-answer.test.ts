/**
 * A reservation change whose Redis answer is lost: node a's compare-and-set reaches Redis
 * and is committed, but the reply is held back past the node's command timeout (its TCP
 * proxy's 'replies' cut, on the connection that carries reservation changes only, so the
 * read before the CAS and the lease renewals go on), and PR OUT through a fails with NOT READY, ASYMMETRIC ACCESS
 * STATE TRANSITION (retryable; the outcome is unknown). Node b adopts the change from the
 * event stream. Node a's LU adopts its own changes only from the CAS answer, so it must
 * catch up from Redis (cluster-node.ts #catchUp): afterwards both nodes enforce the same
 * registrations, and never a's old ones.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startCluster, type StartedCluster } from '../helpers/cluster.ts';
import {
  closeAll,
  loginHost,
  prout,
  readKeys,
  registerKey,
  SA,
  senseOf,
  sleep,
  until,
  type Host,
} from '../helpers/cluster-scsi.ts';

// Command timeout marginSec / 2 = 1 s (2 s on the change connection, which also carries WAIT).
const LEASE = { ttlSec: 6, renewSec: 0.3, marginSec: 2 };

let redis: RedisServer;
let c: StartedCluster;
let a: Host | undefined;
let b: Host | undefined;

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
  c = await startCluster({ nodes: 2, redis, lease: LEASE, proxyPerNode: true });
  a = await loginHost(c, 0, 'lost-answer-a');
  b = await loginHost(c, 1, 'lost-answer-b');
});

afterAll(async () => {
  closeAll(a, b);
  await c?.close();
  await redis?.close();
});

describe('a reservation change whose answer is lost', () => {
  it('fails retryably through the issuing node, which then takes it from Redis like the others', async () => {
    await registerKey(a!, 0x1a1n, 'a registers');
    await registerKey(b!, 0x1b1n, 'b registers');
    const proxy = c.nodes[0]!.proxy!;
    proxy.cut('replies', `spindle-${c.nodes[0]!.id}-changes`);
    const t0 = performance.now();
    // a's registration moves to a new key: committed in Redis, the answer held back.
    const r = await prout(a!, SA.REGISTER_AND_IGNORE_EXISTING_KEY, 0, { saKey: 0x1a2n });
    const failedAfter = performance.now() - t0;
    await sleep(200);
    proxy.restore();
    console.log(`PR OUT with its answer held back: ${Math.round(failedAfter)} ms, ${senseOf(r.sense)?.join('/')}`);
    expect(senseOf(r.sense), 'unknown outcome: retryable').toEqual([2, 0x04, 0x0a]);

    const want = [0x1a2n, 0x1b1n];
    await until('node b has the change', async () => (await readKeys(b!)).keys.sort().join() === want.join());
    await until('node a took it from Redis', async () => (await readKeys(a!)).keys.sort().join() === want.join(), 15_000);
    expect(c.nodes[0]!.output(), 'the catch-up is logged').toContain('was made after all');
  });
});
