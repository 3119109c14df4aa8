/**
 * EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18), on RAM and file LUs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import { makeCommand, openLu, run, tempDir, type StoreKind, type TestCommand } from './helpers.ts';

/** Identification descriptor CSCD naming `lu` by its NAA designator (SPC-4 6.4.5.6). */
function target(lu: LogicalUnit, blockLength = lu.blockSize, type = 0xe4): Buffer {
  const d = Buffer.alloc(32);
  d[0] = type;
  d[1] = 0x00; // LU ID TYPE 0 | NUL 0 | peripheral device type 0
  d[4] = 0x01; // CODE SET binary
  d[5] = 0x03; // association LU | NAA
  d[7] = lu.naa.length;
  lu.naa.copy(d, 8);
  d.writeUIntBE(blockLength, 29, 3);
  return d;
}

/** Block→block segment (SPC-4 6.4.6.5). */
function segment(src: number, dst: number, blocks: number, srcLba: number, dstLba: number, type = 0x02): Buffer {
  const s = Buffer.alloc(28);
  s[0] = type;
  s.writeUInt16BE(0x18, 2);
  s.writeUInt16BE(src, 4);
  s.writeUInt16BE(dst, 6);
  s.writeUInt16BE(blocks, 10);
  s.writeBigUInt64BE(BigInt(srcLba), 12);
  s.writeBigUInt64BE(BigInt(dstLba), 20);
  return s;
}

function parameterList(listId: number, usage: number, targets: Buffer[], segments: Buffer[]): Buffer {
  const t = Buffer.concat(targets);
  const s = Buffer.concat(segments);
  const h = Buffer.alloc(16);
  h[0] = listId;
  h[1] = usage << 3;
  h.writeUInt16BE(t.length, 2);
  h.writeUInt32BE(s.length, 8);
  return Buffer.concat([h, t, s]);
}

function xcopy(list: Buffer, paramLength = list.length, nexus = 1): TestCommand {
  const cdb = new Array<number>(16).fill(0);
  cdb[0] = 0x83;
  cdb[10] = (paramLength >>> 24) & 0xff;
  cdb[11] = (paramLength >>> 16) & 0xff;
  cdb[12] = (paramLength >>> 8) & 0xff;
  cdb[13] = paramLength & 0xff;
  const c = makeCommand(cdb, { dataOut: list });
  c.nexus = nexus;
  return c;
}

function rcr(sa: number, listId: number, alloc = 1024, nexus = 1): TestCommand {
  const cdb = new Array<number>(16).fill(0);
  cdb[0] = 0x84;
  cdb[1] = sa;
  cdb[2] = listId;
  cdb[12] = alloc >> 8;
  cdb[13] = alloc & 0xff;
  const c = makeCommand(cdb, { dataLength: alloc });
  c.nexus = nexus;
  return c;
}

async function writeBlocks(lu: LogicalUnit, lba: number, data: Buffer): Promise<void> {
  const blocks = data.length / lu.blockSize;
  const w = makeCommand([0x2a, 0, 0, 0, (lba >> 8) & 0xff, lba & 0xff, 0, blocks >> 8, blocks & 0xff, 0], {
    dataOut: data,
  });
  expect((await run(lu, w)).status).toBe(ScsiStatus.GOOD);
}

async function readBlocks(lu: LogicalUnit, lba: number, blocks: number): Promise<Buffer> {
  const r = makeCommand([0x28, 0, 0, 0, (lba >> 8) & 0xff, lba & 0xff, 0, blocks >> 8, blocks & 0xff, 0], {
    dataLength: blocks * lu.blockSize,
  });
  expect((await run(lu, r)).status).toBe(ScsiStatus.GOOD);
  return Buffer.from(r.dataIn);
}

function expectCheck(cmd: TestCommand, triple: number[]) {
  expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
  expect(cmd.senseTriple).toEqual(triple);
}

const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));

