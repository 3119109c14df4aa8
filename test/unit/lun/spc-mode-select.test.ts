/**
 * MODE SELECT (SPC-4 6.9/6.10), saved mode pages, MODE PARAMETERS CHANGED unit
 * attentions, LOG SENSE / LOG SELECT and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import { CLUSTER, TEST_ENV, makeCommand, ramDevice, run, tempDir, type TestCommand } from './helpers.ts';

let lu: LogicalUnit;
let tmp: { dir: string; cleanup: () => void };
beforeAll(async () => {
  lu = await LogicalUnit.open(ramDevice({ writeCache: 'writeback' }), CLUSTER, TEST_ENV);
  tmp = tempDir();
});
afterAll(async () => {
  await lu.close();
  tmp.cleanup();
});

const modeSense6 = (byte1: number, page: number, sub: number, alloc: number, nexus = 1) => {
  const c = makeCommand([0x1a, byte1, page, sub, alloc, 0], { dataLength: alloc });
  c.nexus = nexus;
  return c;
};
const modeSelect6 = (byte1: number, data: Buffer, nexus = 1, paramLength = data.length) => {
  const c = makeCommand([0x15, byte1, 0, 0, paramLength, 0], { dataOut: data });
  c.nexus = nexus;
  return c;
};
const modeSelect10 = (byte1: number, data: Buffer, nexus = 1) => {
  const c = makeCommand([0x55, byte1, 0, 0, 0, 0, 0, data.length >> 8, data.length & 0xff, 0], { dataOut: data });
  c.nexus = nexus;
  return c;
};
const tur = (nexus: number) => {
  const c = makeCommand([0, 0, 0, 0, 0, 0]);
  c.nexus = nexus;
  return c;
};

function expectCheck(cmd: TestCommand, triple: number[]) {
  expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
  expect(cmd.senseTriple).toEqual(triple);
}

/** The current page (DBD) as MODE SENSE(6) returns it, PS cleared, as a MODE SELECT(6) list. */
async function currentPageList(unit: LogicalUnit, page: number, sub = 0): Promise<Buffer> {
  const ms = await run(unit, modeSense6(0x08, page, sub, 255));
  expect(ms.status).toBe(ScsiStatus.GOOD);
  const list = Buffer.from(ms.dataIn);
  list[0] = 0; // MODE DATA LENGTH: reserved in MODE SELECT
  list[2] = 0; // device-specific
  list[4] = list[4]! & 0x7f; // PS reserved
  return list;
}

