import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import {
  identityDigest,
  LogicalUnit,
  SPINDLE_IEEE_COMPANY_ID,
} from '../../../src/workers/lun/logical-unit.ts';
import { COMMANDS } from '../../../src/workers/lun/opcode-registry.ts';
import { CLUSTER, TEST_ENV, makeCommand, ramDevice, run } from './helpers.ts';

let lu: LogicalUnit;
let roLu: LogicalUnit;
beforeAll(async () => {
  lu = await LogicalUnit.open(ramDevice({ writeCache: 'writeback' }), CLUSTER, TEST_ENV);
  roLu = await LogicalUnit.open(
    ramDevice({ name: 'ro', readOnly: true, writeCache: 'writethrough' }),
    CLUSTER,
    TEST_ENV,
  );
});
afterAll(async () => {
  await lu.close();
  await roLu.close();
});

const inq = (evpd: number, page: number, alloc: number, dataLength = 4096) =>
  makeCommand([0x12, evpd, page, alloc >> 8, alloc & 0xff, 0], { dataLength });

function expectCheck(cmd: { status: number; senseTriple: number[] }, triple: number[]) {
  expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
  expect(cmd.senseTriple).toEqual(triple);
}

describe('executeCommand dispatch', () => {
  it('rejects unknown opcodes with INVALID COMMAND OPERATION CODE', async () => {
    for (const op of [0x01, 0x04, 0x02, 0xc1, 0xc0, 0xff]) {
      const cmd = await run(lu, makeCommand([op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
      expectCheck(cmd, [5, 0x20, 0]);
      expect(cmd.fieldPointer).toMatchObject({ sksv: true, cd: true, field: 0, bit: 7 });
    }
  });

  it('rejects an unknown service action with INVALID FIELD IN CDB at byte 1', async () => {
    const cmd = await run(
      lu,
      makeCommand([0x9e, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], { dataLength: 32 }),
    );
    expectCheck(cmd, [5, 0x24, 0]);
    expect(cmd.fieldPointer).toMatchObject({ field: 1, bit: 4 });
  });

  it('accepts NACA (ACA support, task-set.ts) and rejects LINK in the control byte', async () => {
    const naca = await run(lu, makeCommand([0x00, 0, 0, 0, 0, 0x04]));
    expect(naca.status).toBe(ScsiStatus.GOOD);
    const link = await run(lu, makeCommand([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0x01], { dataLength: 512 }));
    expect(link.fieldPointer).toMatchObject({ field: 9, bit: 0 });
  });
});

describe('INQUIRY standard data (SPC-4 6.6.2)', () => {
  it('reports an SPC-4 disk with padded identification', async () => {
    const cmd = await run(lu, inq(0, 0, 260));
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    expect(cmd.dataInLength).toBe(96);
    const d = cmd.dataIn;
    expect(d[0]).toBe(0x00);
    expect(d[2]).toBe(0x06);
    expect(d[3]).toBe(0x32); // NORMACA | HISUP | format 2
    expect(d[4]).toBe(91);
    expect(d[3]! & 0xc0).toBe(0); // no AERC/TRMTSK
    expect(d.toString('latin1', 8, 16)).toBe('SPINDLE ');
    expect(d.toString('latin1', 16, 32)).toBe('RAMDISK         ');
    expect(d.toString('latin1', 32, 36)).toMatch(/^[\x20-\x7e]{4}$/);
    const descriptors = Array.from({ length: 8 }, (_, i) => d.readUInt16BE(58 + 2 * i));
    expect(descriptors).toContain(0x0460); // SPC-4
    expect(descriptors).toContain(0x04c0); // SBC-3
  });

  it('honours every allocation length 5..255 and 511 vs 512 gives the same data', async () => {
    for (let a = 0; a < 256; a++) {
      const cmd = await run(lu, inq(0, 0, a, 300));
      expect(cmd.status).toBe(ScsiStatus.GOOD);
      expect(cmd.dataInLength).toBe(Math.min(a, 96));
    }
    const a = await run(lu, inq(0, 0, 511));
    const b = await run(lu, inq(0, 0, 512));
    expect(a.dataIn.equals(b.dataIn)).toBe(true);
  });

  it('rejects EVPD = 0 with a page code, and CMDDT/reserved bits, with field pointers', async () => {
    const pc = await run(lu, inq(0, 0x80, 255));
    expectCheck(pc, [5, 0x24, 0]);
    expect(pc.fieldPointer).toEqual({ sksv: true, cd: true, bpv: true, bit: 7, field: 2 });
    const cmddt = await run(lu, inq(0x02, 0, 255));
    expectCheck(cmddt, [5, 0x24, 0]);
    expect(cmddt.fieldPointer).toMatchObject({ field: 1, bit: 1 });
    const reserved = await run(lu, inq(0x80, 0, 255));
    expect(reserved.fieldPointer).toMatchObject({ field: 1, bit: 7 });
  });

  it('does not write past cmd.data when EDTL < allocation length', async () => {
    const cmd = await run(lu, inq(0, 0, 255, 10));
    expect(cmd.dataInLength).toBe(96);
    expect(cmd.data.length).toBe(10);
  });
});

describe('INQUIRY VPD pages', () => {
  it('lists supported pages ascending and serves each of them', async () => {
    const cmd = await run(lu, inq(1, 0x00, 255));
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    const n = cmd.dataIn.readUInt16BE(2);
    const pages = [...cmd.dataIn.subarray(4, 4 + n)];
    expect(pages).toEqual([0x00, 0x80, 0x83, 0x8f, 0xb0, 0xb1, 0xb2]);
    for (const p of pages) {
      const page = await run(lu, inq(1, p, 255));
      expect(page.status, `page ${p}`).toBe(ScsiStatus.GOOD);
      expect(page.dataIn[1]).toBe(p);
      expect(page.dataInLength).toBe(page.dataIn.readUInt16BE(2) + 4);
    }
  });

  it('rejects an unsupported page with a field pointer to byte 2', async () => {
    const cmd = await run(lu, inq(1, 0x86, 255));
    expectCheck(cmd, [5, 0x24, 0]);
    expect(cmd.fieldPointer.field).toBe(2);
  });

  it('derives serial and NAA from sha256(clusterId/name): same on every node', async () => {
    const other = await LogicalUnit.open(ramDevice({ name: 'disk0' }), CLUSTER, TEST_ENV);
    const third = await LogicalUnit.open(ramDevice({ name: 'disk1' }), CLUSTER, TEST_ENV);
    expect(other.naa.equals(lu.naa)).toBe(true);
    expect(other.serial).toBe(lu.serial);
    expect(third.naa.equals(lu.naa)).toBe(false);
    const digest = identityDigest(CLUSTER.clusterId, 'disk0');
    expect(lu.serial).toBe(digest.subarray(16, 24).toString('hex'));
    await other.close();
    await third.close();
  });

  it('0x83 carries an NAA 6 designator with the company id and a T10 vendor id designator', async () => {
    const cmd = await run(lu, inq(1, 0x83, 255));
    const d = cmd.dataIn;
    expect(d[4]).toBe(0x01); // binary
    expect(d[5]).toBe(0x03); // LU association, NAA
    expect(d[7]).toBe(16);
    expect(d.subarray(8, 24).equals(lu.naa)).toBe(true);
    expect(d[8]! >> 4).toBe(6);
    const cid = ((d[8]! & 0x0f) << 20) | (d[9]! << 12) | (d[10]! << 4) | (d[11]! >> 4);
    expect(cid).toBe(SPINDLE_IEEE_COMPANY_ID);
    expect(d[24]).toBe(0x02); // ASCII
    expect(d[25]).toBe(0x01); // T10 vendor id
    expect(d.toString('latin1', 28, 28 + d[27]!)).toBe(`SPINDLE ${lu.serial}`);
  });

  it('0x80 returns the configured serial when given', async () => {
    const s = await LogicalUnit.open(ramDevice({ serial: 'ABC123' }), CLUSTER, TEST_ENV);
    const cmd = await run(s, inq(1, 0x80, 255));
    expect(cmd.dataIn.toString('latin1', 4)).toBe('ABC123');
    await s.close();
  });

  it('0xB0 is the 3Ch-long SBC-3 page with no UNMAP limits', async () => {
    const cmd = await run(lu, inq(1, 0xb0, 255));
    expect(cmd.dataInLength).toBe(64);
    expect(cmd.dataIn.readUInt16BE(2)).toBe(0x3c);
    expect(cmd.dataIn.readUInt32BE(20)).toBe(0);
    expect(cmd.dataIn.readUInt32BE(24)).toBe(0);
  });

  it('0xB1 reports a non-rotating medium', async () => {
    const cmd = await run(lu, inq(1, 0xb1, 255));
    expect(cmd.dataIn.readUInt16BE(4)).toBe(1);
  });
});

const modeSense6 = (byte1: number, pcPage: number, subpage: number, alloc: number) =>
  makeCommand([0x1a, byte1, pcPage, subpage, alloc, 0], { dataLength: 255 });
const modeSense10 = (byte1: number, pcPage: number, subpage: number, alloc: number) =>
  makeCommand([0x5a, byte1, pcPage, subpage, 0, 0, 0, alloc >> 8, alloc & 0xff, 0], { dataLength: 512 });

describe('MODE SENSE', () => {
  it('MODE SENSE(6) all pages: header, short block descriptor, page_0 pages ascending', async () => {
    const cmd = await run(lu, modeSense6(0, 0x3f, 0, 255));
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    const d = cmd.dataIn;
    expect(d[0]).toBe(cmd.dataInLength - 1);
    expect(d[2]).toBe(0x10); // DPOFUA, not write protected
    expect(d[3]).toBe(8);
    expect(d.readUInt32BE(4)).toBe(1024);
    expect(d.readUIntBE(9, 3)).toBe(512);
    let p = 12;
    const pages: number[] = [];
    while (p < d.length) {
      pages.push(d[p]! & 0x3f);
      p += d[p + 1]! + 2;
    }
    expect(pages).toEqual([0x01, 0x02, 0x08, 0x0a, 0x1a, 0x1c]);
    expect(p).toBe(d.length);
  });

  it('WCE follows the write cache mode and WP the read-only flag', async () => {
    const wb = await run(lu, modeSense6(0x08, 0x08, 0, 255)); // DBD
    expect(wb.dataIn[3]).toBe(0); // no block descriptor
    expect(wb.dataIn[4]).toBe(0x08);
    expect(wb.dataIn[6]! & 0x04).toBe(0x04);
    const wt = await run(roLu, modeSense6(0x08, 0x08, 0, 255));
    expect(wt.dataIn[6]! & 0x04).toBe(0);
    expect(wt.dataIn[2]! & 0x80).toBe(0x80);
  });

  it('changeable values: WCE only in caching; saved values are not supported without a stateDir', async () => {
    const ch = await run(lu, modeSense6(0x08, 0x48, 0, 255));
    expect(ch.status).toBe(ScsiStatus.GOOD);
    expect(ch.dataIn[4]).toBe(0x08); // PS 0: not savable
    expect(ch.dataIn[6]).toBe(0x04); // WCE
    expect([...ch.dataIn.subarray(7)].every((b) => b === 0)).toBe(true);
    const saved = await run(lu, modeSense6(0, 0xc8, 0, 255));
    expectCheck(saved, [5, 0x39, 0]);
  });

  it('MODE SENSE(10) with LLBAA returns a 16-byte descriptor and LONGLBA', async () => {
    const cmd = await run(lu, modeSense10(0x10, 0x0a, 0, 512));
    const d = cmd.dataIn;
    expect(d.readUInt16BE(0)).toBe(cmd.dataInLength - 2);
    expect(d[4]).toBe(1);
    expect(d.readUInt16BE(6)).toBe(16);
    expect(Number(d.readBigUInt64BE(8))).toBe(1024);
    expect(d.readUInt32BE(20)).toBe(512);
    expect(d[24]).toBe(0x0a);
    const short = await run(lu, modeSense10(0, 0x0a, 0, 512));
    expect(short.dataIn.readUInt16BE(6)).toBe(8);
  });

  it('rejects bad pages, subpages and reserved bits with field pointers', async () => {
    const badPage = await run(lu, modeSense6(0, 0x1d, 0, 255));
    expectCheck(badPage, [5, 0x24, 0]);
    expect(badPage.fieldPointer).toMatchObject({ field: 2, bit: 5 });
    const badSub = await run(lu, modeSense6(0, 0x3f, 0x01, 255));
    expectCheck(badSub, [5, 0x24, 0]);
    expect(badSub.fieldPointer.field).toBe(3);
    const allSub = await run(lu, modeSense6(0, 0x3f, 0xff, 255));
    expect(allSub.status).toBe(ScsiStatus.GOOD);
    const pageSub = await run(lu, modeSense6(0, 0x08, 0xff, 255));
    expect(pageSub.status).toBe(ScsiStatus.GOOD); // page 08h and its (no) subpages
    const unknownSub = await run(lu, modeSense6(0, 0x08, 0x01, 255));
    expect(unknownSub.fieldPointer.field).toBe(3);
    const llbaaIn6 = await run(lu, modeSense6(0x10, 0x3f, 0, 255));
    expect(llbaaIn6.fieldPointer).toMatchObject({ field: 1, bit: 4 });
  });

  it('truncates to the allocation length', async () => {
    const cmd = await run(lu, modeSense6(0, 0x3f, 0, 4));
    expect(cmd.dataInLength).toBe(4);
    expect(cmd.data[4]).toBe(0xee);
  });
});

describe('TEST UNIT READY, REQUEST SENSE, START STOP UNIT', () => {
  it('TEST UNIT READY is GOOD and checks reserved bytes', async () => {
    expect((await run(lu, makeCommand([0, 0, 0, 0, 0, 0]))).status).toBe(ScsiStatus.GOOD);
    const bad = await run(lu, makeCommand([0, 0, 0, 0x10, 0, 0]));
    expectCheck(bad, [5, 0x24, 0]);
    expect(bad.fieldPointer).toMatchObject({ field: 3, bit: 4 });
  });

  it('REQUEST SENSE reports NO SENSE in fixed or descriptor format', async () => {
    const fixed = await run(lu, makeCommand([0x03, 0, 0, 0, 252, 0], { dataLength: 252 }));
    expect(fixed.status).toBe(ScsiStatus.GOOD);
    expect(fixed.dataInLength).toBe(18);
    expect(fixed.dataIn[0]).toBe(0x70);
    expect([fixed.dataIn[2], fixed.dataIn[12], fixed.dataIn[13]]).toEqual([0, 0, 0]);
    const desc = await run(lu, makeCommand([0x03, 1, 0, 0, 252, 0], { dataLength: 252 }));
    expect([...desc.dataIn]).toEqual([0x72, 0, 0, 0, 0, 0, 0, 0]);
    const short = await run(lu, makeCommand([0x03, 0, 0, 0, 4, 0], { dataLength: 252 }));
    expect(short.dataInLength).toBe(4);
  });

  it('START STOP UNIT accepts valid requests and rejects reserved fields', async () => {
    expect((await run(lu, makeCommand([0x1b, 0, 0, 0, 0x01, 0]))).status).toBe(ScsiStatus.GOOD);
    expect((await run(lu, makeCommand([0x1b, 1, 0, 0, 0x00, 0]))).status).toBe(ScsiStatus.GOOD);
    expect((await run(lu, makeCommand([0x1b, 0, 0, 2, 0x20, 0]))).status).toBe(ScsiStatus.GOOD);
    const pc = await run(lu, makeCommand([0x1b, 0, 0, 0, 0x40, 0]));
    expectCheck(pc, [5, 0x24, 0]);
    expect(pc.fieldPointer).toMatchObject({ field: 4, bit: 7 });
    const res = await run(lu, makeCommand([0x1b, 0, 0, 0, 0x08, 0]));
    expect(res.fieldPointer).toMatchObject({ field: 4, bit: 3 });
    const mod = await run(lu, makeCommand([0x1b, 0, 0, 1, 0x01, 0]));
    expect(mod.fieldPointer).toMatchObject({ field: 3, bit: 3 });
  });
});

const rsoc = (options: number, op: number, sa: number, alloc = 4096) =>
  makeCommand(
    [
      0xa3,
      0x0c,
      options,
      op,
      sa >> 8,
      sa & 0xff,
      alloc >>> 24,
      (alloc >> 16) & 0xff,
      (alloc >> 8) & 0xff,
      alloc & 0xff,
      0,
      0,
    ],
    {
      dataLength: alloc,
    },
  );

describe('REPORT SUPPORTED OPERATION CODES (SPC-4 6.35)', () => {
  it('lists every command of the dispatch table', async () => {
    const cmd = await run(lu, rsoc(0, 0, 0));
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    const d = cmd.dataIn;
    const served = COMMANDS.filter((c) => c.supported === undefined || c.supported(lu));
    expect(d.readUInt32BE(0)).toBe(served.length * 8);
    const ops = [];
    for (let p = 4; p < d.length; p += 8) ops.push(d[p]);
    expect(ops).toEqual(served.map((c) => c.opcode));
    const rc16 = served.findIndex((c) => c.opcode === 0x9e);
    expect(d[4 + rc16 * 8 + 5]).toBe(0x01); // SERVACTV
    expect(d.readUInt16BE(4 + rc16 * 8 + 2)).toBe(0x10);
    expect(d.readUInt16BE(4 + rc16 * 8 + 6)).toBe(16);
  });

  it('RCTD adds a 12-byte timeouts descriptor per command', async () => {
    const cmd = await run(lu, rsoc(0x80, 0, 0));
    const served = COMMANDS.filter((c) => c.supported === undefined || c.supported(lu));
    expect(cmd.dataIn.readUInt32BE(0)).toBe(served.length * 20);
    expect(cmd.dataIn[4 + 5]! & 0x02).toBe(0x02);
  });

  it('one command: READ(10) usage shows DPO/FUA, matching MODE SENSE DPOFUA', async () => {
    const cmd = await run(lu, rsoc(1, 0x28, 0));
    expect(cmd.status).toBe(ScsiStatus.GOOD);
    expect(cmd.dataIn[1]! & 0x07).toBe(0b011);
    expect(cmd.dataIn.readUInt16BE(2)).toBe(10);
    expect(cmd.dataIn[4]).toBe(0x28);
    expect(cmd.dataIn[5]! & 0x18).toBe(0x18);
    const w = await run(lu, rsoc(1, 0x2a, 0));
    expect(w.dataIn[5]! & 0x18).toBe(0x18);
  });

  it('one command with service action, unsupported commands, and option errors', async () => {
    const rc16 = await run(lu, rsoc(2, 0x9e, 0x10));
    expect(rc16.dataIn[1]! & 7).toBe(0b011);
    expect(rc16.dataIn.readUInt16BE(2)).toBe(16);
    const unsupported = await run(lu, rsoc(1, 0x02, 0));
    expect(unsupported.status).toBe(ScsiStatus.GOOD);
    expect(unsupported.dataIn[1]! & 7).toBe(0b001);
    const saOnNonSa = await run(lu, rsoc(2, 0x28, 0));
    expectCheck(saOnNonSa, [5, 0x24, 0]);
    const noSaOnSa = await run(lu, rsoc(1, 0x9e, 0));
    expectCheck(noSaOnSa, [5, 0x24, 0]);
    const badOption = await run(lu, rsoc(7, 0, 0));
    expect(badOption.fieldPointer).toMatchObject({ field: 2, bit: 2 });
  });
});

describe('REPORT LUNS reaching the LU worker', () => {
  it('reports the addressed LUN', async () => {
    const cmd = makeCommand([0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], { dataLength: 256 });
    cmd.lun = 3;
    await run(lu, cmd);
    expect([...cmd.dataIn]).toEqual([0, 0, 0, 8, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0]);
  });
});
