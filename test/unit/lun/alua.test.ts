/**
 * ALUA on one node (SPC-4 5.16): TPGS in standard INQUIRY, target port designators in
 * VPD 83h, REPORT TARGET PORT GROUPS, per-state command admission and the ASYMMETRIC
 * ACCESS STATE CHANGED unit attention.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { Opcode } from '../../../src/shared/scsi/opcodes.ts';
import { AluaState, PortGroupTable } from '../../../src/workers/lun/alua/port-groups.ts';
import { STATE_RULES, admits } from '../../../src/workers/lun/alua/access.ts';
import { ALUA_ADMITTED } from '../../../src/workers/lun/opcode-registry.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import type { NexusInfo } from '../../../src/workers/lun/nexus.ts';
import { makeCommand, openLu, run, tempDir } from './helpers.ts';

const TARGET = 'iqn.2026-11.io.spindle:alua';

/** Nexus 1 came through port/group 1, nexus 2 through port/group 2. */
function nexus(id: number, port: number): NexusInfo {
  const initiatorPort = `iqn.1994-05.com.redhat:host,i,0x00023d000001`;
  return {
    id,
    initiatorName: 'iqn.1994-05.com.redhat:host',
    isid: '00023d000001',
    initiatorPort,
    targetName: TARGET,
    relativeTargetPortId: port,
    targetPortGroup: port,
    key: `${initiatorPort}|${port}`,
  };
}

const NEXUSES = new Map([
  [1, nexus(1, 1)],
  [2, nexus(2, 2)],
]);

function rtpg(format: number, alloc = 1024): number[] {
  const b = Buffer.alloc(12);
  b[0] = Opcode.MAINTENANCE_IN;
  b[1] = (format << 5) | 0x0a;
  b.writeUInt32BE(alloc, 6);
  return [...b];
}

const inquiry = (evpd: number, page: number, alloc = 1024): number[] => [
  0x12,
  evpd,
  page,
  alloc >> 8,
  alloc & 0xff,
  0,
];