for (const kind of ['ram', 'file'] as StoreKind[]) {
  describe(`EXTENDED COPY on a ${kind} store`, () => {
    let tmp: { dir: string; cleanup: () => void };
    let lu: LogicalUnit;
    let other: LogicalUnit;
    beforeAll(async () => {
      tmp = tempDir();
      lu = await openLu(kind, tmp.dir, {}, 8192);
      other = await openLu(kind, tmp.dir, { name: 'disk1' }, 8192);
    });
    afterAll(async () => {
      await lu.close();
      await other.close();
      tmp.cleanup();
    });

    it('copies blocks within one LU, across chunk boundaries', async () => {
      const data = pattern(4000 * 512, 3);
      await writeBlocks(lu, 0, data.subarray(0, 2000 * 512));
      await writeBlocks(lu, 2000, data.subarray(2000 * 512));
      const list = parameterList(1, 0b10, [target(lu)], [segment(0, 0, 4000, 0, 4100)]);
      const cmd = await run(lu, xcopy(list));
      expect(cmd.status).toBe(ScsiStatus.GOOD);
      expect(cmd.dataOutWanted).toBe(list.length);
      const back = Buffer.concat([await readBlocks(lu, 4100, 2000), await readBlocks(lu, 6100, 2000)]);
      expect(back.equals(data)).toBe(true);
    });

    it('copies to another LU of the same worker, resolved by its NAA designator', async () => {
      const data = pattern(16 * 512, 9);
      await writeBlocks(lu, 10, data);
      const list = parameterList(0, 0b11, [target(lu), target(other)], [segment(0, 1, 16, 10, 20)]);
      expect((await run(lu, xcopy(list))).status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(other, 20, 16)).equals(data)).toBe(true);
    });

    it('holds results for LIST ID USAGE 00b: COPY STATUS reports completion and bytes', async () => {
      expectCheck(await run(lu, rcr(0, 7)), [5, 0x24, 0]);
      const list = parameterList(7, 0b00, [target(lu)], [segment(0, 0, 8, 0, 100), segment(0, 0, 8, 8, 108)]);
      expect((await run(lu, xcopy(list))).status).toBe(ScsiStatus.GOOD);
      const st = await run(lu, rcr(0, 7));
      expect(st.status).toBe(ScsiStatus.GOOD);
      expect(st.dataInLength).toBe(12);
      expect(st.dataIn.readUInt32BE(0)).toBe(8);
      expect(st.dataIn[4]).toBe(0x00); // completed without errors
      expect(st.dataIn.readUInt16BE(5)).toBe(2);
      expect(st.dataIn[7]).toBe(0); // bytes
      expect(st.dataIn.readUInt32BE(8)).toBe(16 * 512);
      // Another nexus has no such list.
      expectCheck(await run(lu, rcr(0, 7, 1024, 2)), [5, 0x24, 0]);
    });

    it('reports beyond-capacity segments with COPY ABORTED, segment number and target sense', async () => {
      const list = parameterList(9, 0b00, [target(lu)], [segment(0, 0, 1, 0, 200), segment(0, 0, 16, 0, 8190)]);
      const cmd = await run(lu, xcopy(list));
      expectCheck(cmd, [0x0a, 0, 0]);
      expect(cmd.sense.readUInt32BE(8)).toBe(1); // segment 1
      expect(cmd.fieldPointer).toMatchObject({ sksv: true, cd: false, field: 16 + 32 + 28 + 20 });
      expect(cmd.senseLength).toBe(36);
      expect([cmd.sense[18 + 2]! & 0x0f, cmd.sense[18 + 12], cmd.sense[18 + 13]]).toEqual([5, 0x21, 0]);
      const fsd = await run(lu, rcr(4, 9));
      expect(fsd.status).toBe(ScsiStatus.GOOD);
      expect(fsd.dataIn[60]).toBe(ScsiStatus.CHECK_CONDITION);
      expect(fsd.dataIn.readUInt16BE(62)).toBe(36);
      expect(fsd.dataIn[64 + 2]! & 0x0f).toBe(0x0a);
      const st = await run(lu, rcr(0, 9));
      expectCheck(st, [5, 0x24, 0]); // reported, no longer held
    });
  });
}

