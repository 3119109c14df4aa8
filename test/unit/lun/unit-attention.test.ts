/**
 * Unit attention conditions (SAM-5 5.14, 6.3; ua/unit-attention.ts) through
 * executeCommand, with a NexusDirectory that resolves handles to I_T nexus identities
 * the way the LUN worker's does.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { SenseReason } from '../../../src/shared/scsi/sense.ts';
import { TmfFunction } from '../../../src/shared/iscsi/pdu.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import { initiatorPortName, nexusKey, type NexusInfo } from '../../../src/workers/lun/nexus.ts';
import { nexusLost } from '../../../src/workers/lun/nexus-events.ts';
import { applyTaskManagement } from '../../../src/workers/lun/task-management.ts';
import {
  UA_QUEUE_LIMIT,
  establish,
  establishAll,
  establishFor,
  reportedLunsEvent,
} from '../../../src/workers/lun/ua/unit-attention.ts';
import { makeCommand, openLu, run, tempDir } from './helpers.ts';

const TUR = [0, 0, 0, 0, 0, 0];
const INQUIRY = [0x12, 0, 0, 0, 96, 0];
const REQUEST_SENSE = [0x03, 0, 0, 0, 18, 0];
const REPORT_LUNS = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0];

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** Handle → identity, as session workers publish them at login. */
const directory = new Map<number, NexusInfo>();

function session(handle: number, initiatorName: string, isid: string, port = 1): NexusInfo {
  const initiatorPort = initiatorPortName(initiatorName, isid);
  const info: NexusInfo = {
    id: handle,
    initiatorName,
    isid,
    initiatorPort,
    targetName: 'iqn.2026-11.io.spindle:ua',
    relativeTargetPortId: port,
    targetPortGroup: 1,
    key: nexusKey(initiatorPort, port),
  };
  directory.set(handle, info);
  return info;
}

