/**
 * A CD-ROM drive (MMC-6) over an image file: INQUIRY identity, the command set, READ TOC,
 * READ DISC / TRACK INFORMATION, GET CONFIGURATION, GET EVENT STATUS NOTIFICATION, the
 * capabilities mode page, the tray (START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL) and a
 * disc change, checked byte by byte against the CDBs an initiator sends.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import type { DeviceConfig } from '../../../src/shared/config-types.ts';
import { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import { CDROM_COMMANDS, DISK_COMMANDS } from '../../../src/workers/lun/opcode-registry.ts';
import { UaHandling } from '../../../src/workers/lun/command-policy.ts';
import { CLUSTER, TEST_ENV, makeCommand, run, tempDir, type TestCommand } from './helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const BLOCKS = 300;

const sector = (lba: number): Buffer => Buffer.alloc(2048, lba & 0xff);

function image(name: string, blocks: number): string {
  const file = path.join(tmp.dir, name);
  writeFileSync(file, Buffer.concat(Array.from({ length: blocks }, (_, i) => sector(i))));
  return file;
}

function cdrom(file: string | undefined): DeviceConfig {
  return {
    name: `cd-${Math.random().toString(36).slice(2)}`,
    backing: file === undefined ? { type: 'cdrom' } : { type: 'cdrom', path: file },
    blockSize: 2048,
    readOnly: false,
    writeCache: 'writeback',
    vendor: 'SPINDLE',
    product: 'VCDROM',
  };
}

/** Run a CDB; `nexus` picks the I_T nexus. */
async function cmd(lu: LogicalUnit, cdb: number[], dataLength = 0, nexus = 1): Promise<TestCommand> {
  const c = makeCommand(cdb, { dataLength });
  c.nexus = nexus;
  return run(lu, c);
}

function expectGood(c: TestCommand): void {
  expect(c.status, `sense ${c.senseTriple.map((x) => x.toString(16)).join('/')}`).toBe(ScsiStatus.GOOD);
}

function expectSense(c: TestCommand, triple: [number, number, number]): void {
  expect(c.status).toBe(ScsiStatus.CHECK_CONDITION);
  expect(c.senseTriple).toEqual(triple);
}

const TUR = [0, 0, 0, 0, 0, 0];
const READ_TOC = (format: number, msf: boolean, track: number, alloc = 0x200): number[] => [
  0x43,
  msf ? 0x02 : 0,
  format,
  0,
  0,
  0,
  track,
  alloc >> 8,
  alloc & 0xff,
  0,
];
const GESN = (classes: number, polled = 1): number[] => [0x4a, polled, 0, 0, classes, 0, 0, 0, 0x40, 0];
const GET_CONFIGURATION = (rt: number, start: number): number[] => [
  0x46,
  rt,
  start >> 8,
  start & 0xff,
  0,
  0,
  0,
  0x04,
  0,
  0,
];
const EJECT = [0x1b, 0, 0, 0, 0x02, 0];
const LOAD = [0x1b, 0, 0, 0, 0x03, 0];
const PREVENT = (on: boolean): number[] => [0x1e, 0, 0, 0, on ? 1 : 0, 0];

/**
 * The first command of a nexus with an identity reports POWER ON; take it (the handles
 * of these tests have none, so they start with nothing pending: ua/unit-attention.ts).
 */
async function absorbPowerOn(lu: LogicalUnit, nexus = 1): Promise<void> {
  const c = await cmd(lu, TUR, 0, nexus);
  if (c.status !== ScsiStatus.GOOD) expect(c.senseTriple[0]).toBe(6);
}

