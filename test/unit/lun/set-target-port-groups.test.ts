/**
 * SET TARGET PORT GROUPS (SPC-4 6.44): explicit asymmetric access state changes, the
 * status code RTPG then reports, the unit attention for every nexus but the issuer, and
 * the parameter list checks that leave everything unchanged.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { AluaState, PortGroupTable } from '../../../src/workers/lun/alua/port-groups.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import type { NexusInfo } from '../../../src/workers/lun/nexus.ts';
import { makeCommand, openLu, run, tempDir, type TestCommand } from './helpers.ts';

function nexus(id: number, port: number): NexusInfo {
  const initiatorPort = `iqn.1994-05.com.redhat:host,i,0x00023d00000${id}`;
  return {
    id,
    initiatorName: 'iqn.1994-05.com.redhat:host',
    isid: `00023d00000${id}`,
    initiatorPort,
    targetName: 'iqn.2026-11.io.spindle:alua',
    relativeTargetPortId: port,
    targetPortGroup: port,
    key: `${initiatorPort}|${port}`,
  };
}
const NEXUSES = new Map([
  [1, nexus(1, 1)],
  [2, nexus(2, 2)],
]);

/** SET TARGET PORT GROUPS with descriptors [state, group]. */
function stpg(descs: readonly (readonly [number, number])[], lengthOverride?: number): TestCommand {
  const list = Buffer.alloc(4 + 4 * descs.length);
  descs.forEach(([state, group], i) => {
    list[4 + 4 * i] = state;
    list.writeUInt16BE(group, 4 + 4 * i + 2);
  });
  const cdb = Buffer.alloc(12);
  cdb[0] = 0xa4;
  cdb[1] = 0x0a;
  cdb.writeUInt32BE(lengthOverride ?? list.length, 6);
  return makeCommand([...cdb], { dataOut: list });
}

const RTPG = [0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0];

describe('SET TARGET PORT GROUPS', () => {
  let lu: LogicalUnit;
  let table: PortGroupTable;
  let dir: { dir: string; cleanup: () => void };

  const testUnitReady = async (n: number): Promise<[number, number, number] | null> => {
    const c = makeCommand([0x00, 0, 0, 0, 0, 0]);
    c.nexus = n;
    await run(lu, c);
    return c.status === ScsiStatus.GOOD ? null : c.senseTriple;
  };

  beforeEach(async () => {
    dir = tempDir();
    lu = await openLu('ram', dir.dir);
    lu.nexuses = { get: (id) => NEXUSES.get(id) };
    table = new PortGroupTable({ implicitTransitionSec: 30, groups: [{ id: 1, relativeTargetPortIds: [1] }, { id: 2, relativeTargetPortIds: [2] }] });
    table.attach(lu);
    for (const n of NEXUSES.keys()) expect(await testUnitReady(n)).toEqual([0x6, 0x29, 0x00]); // POWER ON first
  });
  afterEach(async () => {
    await lu.close();
    dir.cleanup();
  });

  it('sets the states, reports them in RTPG, and tells every nexus but the issuer', async () => {
    const c = stpg([
      [AluaState.STANDBY, 2],
      [AluaState.ACTIVE_NON_OPTIMIZED, 1],
    ]);
    c.nexus = 1;
    await run(lu, c);
    expect(c.status).toBe(ScsiStatus.GOOD);
    expect(table.group(2)?.state).toBe(AluaState.STANDBY);
    expect(table.group(1)?.state).toBe(AluaState.ACTIVE_NON_OPTIMIZED);
    const r = makeCommand(RTPG, { dataLength: 1024 });
    r.nexus = 1;
    await run(lu, r);
    expect(r.data[4]! & 0x0f).toBe(AluaState.ACTIVE_NON_OPTIMIZED); // group 1 first (ascending)
    expect(r.data[4 + 5]).toBe(0x01); // STATUS CODE: altered by SET TARGET PORT GROUPS
    expect(await testUnitReady(1)).toBeNull(); // the issuer: no unit attention
    expect(await testUnitReady(2)).toEqual([0x6, 0x2a, 0x06]); // ASYMMETRIC ACCESS STATE CHANGED
    expect(await testUnitReady(2)).toEqual([0x2, 0x04, 0x0b]); // then NOT READY: standby
  });

  it('refuses a state the initiator may not set, an unknown group, a bad length; nothing changes', async () => {
    for (const [descs, len, triple, byte] of [
      [[[AluaState.TRANSITIONING, 1]], undefined, [0x5, 0x26, 0x00], 4],
      [[[AluaState.STANDBY, 1], [AluaState.STANDBY, 9]], undefined, [0x5, 0x26, 0x00], 10],
      [[[AluaState.STANDBY, 1]], 6, [0x5, 0x1a, 0x00], undefined],
    ] as const) {
      const c = stpg(descs, len);
      c.nexus = 1;
      await run(lu, c);
      expect(c.senseTriple).toEqual(triple);
      if (byte !== undefined) expect(c.fieldPointer).toMatchObject({ sksv: true, cd: false, field: byte });
      expect(table.group(1)?.state).toBe(AluaState.ACTIVE_OPTIMIZED);
    }
  });
});