describe('ALUA', () => {
  let lu: LogicalUnit;
  let table: PortGroupTable;
  let dir: { dir: string; cleanup: () => void };

  beforeEach(async () => {
    dir = tempDir();
    lu = await openLu('ram', dir.dir);
    lu.nexuses = { get: (id) => NEXUSES.get(id) };
    table = new PortGroupTable({
      implicitTransitionSec: 30,
      groups: [
        { id: 2, relativeTargetPortIds: [2] },
        { id: 1, relativeTargetPortIds: [1] },
        { id: 3, relativeTargetPortIds: [3] },
      ],
      deviceGroups: { disk0: [1, 2] },
    });
    table.attach(lu);
    // Each nexus's first command since the LU came online reports POWER ON, RESET OR BUS
    // DEVICE RESET OCCURRED (ua/unit-attention.ts): REQUEST SENSE takes it, so every
    // test starts with nothing pending.
    for (const n of NEXUSES.keys()) {
      const c = makeCommand([0x03, 0, 0, 0, 18, 0], { dataLength: 18 });
      c.nexus = n;
      await run(lu, c);
      expect([c.dataIn[12], c.dataIn[13]]).toEqual([0x29, 0x00]);
    }
  });
  afterEach(async () => {
    await lu.close();
    dir.cleanup();
  });

  it('reports TPGS = 11b (implicit and explicit) and MULTIP in standard INQUIRY', async () => {
    const c = await run(lu, makeCommand(inquiry(0, 0, 96), { dataLength: 96 }));
    expect(c.status).toBe(ScsiStatus.GOOD);
    expect((c.dataIn[5]! >> 4) & 0x03).toBe(0b11);
    expect(c.dataIn[5]! & 0x08).toBe(0x08); // 3PC unchanged
    expect(c.dataIn[6]! & 0x10).toBe(0x10); // MULTIP: two target ports export the LU
  });

  it('adds the target port designators of the arriving port to VPD 83h', async () => {
    for (const [id, port] of [
      [1, 1],
      [2, 2],
    ] as const) {
      const c = makeCommand(inquiry(1, 0x83), { dataLength: 1024 });
      c.nexus = id;
      await run(lu, c);
      const d = parseDesignators(c.dataIn);
      expect(d.map((x) => [x.assoc, x.type])).toEqual([
        [0, 3], // NAA
        [0, 1], // T10 vendor id
        [1, 4], // relative target port
        [1, 5], // target port group
        [1, 8], // SCSI target port name
        [2, 8], // SCSI target device name
      ]);
      const rel = d[2]!;
      expect(rel.proto).toBe(5);
      expect(rel.piv).toBe(true);
      expect(rel.codeSet).toBe(1);
      expect(rel.value.readUInt16BE(2)).toBe(port);
      expect(d[3]!.value.readUInt16BE(2)).toBe(port);
      const portName = d[4]!;
      expect(portName.codeSet).toBe(3);
      expect(portName.value.length % 4).toBe(0);
      expect(portName.value.toString('utf8').replace(/\0+$/, '')).toBe(`${TARGET},t,0x000${port}`);
      expect(d[5]!.value.toString('utf8').replace(/\0+$/, '')).toBe(TARGET);
      expect(d[5]!.value.at(-1)).toBe(0);
    }
  });

  it('omits port designators when the nexus is unknown', async () => {
    const c = makeCommand(inquiry(1, 0x83), { dataLength: 1024 });
    c.nexus = 99;
    await run(lu, c);
    expect(parseDesignators(c.dataIn)).toHaveLength(2);
  });

  it('REPORT TARGET PORT GROUPS, length-only header: the LU groups and their ports', async () => {
    const c = await run(lu, makeCommand(rtpg(0), { dataLength: 1024 }));
    expect(c.status).toBe(ScsiStatus.GOOD);
    const d = c.dataIn;
    expect(d.readUInt32BE(0)).toBe(d.length - 4);
    expect(d.length).toBe(4 + 2 * 12); // group 3 does not export disk0
    const groups = parseGroups(d, 4);
    expect(groups).toEqual([
      { state: 0, pref: false, supported: 0x8f, id: 1, status: 0, ports: [1] },
      { state: 0, pref: false, supported: 0x8f, id: 2, status: 0, ports: [2] },
    ]);
  });

  it('REPORT TARGET PORT GROUPS, extended header: format 1 and the implicit transition time', async () => {
    const c = await run(lu, makeCommand(rtpg(1), { dataLength: 1024 }));
    const d = c.dataIn;
    expect(d.readUInt32BE(0)).toBe(d.length - 4); // counts the 4 extended header bytes too
    expect((d[4]! >> 4) & 0x07).toBe(1);
    expect(d[5]).toBe(30);
    expect(parseGroups(d, 8).map((g) => g.id)).toEqual([1, 2]);
  });

  it('REPORT TARGET PORT GROUPS honours the allocation length and checks the CDB', async () => {
    const short = await run(lu, makeCommand(rtpg(0, 6), { dataLength: 6 }));
    expect(short.dataInLength).toBe(6);
    expect(short.dataIn.readUInt32BE(0)).toBe(24);
    const bad = await run(lu, makeCommand(rtpg(2), { dataLength: 64 }));
    expect(bad.status).toBe(ScsiStatus.CHECK_CONDITION);
    expect(bad.senseTriple).toEqual([0x5, 0x24, 0x00]);
    expect(bad.fieldPointer).toMatchObject({ sksv: true, cd: true, field: 1, bit: 7 });
  });

  it('a state change establishes ASYMMETRIC ACCESS STATE CHANGED for every nexus', async () => {
    // Both nexuses address the LU first (so the LU knows them).
    for (const n of [1, 2]) {
      const c = makeCommand([0, 0, 0, 0, 0, 0]);
      c.nexus = n;
      await run(lu, c);
    }
    expect(table.setPortGroupState(2, AluaState.STANDBY)).toBe(true);
    for (const n of [1, 2]) {
      const c = makeCommand([0, 0, 0, 0, 0, 0]);
      c.nexus = n;
      await run(lu, c);
      expect(c.senseTriple).toEqual([0x6, 0x2a, 0x06]);
    }
    // RTPG now shows group 2 in standby, altered by implicit behaviour.
    const r = await run(lu, makeCommand(rtpg(0), { dataLength: 1024 }));
    expect(parseGroups(r.dataIn, 4)[1]).toMatchObject({ id: 2, state: AluaState.STANDBY, status: 0x02 });
    // Same state again: no new unit attention.
    expect(table.setPortGroupState(2, AluaState.STANDBY)).toBe(true);
    const again = makeCommand([0, 0, 0, 0, 0, 0]);
    again.nexus = 2;
    await run(lu, again);
    expect(again.senseTriple).toEqual([0x2, 0x04, 0x0b]); // now refused by standby, no UA
  });

  it('a group that does not export the LU raises no unit attention there', async () => {
    const c = makeCommand([0, 0, 0, 0, 0, 0]);
    await run(lu, c);
    expect(table.setPortGroupState(3, AluaState.UNAVAILABLE)).toBe(true);
    const after = await run(lu, makeCommand([0, 0, 0, 0, 0, 0]));
    expect(after.status).toBe(ScsiStatus.GOOD);
  });

  it('rejects unknown groups and unsupported states', () => {
    expect(table.setPortGroupState(9, AluaState.STANDBY)).toBe(false);
    expect(table.setPortGroupState(1, 0x4 as never)).toBe(false);
  });

  const states = [
    [AluaState.STANDBY, [0x2, 0x04, 0x0b]],
    [AluaState.UNAVAILABLE, [0x2, 0x04, 0x0c]],
    [AluaState.TRANSITIONING, [0x2, 0x04, 0x0a]],
  ] as const;

  for (const [state, sense] of states) {
    it(`state ${state}: NOT READY ${sense[1].toString(16)}/${sense[2].toString(16)} for media access, INQUIRY/RTPG/REPORT LUNS still served`, async () => {
      table.setPortGroupState(1, state);
      // The change established ASYMMETRIC ACCESS STATE CHANGED for both nexuses first.
      for (const n of [1, 2]) {
        const tur = makeCommand([0, 0, 0, 0, 0, 0]);
        tur.nexus = n;
        await run(lu, tur);
        expect(tur.senseTriple).toEqual([0x6, 0x2a, 0x06]);
      }
      const read = makeCommand([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { dataLength: 512 });
      await run(lu, read);
      expect(read.status).toBe(ScsiStatus.CHECK_CONDITION);
      expect(read.senseTriple).toEqual([...sense]);
      const inq = await run(lu, makeCommand(inquiry(0, 0, 96), { dataLength: 96 }));
      expect(inq.status).toBe(ScsiStatus.GOOD);
      const r = await run(lu, makeCommand(rtpg(1), { dataLength: 1024 }));
      expect(r.status).toBe(ScsiStatus.GOOD);
      // The other port (group 2) is still active/optimized.
      const other = makeCommand([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { dataLength: 512 });
      other.nexus = 2;
      await run(lu, other);
      expect(other.status).toBe(ScsiStatus.GOOD);
    });
  }

  it('standby admits mode, log and PR commands; unavailable and transitioning do not', () => {
    const modeSense6 = Buffer.from([0x1a, 0, 0x3f, 0, 0xff, 0]);
    const prIn = Buffer.from([0x5e, 0, 0, 0, 0, 0, 0, 0, 0xff, 0]);
    const tur = Buffer.alloc(6);
    const rsoc = Buffer.from([0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    const rtpgCdb = Buffer.from([0xa3, 0x2a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    const standby = STATE_RULES.get(AluaState.STANDBY)!;
    const unavailable = STATE_RULES.get(AluaState.UNAVAILABLE)!;
    const transitioning = STATE_RULES.get(AluaState.TRANSITIONING)!;
    expect([modeSense6, prIn, rtpgCdb].map((c) => admits(standby, ALUA_ADMITTED, c))).toEqual([true, true, true]);
    expect([tur, rsoc].map((c) => admits(standby, ALUA_ADMITTED, c))).toEqual([false, false]);
    expect([modeSense6, prIn, tur, rtpgCdb].map((c) => admits(unavailable, ALUA_ADMITTED, c))).toEqual([
      false,
      false,
      false,
      true,
    ]);
    expect(admits(transitioning, ALUA_ADMITTED, rtpgCdb)).toBe(true);
    expect(admits(transitioning, ALUA_ADMITTED, Buffer.from([0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toBe(false);
    expect(STATE_RULES.has(AluaState.ACTIVE_NON_OPTIMIZED)).toBe(false);
  });
});

interface Designator {
  proto: number;
  codeSet: number;
  piv: boolean;
  assoc: number;
  type: number;
  value: Buffer;
}

function parseDesignators(page: Buffer): Designator[] {
  expect(page[1]).toBe(0x83);
  const end = 4 + page.readUInt16BE(2);
  expect(end).toBe(page.length);
  const out: Designator[] = [];
  for (let p = 4; p < end;) {
    const len = page[p + 3]!;
    out.push({
      proto: page[p]! >> 4,
      codeSet: page[p]! & 0x0f,
      piv: (page[p + 1]! & 0x80) !== 0,
      assoc: (page[p + 1]! >> 4) & 0x03,
      type: page[p + 1]! & 0x0f,
      value: page.subarray(p + 4, p + 4 + len),
    });
    p += 4 + len;
  }
  return out;
}

function parseGroups(d: Buffer, start: number) {
  const out = [];
  for (let p = start; p < d.length;) {
    const count = d[p + 7]!;
    const ports: number[] = [];
    for (let k = 0; k < count; k++) ports.push(d.readUInt16BE(p + 8 + 4 * k + 2));
    out.push({
      state: d[p]! & 0x0f,
      pref: (d[p]! & 0x80) !== 0,
      supported: d[p + 1]!,
      id: d.readUInt16BE(p + 2),
      status: d[p + 5]!,
      ports,
    });
    p += 8 + 4 * count;
  }
  return out;
}