describe('unit attentions', () => {
  let lu: LogicalUnit;
  let dir: { dir: string; cleanup: () => void };

  beforeEach(async () => {
    dir = tempDir();
    lu = await openLu('ram', dir.dir);
    directory.clear();
    lu.nexuses = { get: (id) => directory.get(id) };
  });
  afterEach(async () => {
    await lu.close();
    dir.cleanup();
  });

  async function send(nexus: number, cdb: number[], dataLength = 0) {
    const c = makeCommand(cdb, { dataLength });
    c.nexus = nexus;
    return run(lu, c);
  }
  /** The sense triple of the next TEST UNIT READY of `nexus` ([] when GOOD). */
  async function tur(nexus: number): Promise<number[]> {
    const c = await send(nexus, TUR);
    return c.status === ScsiStatus.GOOD ? [] : c.senseTriple;
  }
  /** Every pending condition of `nexus`, in reporting order, by TEST UNIT READY. */
  async function drain(nexus: number): Promise<number[][]> {
    const out: number[][] = [];
    for (let s = await tur(nexus); s.length > 0; s = await tur(nexus)) out.push(s);
    return out;
  }

  it('a runtime resize: CAPACITY DATA HAS CHANGED for every nexus, then the new blocks serve', async () => {
    session(7, 'iqn.2026-11.test:a', '400000000001');
    session(8, 'iqn.2026-11.test:b', '400000000001');
    expect(await drain(7)).toEqual([[0x6, 0x29, 0x00]]);
    expect(await drain(8)).toEqual([[0x6, 0x29, 0x00]]);
    const blocks = lu.blockCount;
    await lu.grow(2 * blocks * lu.blockSize);
    expect(lu.blockCount).toBe(2 * blocks);
    expect(await drain(7)).toEqual([[0x6, 0x2a, 0x09]]);
    expect(await drain(8)).toEqual([[0x6, 0x2a, 0x09]]);
    const rc = await send(7, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    expect(rc.dataIn.readUInt32BE(0)).toBe(2 * blocks - 1);
    const read = await send(7, [0x28, 0, ...u32(2 * blocks - 1), 0, 0, 1, 0], 512);
    expect(read.status).toBe(ScsiStatus.GOOD);
    // The same size again is no change and no condition; shrinking is refused.
    await lu.grow(2 * blocks * lu.blockSize);
    expect(await tur(7)).toEqual([]);
    await expect(lu.grow(blocks * lu.blockSize)).rejects.toThrow(/cannot shrink/);
  });

  it('REPORTED LUNS DATA HAS CHANGED: established per nexus, cleared by the REPORT LUNS event or by REPORT LUNS itself', async () => {
    session(7, 'iqn.2026-11.test:a', '400000000001');
    session(8, 'iqn.2026-11.test:b', '400000000001');
    await drain(7);
    await drain(8);
    reportedLunsEvent(lu, 7, true);
    reportedLunsEvent(lu, 8, true);
    // Only the nexus whose inventory changed.
    session(9, 'iqn.2026-11.test:c', '400000000001');
    expect(await drain(9)).toEqual([[0x6, 0x29, 0x00]]);
    reportedLunsEvent(lu, 7, false); // REPORT LUNS answered on the session worker
    expect(await tur(7)).toEqual([]);
    expect((await send(8, REPORT_LUNS, 256)).status).toBe(ScsiStatus.GOOD); // REPORT LUNS at the LU
    expect(await tur(8)).toEqual([]);
  });

  it('the first command of an I_T nexus gets POWER ON, RESET OR BUS DEVICE RESET OCCURRED, then GOOD', async () => {
    session(7, 'iqn.2026-11.test:a', '400000000001');
    expect(await tur(7)).toEqual([0x6, 0x29, 0x00]);
    expect(await tur(7)).toEqual([]);
  });

  it('INQUIRY and REPORT LUNS do not clear it; REQUEST SENSE reports and clears it (SAM-5 5.14)', async () => {
    session(7, 'iqn.2026-11.test:a', '400000000001');
    const inq = await send(7, INQUIRY, 96);
    expect(inq.status).toBe(ScsiStatus.GOOD);
    expect((await send(7, REPORT_LUNS, 256)).status).toBe(ScsiStatus.GOOD);
    const rs = await send(7, REQUEST_SENSE, 18);
    expect(rs.status).toBe(ScsiStatus.GOOD);
    expect([rs.dataIn[2]! & 0x0f, rs.dataIn[12], rs.dataIn[13]]).toEqual([0x6, 0x29, 0x00]);
    expect(await tur(7)).toEqual([]);
    // Nothing pending: REQUEST SENSE answers NO SENSE.
    const none = await send(7, REQUEST_SENSE, 18);
    expect([none.dataIn[2]! & 0x0f, none.dataIn[12]]).toEqual([0, 0]);
  });

  it('is keyed by the nexus identity: a new session with the same name, ISID and port is the same I_T nexus', async () => {
    session(7, 'iqn.2026-11.test:a', '400000000001');
    expect(await drain(7)).toEqual([[0x6, 0x29, 0x00]]);
    // Same identity, new handle, the old session still registered: nothing new.
    session(8, 'iqn.2026-11.test:a', '400000000001');
    expect(await tur(8)).toEqual([]);
    // Another ISID, or another target port: another I_T nexus.
    session(9, 'iqn.2026-11.test:a', '400000000002');
    session(10, 'iqn.2026-11.test:a', '400000000001', 2);
    expect(await drain(9)).toEqual([[0x6, 0x29, 0x00]]);
    expect(await drain(10)).toEqual([[0x6, 0x29, 0x00]]);
  });

  it('I_T NEXUS LOSS OCCURRED when a lost identity comes back (SAM-5 6.3.4)', async () => {
    const a = session(7, 'iqn.2026-11.test:a', '400000000001');
    expect(await drain(7)).toEqual([[0x6, 0x29, 0x00]]);
    nexusLost(lu, 7, a);
    directory.delete(7);
    session(11, 'iqn.2026-11.test:a', '400000000001');
    expect(await drain(11)).toEqual([[0x6, 0x29, 0x07]]);
  });

  it('a lost identity keeps conditions established while it was away', async () => {
    const a = session(7, 'iqn.2026-11.test:a', '400000000001');
    session(8, 'iqn.2026-11.test:b', '400000000001');
    await drain(7);
    await drain(8);
    nexusLost(lu, 7, a);
    // MODE SELECT from b: every other nexus, also the absent one (SPC-4 7.5.1).
    establish(lu, SenseReason.MODE_PARAMETERS_CHANGED, 8);
    expect(await tur(8)).toEqual([]);
    session(12, 'iqn.2026-11.test:a', '400000000001');
    expect(await drain(12)).toEqual([
      [0x6, 0x29, 0x07],
      [0x6, 0x2a, 0x01],
    ]);
  });

  it('reset-class conditions keep only the one of highest precedence (SAM-5 6.3.1)', async () => {
    const a = session(7, 'iqn.2026-11.test:a', '400000000001');
    session(8, 'iqn.2026-11.test:b', '400000000001');
    await drain(7);
    nexusLost(lu, 7, a); // 29/07 pending for a
    session(13, 'iqn.2026-11.test:a', '400000000001');
    await new Promise<void>((r) => applyTaskManagement(lu, TmfFunction.LOGICAL_UNIT_RESET, 8, () => r()));
    // LUN reset (29/03) outranks I_T nexus loss (29/07) ...
    expect(await drain(13)).toEqual([[0x6, 0x29, 0x03]]);
    // ... and POWER ON / RESET (29/00, never reported to b yet) outranks the LUN reset.
    expect(await drain(8)).toEqual([[0x6, 0x29, 0x00]]);
  });

  it('overflow collapses the queue into POWER ON, RESET OR BUS DEVICE RESET OCCURRED (SAM-5 5.14)', async () => {
    session(7, 'iqn.2026-11.test:a', '400000000001');
    await drain(7);
    const conditions = [
      SenseReason.MODE_PARAMETERS_CHANGED,
      SenseReason.RESERVATIONS_PREEMPTED,
      SenseReason.RESERVATIONS_RELEASED,
      SenseReason.REGISTRATIONS_PREEMPTED,
      SenseReason.ASYMMETRIC_ACCESS_STATE_CHANGED,
      SenseReason.CAPACITY_DATA_HAS_CHANGED,
      SenseReason.COMMANDS_CLEARED_BY_ANOTHER_INITIATOR,
      SenseReason.REPORTED_LUNS_DATA_HAS_CHANGED,
    ];
    expect(conditions.length).toBe(UA_QUEUE_LIMIT);
    for (const c of conditions) establishAll(lu, c);
    establishAll(lu, SenseReason.MODE_PARAMETERS_CHANGED); // a duplicate never queues
    expect((await drain(7)).length).toBe(UA_QUEUE_LIMIT);
    for (const c of conditions) establishAll(lu, c);
    establishAll(lu, SenseReason.I_T_NEXUS_LOSS); // one more than fits (29h merges none)
    expect(await drain(7)).toEqual([[0x6, 0x29, 0x00]]);
  });

  it('REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED (SPC-4 6.33), not other conditions', async () => {
    session(7, 'iqn.2026-11.test:a', '400000000001');
    await drain(7);
    establishAll(lu, SenseReason.REPORTED_LUNS_DATA_HAS_CHANGED);
    establishAll(lu, SenseReason.CAPACITY_DATA_HAS_CHANGED);
    expect((await send(7, REPORT_LUNS, 256)).status).toBe(ScsiStatus.GOOD);
    expect(await drain(7)).toEqual([[0x6, 0x2a, 0x09]]);
  });

  it('establishFor selects by identity, including identities without a session', async () => {
    const a = session(7, 'iqn.2026-11.test:a', '400000000001');
    session(8, 'iqn.2026-11.test:b', '400000000001');
    await drain(7);
    await drain(8);
    nexusLost(lu, 7, a);
    establishFor(
      lu,
      SenseReason.REGISTRATIONS_PREEMPTED,
      (u) => u.info?.initiatorName === 'iqn.2026-11.test:a',
    );
    expect(await tur(8)).toEqual([]);
    session(14, 'iqn.2026-11.test:a', '400000000001');
    expect(await drain(14)).toEqual([
      [0x6, 0x29, 0x07],
      [0x6, 0x2a, 0x05],
    ]);
  });

  it('a handle without identity (no directory entry) starts with nothing pending', async () => {
    expect(await tur(99)).toEqual([]);
    establish(lu, SenseReason.MODE_PARAMETERS_CHANGED);
    expect(await tur(99)).toEqual([0x6, 0x2a, 0x01]);
    nexusLost(lu, 99, undefined);
    expect(await tur(99)).toEqual([]); // forgotten with its handle
  });
});