describe('EXTENDED COPY parameter list checks', () => {
  let tmp: { dir: string; cleanup: () => void };
  let lu: LogicalUnit;
  beforeAll(async () => {
    tmp = tempDir();
    lu = await openLu('ram', tmp.dir, { name: 'chk' }, 4096);
  });
  afterAll(async () => {
    await lu.close();
    tmp.cleanup();
  });
  const ok = () => parameterList(1, 0b10, [target(lu)], [segment(0, 0, 1, 0, 10)]);

  it('zero length is GOOD; truncated lists are PARAMETER LIST LENGTH ERROR', async () => {
    expect((await run(lu, xcopy(Buffer.alloc(0)))).status).toBe(ScsiStatus.GOOD);
    const list = ok();
    expectCheck(await run(lu, xcopy(list.subarray(0, 16 + 31))), [5, 0x1a, 0]);
    expectCheck(await run(lu, xcopy(list.subarray(0, list.length - 1))), [5, 0x1a, 0]);
    expectCheck(await run(lu, xcopy(list.subarray(0, 10))), [5, 0x1a, 0]);
  });

  it('too many target / segment descriptors, and lists longer than the maximum', async () => {
    const nine = Array.from({ length: 9 }, () => target(lu));
    expectCheck(await run(lu, xcopy(parameterList(1, 0, nine, [segment(0, 0, 1, 0, 10)]))), [5, 0x26, 0x06]);
    const segs = Array.from({ length: 65 }, () => segment(0, 0, 1, 0, 10));
    expectCheck(await run(lu, xcopy(parameterList(2, 0, [target(lu)], segs))), [5, 0x26, 0x08]);
    const many = Array.from({ length: 140 }, () => segment(0, 0, 1, 0, 10));
    expectCheck(await run(lu, xcopy(parameterList(3, 0, nine, many))), [5, 0x1a, 0]);
  });

  it('unsupported descriptor type codes', async () => {
    const fc = parameterList(1, 0, [target(lu, 512, 0xe0)], [segment(0, 0, 1, 0, 10)]);
    const r1 = await run(lu, xcopy(fc));
    expectCheck(r1, [5, 0x26, 0x07]);
    expect(r1.fieldPointer).toMatchObject({ cd: false, field: 16 });
    const stream = parameterList(1, 0, [target(lu)], [segment(0, 0, 1, 0, 10, 0x03)]);
    expectCheck(await run(lu, xcopy(stream)), [5, 0x26, 0x09]);
  });

  it('header fields: reserved LIST ID USAGE, a list id with usage 11b, reserved CDB bytes', async () => {
    const list = ok();
    list[1] = 0b01 << 3;
    expect((await run(lu, xcopy(list))).fieldPointer).toMatchObject({ cd: false, field: 1, bit: 4 });
    list[1] = 0b11 << 3;
    expect((await run(lu, xcopy(list))).fieldPointer).toMatchObject({ cd: false, field: 0, bit: 7 });
    const cmd = xcopy(ok());
    cmd.cdb[5] = 1;
    expect((await run(lu, cmd)).fieldPointer).toMatchObject({ cd: true, field: 5, bit: 0 });
  });

  it('an index beyond the CSCD list or an unknown designator aborts the copy', async () => {
    const badIndex = parameterList(1, 0b10, [target(lu)], [segment(0, 1, 1, 0, 10)]);
    expectCheck(await run(lu, xcopy(badIndex)), [0x0a, 0x08, 0x04]);
    const stranger = target(lu);
    stranger[20]! ^= 0xff;
    const unknown = parameterList(1, 0b10, [stranger], [segment(0, 0, 1, 0, 10)]);
    expectCheck(await run(lu, xcopy(unknown)), [0x0a, 0x0d, 0x02]);
    // SPC-4: LU ID TYPE is ignored for identification descriptors.
    const luIdType = ok();
    luIdType[16 + 1] = 0xc0;
    expect((await run(lu, xcopy(luIdType))).status).toBe(ScsiStatus.GOOD);
  });

  it('OPERATING PARAMETERS reports the enforced limits', async () => {
    const op = await run(lu, rcr(3, 0));
    expect(op.status).toBe(ScsiStatus.GOOD);
    const d = op.dataIn;
    expect(d.readUInt32BE(0)).toBe(42);
    expect(d.readUInt16BE(8)).toBe(8);
    expect(d.readUInt16BE(10)).toBe(64);
    expect(d.readUInt32BE(12)).toBe(4096);
    expect(d[43]).toBe(2);
    expect([d[44], d[45]]).toEqual([0x02, 0xe4]);
    const truncated = await run(lu, rcr(3, 0, 8));
    expect(truncated.dataInLength).toBe(8);
  });

  it('the Third-party Copy VPD page lists the copy commands, and 3PC is set', async () => {
    const std = await run(lu, makeCommand([0x12, 0, 0, 0, 96, 0], { dataLength: 96 }));
    expect(std.dataIn[5]! & 0x08).toBe(0x08);
    const vpd = await run(lu, makeCommand([0x12, 1, 0x8f, 1, 0, 0], { dataLength: 256 }));
    expect(vpd.status).toBe(ScsiStatus.GOOD);
    const d = vpd.dataIn;
    expect(d[1]).toBe(0x8f);
    expect(d.readUInt16BE(4)).toBe(0x0001);
    const listLength = d[8]!;
    expect([...d.subarray(9, 9 + listLength)]).toEqual([0x83, 1, 0x00, 0x84, 3, 0x00, 0x03, 0x04]);
    expect(d.readUInt16BE(2) + 4).toBe(vpd.dataInLength);
  });
});