describe('MODE SELECT: caching WCE and control SWP take effect', () => {
  it('clearing WCE switches the LU to write-through and MODE SENSE reports it', async () => {
    await run(lu, tur(1)); // make nexus 1 known
    await run(lu, tur(2)); // and nexus 2
    const list = await currentPageList(lu, 0x08);
    expect(list[6]! & 0x04).toBe(0x04);
    list[6] = list[6]! & ~0x04;
    const sel = await run(lu, modeSelect6(0x10, list));
    expect(sel.status).toBe(ScsiStatus.GOOD);
    expect(lu.writeCacheEnabled).toBe(false);
    const after = await run(lu, modeSense6(0x08, 0x08, 0, 255));
    expect(after.dataIn[6]! & 0x04).toBe(0);
    // Default values still report the configured write-back mode.
    const def = await run(lu, modeSense6(0x08, 0x88, 0, 255));
    expect(def.dataIn[6]! & 0x04).toBe(0x04);
  });

  it('establishes MODE PARAMETERS CHANGED for other nexuses only, once', async () => {
    const other = await run(lu, tur(2));
    expectCheck(other, [6, 0x2a, 0x01]);
    const again = await run(lu, tur(2));
    expect(again.status).toBe(ScsiStatus.GOOD);
    const self = await run(lu, tur(1));
    expect(self.status).toBe(ScsiStatus.GOOD);
  });

  it('INQUIRY is not failed by a pending UA; REQUEST SENSE reports and clears it', async () => {
    await run(lu, tur(3));
    const list = await currentPageList(lu, 0x08);
    list[6] = list[6]! | 0x04; // back to write-back
    expect((await run(lu, modeSelect6(0x10, list))).status).toBe(ScsiStatus.GOOD);
    expect(lu.writeCacheEnabled).toBe(true);
    const inq = makeCommand([0x12, 0, 0, 0, 96, 0], { dataLength: 96 });
    inq.nexus = 3;
    expect((await run(lu, inq)).status).toBe(ScsiStatus.GOOD);
    const rs = makeCommand([0x03, 0, 0, 0, 18, 0], { dataLength: 18 });
    rs.nexus = 3;
    await run(lu, rs);
    expect(rs.status).toBe(ScsiStatus.GOOD);
    expect([rs.dataIn[2]! & 0x0f, rs.dataIn[12], rs.dataIn[13]]).toEqual([6, 0x2a, 0x01]);
    expect((await run(lu, tur(3))).status).toBe(ScsiStatus.GOOD);
    await run(lu, tur(2)); // consume nexus 2's UA
  });

  it('SWP makes writes fail with DATA PROTECT and sets WP in the header', async () => {
    const list = await currentPageList(lu, 0x0a);
    list[4 + 4] = list[4 + 4]! | 0x08;
    expect((await run(lu, modeSelect10(0x10, toTen(list)))).status).toBe(ScsiStatus.GOOD);
    const ms = await run(lu, modeSense6(0x08, 0x0a, 0, 255));
    expect(ms.dataIn[2]! & 0x80).toBe(0x80);
    expect(ms.dataIn[8]! & 0x08).toBe(0x08);
    const w = makeCommand([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], { dataOut: Buffer.alloc(512) });
    expectCheck(await run(lu, w), [7, 0x27, 0]);
    list[8] = list[8]! & ~0x08;
    expect((await run(lu, modeSelect6(0x10, list))).status).toBe(ScsiStatus.GOOD);
    const w2 = makeCommand([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], { dataOut: Buffer.alloc(512) });
    expect((await run(lu, w2)).status).toBe(ScsiStatus.GOOD);
  });
});

/** A MODE SELECT(6) parameter list as the MODE SELECT(10) equivalent. */
function toTen(six: Buffer): Buffer {
  const ten = Buffer.alloc(six.length + 4);
  ten[2] = six[1]!; // MEDIUM TYPE
  ten[3] = six[2]!;
  ten.writeUInt16BE(six[3]!, 6);
  six.copy(ten, 8, 4);
  return ten;
}

