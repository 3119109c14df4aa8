/**
 * COMPARE AND WRITE across cluster nodes (SBC-4 5.3: the compare and the write are one
 * uninterrupted series of actions with respect to any other command on those LBAs): the
 * node that runs it takes the LU's cluster lock and has every other node hold the LU's
 * commands first (cluster-node.ts lockLu, sbc/state.ts holdForPeer).
 *
 * The nodes run with a 1 s pause between the compare and the write
 * (SPINDLE_TEST_CAW_PAUSE_MS, honoured only with SPINDLE_TEST_FAULTS=1), so a command sent
 * through the other node lands inside that window every time.
 *
 * 1. A plain WRITE through node b inside node a's COMPARE AND WRITE waits for it, and its
 *    data is what the medium keeps: had it run at once, the compare-and-write would have
 *    overwritten an acknowledged WRITE it never compared against.
 * 2. VMware-style ATS from both nodes at once on one block (read, then COMPARE AND WRITE
 *    the next value, again on a miscompare): every GOOD one moved the counter by one, no
 *    update is lost, and neither node waits for the other for ever.
 * 3. Node b killed: COMPARE AND WRITE through node a answers NOT READY, ASYMMETRIC ACCESS
 *    STATE TRANSITION (retryable) while b's lease lives, as nobody acknowledges the hold,
 *    and GOOD once the lease is gone; never anything else.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { startCluster, type StartedCluster } from '../helpers/cluster.ts';
import {
  BLOCK,
  closeAll,
  good,
  loginHost,
  outcomeOf,
  pastAccessStateChanged,
  readBlocks,
  readRegion,
  ScsiStatus,
  senseOf,
  sleep,
  writeBlocks,
  type Host,
} from '../helpers/cluster-scsi.ts';
import type { ScsiResult } from '../helpers/initiator.ts';

const LEASE = { ttlSec: 4, renewSec: 0.4, marginSec: 1.2 };
const PAUSE_MS = 1000;

let redis: RedisServer;
let c: StartedCluster;
let a: Host | undefined;
let b: Host | undefined;

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
  c = await startCluster({
    nodes: 2,
    redis,
    lease: LEASE,
    env: { SPINDLE_TEST_FAULTS: '1', SPINDLE_TEST_CAW_PAUSE_MS: String(PAUSE_MS) },
  });
  a = await loginHost(c, 0, 'ats-a');
  b = await loginHost(c, 1, 'ats-b');
});

afterAll(async () => {
  closeAll(a, b);
  await c?.close();
  await redis?.close();
});

/** COMPARE AND WRITE of one block (SBC-4 5.3 table 37): verify data, then write data. */
function compareAndWrite(h: Host, lba: number, expected: Buffer, next: Buffer): Promise<ScsiResult> {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x89;
  cdb.writeBigUInt64BE(BigInt(lba), 2);
  cdb[13] = 1;
  return h.ini.scsi(cdb, { write: true, edtl: 2 * BLOCK, data: Buffer.concat([expected, next]), timeoutMs: 30_000 });
}

const filled = (byte: number): Buffer => Buffer.alloc(BLOCK, byte);

