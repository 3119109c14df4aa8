/**
 * A node joining while another changes a reservation (issue 10, "Fencing"), with a real
 * Redis and the real ClusterLink, Membership and PrStore of the writer:
 *
 * The writer waits for acknowledgements from the peers it saw live at its last lease
 * renewal. A node that took its lease after that (it joined within renewSec) may read
 * the LU's state before the change and serve it; it must be waited for too. The change's
 * compare-and-set reads every peer's lease in the same atomic step, so a lease that
 * exists at that instant is waited for, and one that does not yet exist is not (that
 * node will load the new state).
 *
 * The joiner is a second ClusterLink whose acknowledgement the test sends by hand, so the
 * moment it answers is under the test's control.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { removeOnExit } from '../helpers/exit-cleanup.ts';
import { ClusterLink } from '../../src/supervisor/cluster/cluster-link.ts';
import { Membership } from '../../src/supervisor/cluster/membership.ts';
import { PrStore } from '../../src/supervisor/cluster/pr-store.ts';
import { prRef } from '../../src/supervisor/cluster/events.ts';
import { createLogger } from '../../src/shared/logging.ts';
import type { PrNexus, PrRequest } from '../../src/shared/state/cluster-state.ts';

const CLUSTER_ID = 'join-race';
const LEASE = { ttlMs: 10_000, renewMs: 60_000, marginMs: 1000 };
const log = createLogger({ name: 'test', level: 'silent', pretty: false });

let redis: RedisServer;
let writer: ClusterLink;
let joiner: ClusterLink;
let members: Membership;
let prs: PrStore;

function link(node: string): ClusterLink {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), `spindle-join-${node}-`));
  removeOnExit(stateDir);
  return new ClusterLink({ clusterId: CLUSTER_ID, node, redis: { url: redis.url }, stateDir, commandTimeoutMs: 2000, log });
}

const nexus = (name: string): PrNexus => ({ initiatorName: name, isid: '400001370000', relativeTargetPortId: 1 });
const reserve = (name: string): PrRequest => ({ kind: 'reserve', nexus: nexus(name) });

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
  writer = link('a');
  await writer.connect();
  await writer.checkEpoch();
  writer.startReading(await writer.streamTail());
  // Renewals are driven by hand (renewMs is a minute): the writer's view of its peers is
  // the one from its last renewal, which the test takes before the joiner arrives.
  members = new Membership(writer, ['a', 'j'], LEASE, log);
  prs = new PrStore(writer, members, { ackTimeoutMs: 5000, leaseTtlMs: LEASE.ttlMs, waitReplicas: 0 }, log);
  expect(await members.renew()).toBe(true);
  expect(members.livePeers().size, 'no peer is live yet').toBe(0);
  joiner = link('j');
  await joiner.connect();
  await joiner.checkEpoch();
});

afterAll(async () => {
  members?.stop();
  await writer?.close();
  await joiner?.close();
  await redis?.close();
});

describe('a node that joined since the writer last looked at the leases', () => {
  it('is waited for: the change is reported only after it acknowledged', async () => {
    // The joiner takes its lease now (after the writer's renewal, before the change).
    await redis.command('SET', writer.keys.lease('j'), JSON.stringify({ node: 'j', inc: 'x', gen: 0, at: Date.now() }), 'PX', LEASE.ttlMs);
    let reported = false;
    const change = prs.transition('lu-1', reserve('iqn.2026-12.test:host-1')).then((r) => {
      reported = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(reported, 'not reported before the joiner adopted it').toBe(false);
    await joiner.ack('a', prRef('lu-1', 1));
    const r = await change;
    expect(r.state.version).toBe(1);
  });

  it('a node whose lease does not exist when the change is made is not waited for', async () => {
    await redis.command('DEL', writer.keys.lease('j'));
    const t0 = performance.now();
    const r = await prs.transition('lu-2', reserve('iqn.2026-12.test:host-2'));
    expect(r.state.version).toBe(1);
    expect(performance.now() - t0, 'no acknowledgement wait').toBeLessThan(1000);
  });
});