describe('MODE SELECT parameter checks', () => {
  it('changing a non-changeable bit is INVALID FIELD IN PARAMETER LIST at that byte and bit', async () => {
    const list = await currentPageList(lu, 0x0a);
    list[4 + 2] = list[4 + 2]! | 0x04; // D_SENSE
    const sel = await run(lu, modeSelect6(0x10, list));
    expectCheck(sel, [5, 0x26, 0]);
    expect(sel.fieldPointer).toMatchObject({ sksv: true, cd: false, bpv: true, field: 6, bit: 2 });
  });

  it('a short list is PARAMETER LIST LENGTH ERROR; zero length is GOOD', async () => {
    const list = await currentPageList(lu, 0x08);
    expectCheck(await run(lu, modeSelect6(0x10, list.subarray(0, list.length - 1))), [5, 0x1a, 0]);
    expectCheck(await run(lu, modeSelect6(0x10, list.subarray(0, 3))), [5, 0x1a, 0]);
    expect((await run(lu, modeSelect6(0x10, Buffer.alloc(0)))).status).toBe(ScsiStatus.GOOD);
  });

  it('unknown page, wrong page length, PS set, bad block length and MRIE are pointed at', async () => {
    const unknown = Buffer.from([0, 0, 0, 0, 0x1d, 2, 0, 0]);
    const u = await run(lu, modeSelect6(0x10, unknown));
    expect(u.fieldPointer).toMatchObject({ cd: false, field: 4, bit: 5 });
    const list = await currentPageList(lu, 0x08);
    list[5] = 0x10;
    expect((await run(lu, modeSelect6(0x10, list))).fieldPointer).toMatchObject({ field: 5, bit: 7 });
    const ps = await currentPageList(lu, 0x08);
    ps[4] = ps[4]! | 0x80;
    expect((await run(lu, modeSelect6(0x10, ps))).fieldPointer).toMatchObject({ field: 4, bit: 7 });
    const withDesc = Buffer.alloc(12);
    withDesc[3] = 8;
    withDesc.writeUIntBE(4096, 4 + 5, 3);
    expect((await run(lu, modeSelect6(0x10, withDesc))).fieldPointer).toMatchObject({ field: 9 });
    withDesc.writeUIntBE(512, 4 + 5, 3);
    expect((await run(lu, modeSelect6(0x10, withDesc))).status).toBe(ScsiStatus.GOOD);
    const ie = await currentPageList(lu, 0x1c);
    ie[4 + 3] = 0x07; // MRIE reserved value
    expect((await run(lu, modeSelect6(0x10, ie))).fieldPointer).toMatchObject({ field: 7, bit: 3 });
    ie[4 + 3] = 0x06;
    ie[4 + 2] = 0x00; // DEXCPT 0
    expect((await run(lu, modeSelect6(0x10, ie))).status).toBe(ScsiStatus.GOOD);
  });

  it('CDB checks: reserved bits, PF = 0 with pages, SP without a state directory', async () => {
    const list = await currentPageList(lu, 0x08);
    expect((await run(lu, modeSelect6(0x12, list))).fieldPointer).toMatchObject({ cd: true, field: 1, bit: 1 });
    expect((await run(lu, modeSelect6(0x00, list))).fieldPointer).toMatchObject({ cd: true, field: 1, bit: 4 });
    expectCheck(await run(lu, modeSelect6(0x11, list)), [5, 0x39, 0]);
    expectCheck(await run(lu, modeSense6(0x08, 0xc8, 0, 255)), [5, 0x39, 0]);
  });

  it('MODE SENSE reports subpages: 0Ah/01h control extension and 3Fh/FFh', async () => {
    const ext = await run(lu, modeSense6(0x08, 0x0a, 0x01, 255));
    expect(ext.status).toBe(ScsiStatus.GOOD);
    expect(ext.dataIn[4]).toBe(0x4a);
    expect(ext.dataIn[5]).toBe(0x01);
    expect(ext.dataIn.readUInt16BE(6)).toBe(28);
    const all = await run(lu, modeSense6(0x08, 0x3f, 0xff, 255));
    const codes: string[] = [];
    for (let p = 4; p < all.dataIn.length; ) {
      const spf = (all.dataIn[p]! & 0x40) !== 0;
      codes.push(`${(all.dataIn[p]! & 0x3f).toString(16)}/${spf ? all.dataIn[p + 1]!.toString(16) : '0'}`);
      p += spf ? all.dataIn.readUInt16BE(p + 2) + 4 : all.dataIn[p + 1]! + 2;
    }
    expect(codes).toEqual(['1/0', '2/0', '8/0', 'a/0', 'a/1', '1a/0', '1c/0']);
  });
});

describe('saved mode pages persist under stateDir', () => {
  it('SP = 1 writes <stateDir>/mode-pages/<device>.json and reopening restores the values', async () => {
    const dev = ramDevice({ name: 'saved0', writeCache: 'writeback' });
    const a = await LogicalUnit.open(dev, { ...CLUSTER, stateDir: tmp.dir }, TEST_ENV);
    const ch = await run(a, modeSense6(0x08, 0x48, 0, 255));
    expect(ch.dataIn[4]! & 0x80).toBe(0x80); // PS: savable
    const list = await currentPageList(a, 0x08);
    list[6] = list[6]! & ~0x04;
    expect((await run(a, modeSelect6(0x11, list))).status).toBe(ScsiStatus.GOOD);
    const file = path.join(tmp.dir, 'mode-pages', 'saved0.json');
    expect(existsSync(file)).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8')).pages['08']).toMatch(/^0812/);
    const saved = await run(a, modeSense6(0x08, 0xc8, 0, 255));
    expect(saved.dataIn[6]! & 0x04).toBe(0);
    await a.close();
    const b = await LogicalUnit.open(dev, { ...CLUSTER, stateDir: tmp.dir }, TEST_ENV);
    expect(b.writeCacheEnabled).toBe(false);
    const cur = await run(b, modeSense6(0x08, 0x08, 0, 255));
    expect(cur.dataIn[6]! & 0x04).toBe(0);
    await b.close();
  });
});