describe('COMPARE AND WRITE is atomic across nodes', () => {
  it('a plain WRITE through the other node inside it waits, and is what the medium keeps', async () => {
    const LBA = 100;
    good(await writeBlocks(a!, LBA, filled(0x11)), 'initial contents through a');
    const t0 = performance.now();
    const caw = compareAndWrite(a!, LBA, filled(0x11), filled(0x22)).then((r) => ({ r, at: performance.now() }));
    // Inside a's window: it has taken the lock and the hold (milliseconds), compared, and
    // pauses before writing; half the pause leaves room for a slow machine.
    await sleep(PAUSE_MS / 2);
    const w0 = performance.now();
    const wr = await writeBlocks(b!, LBA, filled(0x33));
    const w1 = performance.now();
    const { r: cr, at: cawDone } = await caw;
    good(cr, 'COMPARE AND WRITE through a');
    good(wr, 'WRITE through b');
    console.log(
      `COMPARE AND WRITE through a: ${Math.round(cawDone - t0)} ms; WRITE through b inside it: ${Math.round(w1 - w0)} ms`,
    );
    expect(w1 - w0, 'the WRITE through b was held until the compare-and-write ended').toBeGreaterThan(PAUSE_MS / 4);
    // The WRITE came after the compare (else the compare would have failed), so it is last.
    for (const h of [a!, b!]) expect((await readRegion(h, LBA, 1)).equals(filled(0x33)), `contents through ${h.name}`).toBe(true);
  });

  it('ATS from both nodes at once on one block: no lost update, no deadlock', async () => {
    const LBA = 200;
    const value = (n: number): Buffer => {
      const x = Buffer.alloc(BLOCK);
      x.writeUInt32BE(n, 0);
      return x;
    };
    good(await writeBlocks(a!, LBA, value(0)), 'counter 0');
    const PER_NODE = 3;
    let miscompares = 0;
    const worker = async (h: Host): Promise<number[]> => {
      const mine: number[] = [];
      while (mine.length < PER_NODE) {
        const seen = (await readRegion(h, LBA, 1)).readUInt32BE(0);
        const r = await compareAndWrite(h, LBA, value(seen), value(seen + 1));
        if (r.status === ScsiStatus.GOOD) mine.push(seen + 1);
        else if (senseOf(r.sense)?.join() === '14,29,0') miscompares++;
        else throw new Error(`${h.name}: COMPARE AND WRITE: ${outcomeOf(r)}`);
      }
      return mine;
    };
    const [fromA, fromB] = await Promise.all([worker(a!), worker(b!)]);
    console.log(`ATS from both nodes: a set ${fromA.join(',')}, b set ${fromB.join(',')}, ${miscompares} miscompares`);
    // Each GOOD one set a distinct next value: 1..2*PER_NODE, each exactly once.
    expect([...fromA, ...fromB].sort((x, y) => x - y)).toEqual(Array.from({ length: 2 * PER_NODE }, (_, i) => i + 1));
    expect((await readRegion(b!, LBA, 1)).readUInt32BE(0)).toBe(2 * PER_NODE);
  });

  it('the other node killed: retryable NOT READY while its lease lives, then GOOD', async () => {
    const LBA = 300;
    good(await writeBlocks(a!, LBA, filled(0x01)), 'initial contents through a');
    await c.kill(1);
    const killedAt = performance.now();
    const outcomes: string[] = [];
    let current = 0x01;
    for (;;) {
      const r = await compareAndWrite(a!, LBA, filled(current), filled(current + 1));
      if (r.status === ScsiStatus.GOOD) break;
      outcomes.push(outcomeOf(r));
      // b's port group turning UNAVAILABLE is reported once as a unit attention (SPC-4 5.16.2.5).
      expect(['2,4,10', '6,42,6'], `COMPARE AND WRITE while b is dead: ${outcomeOf(r)}`).toContain(senseOf(r.sense)?.join());
      // b's lease runs out (ttlSec), a sees it at a renewal, one more attempt gives up (1 s)
      // and the GOOD one pauses (PAUSE_MS): a bound with room for a slow machine.
      expect(performance.now() - killedAt, 'GOOD once the lease is gone').toBeLessThan((LEASE.ttlSec + 6) * 1000);
    }
    current++;
    console.log(`node b killed: ${outcomes.join('; ')}; GOOD after ${Math.round(performance.now() - killedAt)} ms`);
    // b's lease outlives the acknowledgement timeout (ttlSec 4 against 2 s): at least the
    // first one was refused (retryably) rather than waiting for b's lease to be revoked.
    expect(outcomes.filter((o) => o.includes('02/04/0a')).length).toBeGreaterThan(0);
    const after = await pastAccessStateChanged(() => readBlocks(a!, LBA, 1));
    good(after, 'READ through a');
    expect(after.data.equals(filled(current))).toBe(true);
  });
});