describe('CD-ROM drive with a disc', () => {
  let lu: LogicalUnit;
  beforeAll(async () => {
    lu = await LogicalUnit.open(cdrom(image('disc.iso', BLOCKS)), CLUSTER, TEST_ENV);
    await absorbPowerOn(lu);
  });
  afterAll(async () => lu.close());

  it('INQUIRY: peripheral device type 05h, RMB, no 3PC, MMC-6 claimed; VPD 00h lists 00h 80h 83h only', async () => {
    const inq = await cmd(lu, [0x12, 0, 0, 0, 96, 0], 96);
    expectGood(inq);
    expect(inq.dataIn[0]).toBe(0x05);
    expect(inq.dataIn[1]! & 0x80).toBe(0x80);
    expect(inq.dataIn[5]! & 0x08).toBe(0);
    const versions = Array.from({ length: 8 }, (_, i) => inq.dataIn.readUInt16BE(58 + 2 * i));
    expect(versions).toContain(0x04e0);
    expect(versions).not.toContain(0x04c0);
    const vpd = await cmd(lu, [0x12, 1, 0, 0, 64, 0], 64);
    expect([...vpd.dataIn]).toEqual([0x05, 0x00, 0, 3, 0x00, 0x80, 0x83]);
    expectSense(await cmd(lu, [0x12, 1, 0xb0, 0, 64, 0], 64), [5, 0x24, 0]);
  });

  it('READ CAPACITY: the last LBA and 2048; READ(10)/(12) return the image; no write commands', async () => {
    const rc = await cmd(lu, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    expectGood(rc);
    expect([rc.dataIn.readUInt32BE(0), rc.dataIn.readUInt32BE(4)]).toEqual([BLOCKS - 1, 2048]);
    const r10 = await cmd(lu, [0x28, 0, 0, 0, 0, 17, 0, 0, 2, 0], 4096);
    expectGood(r10);
    expect(r10.dataIn.equals(Buffer.concat([sector(17), sector(18)]))).toBe(true);
    const r12 = await cmd(lu, [0xa8, 0, 0, 0, 1, 0x2b, 0, 0, 0, 1, 0, 0], 2048);
    expect(r12.dataIn.equals(sector(299))).toBe(true);
    expectSense(await cmd(lu, [0x28, 0, 0, 0, 1, 0x2c, 0, 0, 1, 0], 2048), [5, 0x21, 0]);
    // Not in a CD-ROM's command set at all: INVALID COMMAND OPERATION CODE.
    for (const op of [0x2a, 0x8a, 0x41, 0x42, 0x9e, 0x83, 0x35])
      expectSense(await cmd(lu, [op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), [5, 0x20, 0]);
  });

  it('READ TOC format 0h: track 1 at 0, lead-out at the capacity, LBA and MSF', async () => {
    const toc = await cmd(lu, READ_TOC(0, false, 0), 0x200);
    expectGood(toc);
    expect([...toc.dataIn]).toEqual([
      0,
      18,
      1,
      1, // TOC DATA LENGTH, first track, last track
      0,
      0x14,
      1,
      0,
      0,
      0,
      0,
      0, // track 1: ADR 1 CONTROL 4, LBA 0
      0,
      0x14,
      0xaa,
      0,
      0,
      0,
      0x01,
      0x2c, // lead-out at LBA 300
    ]);
    const msf = await cmd(lu, READ_TOC(0, true, 0xaa), 0x200);
    // 300 + 150 frames = 00:06:00
    expect([...msf.dataIn]).toEqual([0, 10, 1, 1, 0, 0x14, 0xaa, 0, 0, 0, 6, 0]);
    expectSense(await cmd(lu, READ_TOC(0, false, 2), 0x200), [5, 0x24, 0]);
    const short = await cmd(lu, READ_TOC(0, false, 1, 4), 4);
    expect(short.dataInLength).toBe(4);
  });

  it('READ TOC format 1h (sessions) and 2h (raw); PMA and ATIP are refused', async () => {
    const s = await cmd(lu, READ_TOC(1, false, 0), 0x200);
    expect([...s.dataIn]).toEqual([0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
    const raw = await cmd(lu, READ_TOC(2, false, 1), 0x200);
    expectGood(raw);
    expect(raw.dataIn.readUInt16BE(0)).toBe(2 + 4 * 11);
    const entries = Array.from({ length: 4 }, (_, i) => [...raw.dataIn.subarray(4 + 11 * i, 15 + 11 * i)]);
    expect(entries).toEqual([
      [1, 0x14, 0, 0xa0, 0, 0, 0, 0, 1, 0, 0],
      [1, 0x14, 0, 0xa1, 0, 0, 0, 0, 1, 0, 0],
      [1, 0x14, 0, 0xa2, 0, 0, 0, 0, 0, 6, 0],
      [1, 0x14, 0, 0x01, 0, 0, 0, 0, 0, 2, 0],
    ]);
    expectSense(await cmd(lu, READ_TOC(3, false, 0), 0x200), [5, 0x24, 0]);
    expectSense(await cmd(lu, READ_TOC(4, false, 0), 0x200), [5, 0x24, 0]);
  });

  it('READ DISC INFORMATION: a finalized disc, one complete session', async () => {
    const di = await cmd(lu, [0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0], 34);
    expectGood(di);
    expect(di.dataIn.readUInt16BE(0)).toBe(32);
    expect([
      di.dataIn[2],
      di.dataIn[3],
      di.dataIn[4],
      di.dataIn[5],
      di.dataIn[6],
      di.dataIn[7],
      di.dataIn[8],
    ]).toEqual([0x0e, 1, 1, 1, 1, 0x20, 0x00]);
    expect(di.dataIn.readUInt32BE(16)).toBe(0xffffffff);
    expectSense(await cmd(lu, [0x51, 1, 0, 0, 0, 0, 0, 0, 34, 0], 34), [5, 0x24, 0]);
  });

  it('READ TRACK INFORMATION: track 1 by number, by LBA and by session', async () => {
    for (const [type, value] of [
      [1, 1],
      [0, 123],
      [2, 1],
    ] as const) {
      const ti = await cmd(lu, [0x52, type, 0, 0, 0, value, 0, 0, 48, 0], 48);
      expectGood(ti);
      expect([ti.dataIn.readUInt16BE(0), ti.dataIn[2], ti.dataIn[3], ti.dataIn[5], ti.dataIn[6]]).toEqual([
        46, 1, 1, 0x04, 0x01,
      ]);
      expect(ti.dataIn.readUInt32BE(8)).toBe(0);
      expect(ti.dataIn.readUInt32BE(24)).toBe(BLOCKS);
    }
    expectSense(await cmd(lu, [0x52, 1, 0, 0, 0, 2, 0, 0, 48, 0], 48), [5, 0x24, 0]);
    expectSense(await cmd(lu, [0x52, 0, 0, 0, 1, 0x2c, 0, 0, 48, 0], 48), [5, 0x21, 0]);
  });

  it('GET CONFIGURATION: CD-ROM profile current; core, morphing, removable medium, random readable', async () => {
    const all = await cmd(lu, GET_CONFIGURATION(0, 0), 1024);
    expectGood(all);
    const d = all.dataIn;
    expect(d.readUInt16BE(6)).toBe(0x0008); // CURRENT PROFILE: CD-ROM
    expect(d.readUInt32BE(0)).toBe(d.length - 4);
    const features: [number, number, number][] = [];
    for (let p = 8; p < d.length; p += 4 + d[p + 3]!)
      features.push([d.readUInt16BE(p), d[p + 2]!, d[p + 3]!]);
    expect(features).toEqual([
      [0x0000, 0x03, 4], // Profile List: persistent, current
      [0x0001, 0x0b, 8], // Core v2
      [0x0002, 0x07, 4], // Morphing v1
      [0x0003, 0x0b, 4], // Removable Medium v2
      [0x0010, 0x01, 8], // Random Readable: current
    ]);
    expect([...d.subarray(12, 16)]).toEqual([0x00, 0x08, 0x01, 0x00]); // profile 0008h, CURRENTP
    expect(d[8 + 8 + 12 + 8 + 4]).toBe(0x39); // removable: tray, load, eject, lock
    const rr = 8 + 8 + 12 + 8 + 8;
    expect([d.readUInt32BE(rr + 4), d.readUInt16BE(rr + 8), d[rr + 10]]).toEqual([2048, 1, 1]);
    const one = await cmd(lu, GET_CONFIGURATION(2, 0x0010), 1024);
    expect(one.dataIn.length).toBe(8 + 12);
    expect(one.dataIn.readUInt16BE(8)).toBe(0x0010);
    const none = await cmd(lu, GET_CONFIGURATION(2, 0x001e), 1024);
    expect(none.dataIn.length).toBe(8);
    expectSense(await cmd(lu, GET_CONFIGURATION(3, 0), 1024), [5, 0x24, 0]);
  });

  it('MODE SENSE(10) page 2Ah: tray, eject, lock; LOCK STATE follows PREVENT; no block descriptors', async () => {
    const sense = async (): Promise<Buffer> => {
      const c = await cmd(lu, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 0xff, 0], 255);
      expectGood(c);
      return c.dataIn;
    };
    let d = await sense();
    expect(d.readUInt16BE(6)).toBe(0); // BLOCK DESCRIPTOR LENGTH
    expect(d[3]).toBe(0); // DEVICE-SPECIFIC PARAMETER reserved for MMC
    expect([d[8], d[9]]).toEqual([0x2a, 30]);
    expect(d[8 + 6]).toBe(0x29);
    expectGood(await cmd(lu, PREVENT(true)));
    d = await sense();
    expect(d[8 + 6]).toBe(0x2b);
    expectGood(await cmd(lu, PREVENT(false)));
    // Disk-only pages are absent: Caching (08h).
    expectSense(await cmd(lu, [0x5a, 0, 0x08, 0, 0, 0, 0, 0, 0xff, 0], 255), [5, 0x24, 0]);
  });

  it('REPORT SUPPORTED OPERATION CODES lists the MMC commands and no SBC write', async () => {
    const c = await cmd(lu, [0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], 4096);
    expectGood(c);
    const ops = new Set<number>();
    for (let p = 4; p < c.dataIn.length; p += 8) ops.add(c.dataIn[p]!);
    for (const op of [
      0x00, 0x03, 0x12, 0x1b, 0x1e, 0x25, 0x28, 0x43, 0x46, 0x4a, 0x51, 0x52, 0xa8, 0xbd, 0x5a,
    ])
      expect(ops.has(op), op.toString(16)).toBe(true);
    for (const op of [0x2a, 0x8a, 0x41, 0x42, 0x89, 0x83]) expect(ops.has(op), op.toString(16)).toBe(false);
    const one = await cmd(lu, [0xa3, 0x0c, 0x01, 0x43, 0, 0, 0, 0, 0, 64, 0, 0], 64);
    expect([...one.dataIn.subarray(0, 14)]).toEqual([
      0, 0x03, 0, 10, 0x43, 0x02, 0x0f, 0, 0, 0, 0xff, 0xff, 0xff, 0x05,
    ]);
  });
});

describe('the tray and the disc', () => {
  let lu: LogicalUnit;
  beforeAll(async () => {
    lu = await LogicalUnit.open(cdrom(image('tray.iso', 100)), CLUSTER, TEST_ENV);
    await absorbPowerOn(lu, 1);
    await absorbPowerOn(lu, 2);
  });
  afterAll(async () => lu.close());

  it('GET EVENT STATUS NOTIFICATION: no event, then MediaRemoval after an eject and NewMedia after a load', async () => {
    const media = async (nexus = 1): Promise<number[]> => [...(await cmd(lu, GESN(0x10), 64, nexus)).dataIn];
    expect(await media()).toEqual([0, 6, 4, 0x5e, 0, 0x02, 0, 0]); // media class, no change, present
    expectGood(await cmd(lu, EJECT));
    expectSense(await cmd(lu, TUR), [2, 0x3a, 0x02]); // MEDIUM NOT PRESENT - TRAY OPEN
    expect(await media()).toEqual([0, 6, 4, 0x5e, 0x03, 0x01, 0, 0]); // MediaRemoval, tray open
    expect(await media()).toEqual([0, 6, 4, 0x5e, 0, 0x01, 0, 0]); // reported once per nexus
    expectGood(await cmd(lu, LOAD));
    expect(await media(2)).toEqual([0, 6, 4, 0x5e, 0x02, 0x02, 0, 0]); // NewMedia, present
    expect(await media(1)).toEqual([0, 6, 4, 0x5e, 0x02, 0x02, 0, 0]); // to each nexus
    // A load is NOT READY TO READY CHANGE for every other nexus (the loader knows); GESN
    // and GET CONFIGURATION are served without reporting it.
    expectGood(await cmd(lu, GET_CONFIGURATION(1, 0), 1024, 2));
    expectSense(await cmd(lu, TUR, 0, 2), [6, 0x28, 0]);
    expectGood(await cmd(lu, TUR, 0, 2));
    expectGood(await cmd(lu, TUR, 0, 1));
  });

  it('GESN: lowest requested class without an event, NEA when none is supported, POLLED = 0 refused', async () => {
    expect([...(await cmd(lu, GESN(0x02 | 0x10), 64)).dataIn]).toEqual([0, 6, 1, 0x5e, 0, 0, 0, 0]);
    expect([...(await cmd(lu, GESN(0x20), 64)).dataIn]).toEqual([0, 2, 0x80, 0x5e]);
    expectSense(await cmd(lu, GESN(0x10, 0), 64), [5, 0x24, 0]);
  });

  it('PREVENT ALLOW MEDIUM REMOVAL locks the tray: eject refused, persistent prevent refused', async () => {
    expectGood(await cmd(lu, PREVENT(true)));
    expectSense(await cmd(lu, EJECT), [5, 0x53, 0x02]);
    expect((await cmd(lu, GESN(0x02), 64)).dataIn[5]).toBe(0x80); // operational: persistent prevented
    expectGood(await cmd(lu, PREVENT(false)));
    expectSense(await cmd(lu, [0x1e, 0, 0, 0, 2, 0]), [5, 0x24, 0]);
  });

  it('MECHANISM STATUS reports the door', async () => {
    expect([...(await cmd(lu, [0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8)).dataIn]).toEqual([
      0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    expectGood(await cmd(lu, EJECT));
    expect((await cmd(lu, [0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8)).dataIn[1]).toBe(0x10);
    expectGood(await cmd(lu, LOAD));
    await cmd(lu, TUR, 0, 1);
    await cmd(lu, TUR, 0, 2);
  });

  it('a disc change: NOT READY while it is swapped, then NOT READY TO READY CHANGE, the new size, NewMedia', async () => {
    const next = image('next.iso', 40);
    expectGood(await cmd(lu, PREVENT(true)));
    await expect(lu.mmc!.change(next)).rejects.toThrow(/medium removal is prevented/);
    expectGood(await cmd(lu, PREVENT(false)));
    await expect(lu.mmc!.change(path.join(tmp.dir, 'missing.iso'))).rejects.toThrow(/ENOENT/);
    expectGood(await cmd(lu, TUR)); // the old disc is still in

    // A read in flight on the old disc holds the change back; meanwhile commands get NOT READY.
    const inFlight = makeCommand([0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0], { dataLength: 2048 });
    const { executeCommand } = await import('../../../src/workers/lun/execute.ts');
    executeCommand(lu, inFlight);
    const changing = lu.mmc!.change(next);
    while (!lu.mmc!.changing) await new Promise((r) => setImmediate(r)); // the new image is open
    expectSense(await cmd(lu, TUR), [2, 0x04, 0x01]);
    await inFlight.finished;
    expect(inFlight.dataIn.equals(sector(1))).toBe(true);
    await changing;
    expectSense(await cmd(lu, TUR), [6, 0x28, 0]);
    const rc = await cmd(lu, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    expect(rc.dataIn.readUInt32BE(0)).toBe(39);
    expect((await cmd(lu, GESN(0x10), 64)).dataIn[4]).toBe(0x02);

    await lu.mmc!.change(null); // no disc: tray closed, empty
    expectSense(await cmd(lu, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 2048), [2, 0x3a, 0x01]);
    const cfg = await cmd(lu, GET_CONFIGURATION(0, 0), 1024);
    expect(cfg.dataIn.readUInt16BE(6)).toBe(0x0000);
  });
});

describe('an empty drive', () => {
  it('opens without an image: MEDIUM NOT PRESENT - TRAY CLOSED, and INQUIRY still answers', async () => {
    const lu = await LogicalUnit.open(cdrom(undefined), CLUSTER, TEST_ENV);
    expectSense(await cmd(lu, TUR), [2, 0x3a, 0x01]);
    expectSense(await cmd(lu, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8), [2, 0x3a, 0x01]);
    expectGood(await cmd(lu, [0x12, 0, 0, 0, 96, 0], 96));
    expectGood(await cmd(lu, GESN(0x10), 64));
    await lu.close();
  });
});

describe('command sets by device type', () => {
  it('MMC rows exist only in the CD-ROM set; the disk set keeps SBC', () => {
    const opsOf = (rows: typeof CDROM_COMMANDS.rows): Set<number> => new Set(rows.map((r) => r.opcode));
    const cd = opsOf(CDROM_COMMANDS.rows);
    const disk = opsOf(DISK_COMMANDS.rows);
    for (const op of [0x43, 0x46, 0x4a, 0x51, 0x52, 0xbd]) {
      expect(cd.has(op)).toBe(true);
      expect(disk.has(op)).toBe(false);
    }
    for (const op of [0x2a, 0x8a, 0x42, 0x48, 0x83]) expect(cd.has(op)).toBe(false);
  });

  it('GET CONFIGURATION and GET EVENT STATUS NOTIFICATION are exempt from unit attentions (MMC-6 4.1.6.1)', () => {
    const cdb = Buffer.alloc(16);
    for (const [op, handling] of [
      [0x46, UaHandling.EXEMPT],
      [0x4a, UaHandling.EXEMPT],
      [0x43, UaHandling.REPORT],
      [0x28, UaHandling.REPORT],
    ] as const) {
      cdb[0] = op;
      expect(CDROM_COMMANDS.uaHandling.get(cdb), op.toString(16)).toBe(handling);
    }
  });
});