describe('LOG SENSE / LOG SELECT (SPC-4 6.7, 6.8)', () => {
  const logSense = (byte1: number, page: number, sub: number, pointer: number, alloc: number) =>
    makeCommand([0x4d, byte1, page, sub, 0, pointer >> 8, pointer & 0xff, alloc >> 8, alloc & 0xff, 0], {
      dataLength: alloc,
    });

  it('supported pages (00h) and pages and subpages (00h/FFh)', async () => {
    const sp = await run(lu, logSense(0, 0x40, 0, 0, 512));
    expect(sp.status).toBe(ScsiStatus.GOOD);
    expect([...sp.dataIn.subarray(4)]).toEqual([0x00, 0x02, 0x03, 0x0d, 0x0e, 0x2f]);
    const sps = await run(lu, logSense(0, 0x40, 0xff, 0, 512));
    expect(sps.dataIn[0]).toBe(0x40);
    expect(sps.dataIn[1]).toBe(0xff);
    expect(sps.dataIn.readUInt16BE(2)).toBe(14);
  });

  it('temperature page, parameter pointer and truncation', async () => {
    const t = await run(lu, logSense(0, 0x4d, 0, 0, 512));
    expect(t.dataIn.readUInt16BE(2)).toBe(12);
    expect(t.dataIn[9]).toBe(0xff);
    const ptr = await run(lu, logSense(0, 0x4d, 0, 1, 512));
    expect(ptr.dataIn.readUInt16BE(2)).toBe(6);
    expect(ptr.dataIn.readUInt16BE(4)).toBe(1);
    const beyond = await run(lu, logSense(0, 0x4d, 0, 2, 512));
    expect(beyond.fieldPointer).toMatchObject({ cd: true, field: 5 });
    const short = await run(lu, logSense(0, 0x4d, 0, 0, 6));
    expect(short.dataInLength).toBe(6);
  });

  it('rejects SP, unknown pages, and LOG SELECT parameters; PCR alone is GOOD', async () => {
    expectCheck(await run(lu, logSense(1, 0x4d, 0, 0, 512)), [5, 0x24, 0]);
    expect((await run(lu, logSense(0, 0x71, 0, 0, 512))).fieldPointer).toMatchObject({ field: 2, bit: 5 });
    const pcr = makeCommand([0x4c, 0x02, 0x40, 0, 0, 0, 0, 0, 0, 0]);
    expect((await run(lu, pcr)).status).toBe(ScsiStatus.GOOD);
    const data = Buffer.from([0x0d, 0, 0, 6, 0, 0, 0x03, 2, 0, 30]);
    const sel = makeCommand([0x4c, 0, 0x40, 0, 0, 0, 0, 0, data.length, 0], { dataOut: data });
    const r = await run(lu, sel);
    expectCheck(r, [5, 0x26, 0]);
    expect(r.fieldPointer).toMatchObject({ cd: false, field: 4 });
  });
});

describe('REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 6.37)', () => {
  it('reports ATS ATSS CACAS CTSS LURS; REPD gives 16 bytes', async () => {
    const basic = await run(lu, makeCommand([0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], { dataLength: 16 }));
    expect(basic.dataInLength).toBe(4);
    expect(basic.dataIn[0]).toBe(0xf8);
    const ext = await run(lu, makeCommand([0xa3, 0x0d, 0x80, 0, 0, 0, 0, 0, 0, 16, 0, 0], { dataLength: 16 }));
    expect(ext.dataInLength).toBe(16);
    expect(ext.dataIn[3]).toBe(0x0c);
    const bad = await run(lu, makeCommand([0xa3, 0x0d, 0x01, 0, 0, 0, 0, 0, 0, 16, 0, 0], { dataLength: 16 }));
    expect(bad.fieldPointer).toMatchObject({ cd: true, field: 2, bit: 0 });
  });
});
