/**
 * Corner cases of the SBC-4 commands beyond READ/WRITE: WRITE SAME, UNMAP, GET LBA
 * STATUS, COMPARE AND WRITE (and its LU-wide exclusivity), ORWRITE, WRITE ATOMIC,
 * WRITE AND VERIFY, PRE-FETCH, READ DEFECT DATA, SANITIZE, START STOP UNIT with a
 * removable medium and PREVENT ALLOW MEDIUM REMOVAL. Every case runs on RAM and file
 * stores.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { Opcode } from '../../../src/shared/scsi/opcodes.ts';
import type { DeviceConfig } from '../../../src/shared/config-types.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import { executeCommand } from '../../../src/workers/lun/execute.ts';
import type { StoreKind, TestCommand } from './helpers.ts';
import { cdb10, cdb16, makeCommand, openLu, run, tempDir } from './helpers.ts';

const BLOCKS = 2048;

function expectCheck(cmd: TestCommand, triple: [number, number, number]): void {
  expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
  expect(cmd.senseTriple).toEqual(triple);
}
const INVALID_FIELD: [number, number, number] = [5, 0x24, 0];
const LBA_OOR: [number, number, number] = [5, 0x21, 0];

/** 16-byte CDB with an arbitrary byte-1 and the 32-bit length at 10-13 (WRITE SAME(16) etc.). */
function ws16(lba: number, blocks: number, byte1 = 0): number[] {
  return cdb16(Opcode.WRITE_SAME_16, BigInt(lba), blocks, byte1);
}

function caw(lba: number, blocks: number, byte1 = 0): number[] {
  const c = cdb16(Opcode.COMPARE_AND_WRITE, BigInt(lba), 0, byte1);
  c[13] = blocks;
  return c;
}

function unmapList(ranges: [number, number][]): Buffer {
  const b = Buffer.alloc(8 + 16 * ranges.length);
  b.writeUInt16BE(b.length - 2, 0);
  b.writeUInt16BE(16 * ranges.length, 2);
  ranges.forEach(([lba, n], i) => {
    b.writeBigUInt64BE(BigInt(lba), 8 + 16 * i);
    b.writeUInt32BE(n, 16 + 16 * i);
  });
  return b;
}

function unmapCdb(length: number): number[] {
  const c = [Opcode.UNMAP, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  c[7] = length >> 8;
  c[8] = length & 0xff;
  return c;
}

for (const kind of ['ram', 'file'] as StoreKind[]) {
  describe(`SBC-4 extended commands on a ${kind} store`, () => {
    let dir: { dir: string; cleanup: () => void };
    const open: LogicalUnit[] = [];
    beforeAll(() => {
      dir = tempDir();
    });
    afterAll(() => dir.cleanup());
    afterEach(async () => {
      await Promise.all(open.splice(0).map((lu) => lu.close()));
    });
    async function lu(overrides: Partial<DeviceConfig> = {}): Promise<LogicalUnit> {
      const u = await openLu(kind, dir.dir, overrides, BLOCKS);
      open.push(u);
      return u;
    }
    const exec = (u: LogicalUnit, cdb: number[], dataOut?: Buffer, dataLength?: number) =>
      run(u, makeCommand(cdb, { dataOut, dataLength }));
    async function readBlocks(u: LogicalUnit, lba: number, n: number): Promise<Buffer> {
      const r = await exec(u, cdb10(Opcode.READ_10, lba, n), undefined, n * u.blockSize);
      expect(r.status).toBe(ScsiStatus.GOOD);
      return Buffer.from(r.dataIn);
    }

    it('WRITE SAME writes the pattern; 0 blocks means through the last LBA', async () => {
      const u = await lu();
      const pattern = Buffer.alloc(512, 0x5a);
      expect((await exec(u, cdb10(Opcode.WRITE_SAME_10, 10, 3), pattern)).status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(u, 10, 3)).every((b) => b === 0x5a)).toBe(true);
      expect((await readBlocks(u, 13, 1)).every((b) => b === 0)).toBe(true);
      const all = await exec(u, ws16(BLOCKS - 5, 0), Buffer.alloc(512, 0x11));
      expect(all.status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(u, BLOCKS - 5, 5)).every((b) => b === 0x11)).toBe(true);
      expect((await readBlocks(u, BLOCKS - 6, 1)).every((b) => b === 0)).toBe(true);
    });

    it('WRITE SAME checks range, UNMAP/ANCHOR support, WRPROTECT and the data-out size', async () => {
      const u = await lu();
      const p = Buffer.alloc(512);
      expectCheck(await exec(u, ws16(BLOCKS, 0), p), LBA_OOR);
      expectCheck(await exec(u, ws16(BLOCKS - 1, 2), p), LBA_OOR);
      const unmapFull = await exec(u, cdb10(Opcode.WRITE_SAME_10, 0, 1, 0x08), p);
      expectCheck(unmapFull, INVALID_FIELD);
      expect(unmapFull.fieldPointer).toMatchObject({ field: 1, bit: 3 });
      expect((await exec(u, ws16(0, 1, 0x10), p)).fieldPointer).toMatchObject({ field: 1, bit: 4 });
      expect((await exec(u, ws16(0, 1, 0x20), p)).fieldPointer).toMatchObject({ field: 1, bit: 7 });
      expectCheck(await exec(u, ws16(0, 1), Buffer.alloc(256)), [5, 0x0e, 0x03]);
      expectCheck(await exec(u, ws16(0, 1), Buffer.alloc(1024)), [5, 0x0e, 0x03]);
      const ro = await lu({ readOnly: true, name: 'ro' });
      expectCheck(await exec(ro, ws16(0, 1), p), [7, 0x27, 0]);
    });

    it('thin: WRITE SAME UNMAP and UNMAP deallocate, GET LBA STATUS reports it', async () => {
      const u = await lu({ thin: true });
      expect(u.sbc.map).not.toBeNull();
      await exec(u, cdb16(Opcode.WRITE_16, 0n, 64), Buffer.alloc(64 * 512, 0xff));
      const granule = u.sbc.map!.granule;
      // WRITE SAME with UNMAP deallocates whatever the data (LBPRZ = 1: reads zeros).
      expect((await exec(u, ws16(0, 16, 0x08), Buffer.alloc(512, 0x77))).status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(u, 0, 16)).every((b) => b === 0)).toBe(true);
      expect((await readBlocks(u, 16, 1)).every((b) => b === 0xff)).toBe(true);
      const status = await exec(u, [0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0], undefined, 64);
      expect(status.status).toBe(ScsiStatus.GOOD);
      const d = status.dataIn;
      expect(d.readUInt32BE(8 + 4)).toBe(0); // first descriptor at LBA 0
      expect(d.readUInt32BE(8 + 8)).toBe(Math.floor(16 / granule) * granule);
      expect(d[8 + 12]).toBe(1); // deallocated
      expect(d[24 + 12]).toBe(0); // then mapped
      // UNMAP: list validated first; LBA = capacity with 0 blocks is fine.
      const list = unmapList([
        [32, 8],
        [BLOCKS, 0],
      ]);
      expect((await exec(u, unmapCdb(list.length), list)).status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(u, 32, 8)).every((b) => b === 0)).toBe(true);
      expectCheck(await exec(u, unmapCdb(list.length), unmapList([[BLOCKS - 1, 2]])), LBA_OOR);
      expectCheck(await exec(u, unmapCdb(4), Buffer.alloc(4)), [5, 0x1a, 0]);
      expect((await exec(u, unmapCdb(0))).status).toBe(ScsiStatus.GOOD);
      // READ CAPACITY(16): LBPME | LBPRZ.
      const rc = await exec(u, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], undefined, 32);
      expect(rc.dataIn[14]! & 0xc0).toBe(0xc0);
    });

    it('GET LBA STATUS with 8 logical blocks per physical block: the first descriptor starts at the requested LBA', async () => {
      // libiscsi GetLBAStatus.UnmapSingle's second loop: unmap [0, i), ask from i + 1.
      const u = await lu({ thin: true, physicalBlockSize: 4096 });
      expect(u.sbc.map!.granule).toBe(8);
      await exec(u, cdb16(Opcode.WRITE_16, 0n, 264), Buffer.alloc(264 * 512, 0x41));
      const unmap = unmapList([[0, 16]]);
      expect((await exec(u, unmapCdb(unmap.length), unmap)).status).toBe(ScsiStatus.GOOD);
      const lbaStatus = async (lba: number): Promise<{ lba: number; blocks: number; status: number }> => {
        const c = [0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0];
        c[9] = lba;
        const r = await exec(u, c, undefined, 24);
        expect(r.status).toBe(ScsiStatus.GOOD);
        return { lba: Number(r.dataIn.readBigUInt64BE(8)), blocks: r.dataIn.readUInt32BE(16), status: r.dataIn[20]! };
      };
      // SBC-4 5.20.2: the first descriptor's LBA is the STARTING LOGICAL BLOCK ADDRESS,
      // also in the middle of a physical block; LBA 17 is mapped (16..23 was written).
      // (Past LBA 264 a fresh RAM LU is deallocated, a fresh file LU "all mapped".)
      expect(await lbaStatus(17)).toMatchObject({ lba: 17, status: 0 });
      expect(await lbaStatus(16)).toMatchObject({ lba: 16, status: 0 });
      expect(await lbaStatus(1)).toEqual({ lba: 1, blocks: 15, status: 1 });
      // Half a physical block unmapped: zeros are written, the block stays mapped (a
      // physical block is mapped or not as a whole; allocation.ts).
      const half = unmapList([[24, 4]]);
      expect((await exec(u, unmapCdb(half.length), half)).status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(u, 24, 4)).every((b) => b === 0)).toBe(true);
      expect((await readBlocks(u, 28, 4)).every((b) => b === 0x41)).toBe(true);
      expect(await lbaStatus(24)).toMatchObject({ lba: 24, status: 0 });
      expect((await lbaStatus(24)).blocks).toBeGreaterThanOrEqual(264 - 24);
    });

    it('START STOP UNIT POWER CONDITION: the seven values SBC-4 5.25 defines pass and ignore LOEJ; the rest are invalid', async () => {
      const u = await lu({ removable: true });
      const defined = [0x0, 0x1, 0x2, 0x3, 0x7, 0xa, 0xb];
      for (let pc = 0x1; pc <= 0xf; pc++) {
        // LOEJ = 1, START = 0: an eject for START_VALID only (SBC-4 5.25: ignored otherwise).
        const r = await exec(u, [0x1b, 0x01, 0, 0, (pc << 4) | 0x02, 0]);
        if (defined.includes(pc)) {
          expect(r.status, `POWER CONDITION ${pc.toString(16)}h`).toBe(ScsiStatus.GOOD);
          expect((await exec(u, [0, 0, 0, 0, 0, 0])).status).toBe(ScsiStatus.GOOD); // still loaded
        } else {
          // 4h, 6h, 8h, 9h, Ch-Fh reserved and 5h obsolete: SPC-4 3.5, reserved code values
          // in defined fields are reported as errors.
          expectCheck(r, INVALID_FIELD);
          expect(r.fieldPointer).toMatchObject({ cd: true, field: 4, bit: 7 });
        }
      }
    });

    it('UNMAP on a fully provisioned LU is refused, write protection first', async () => {
      const full = await lu();
      const list = unmapList([[0, 1]]);
      expectCheck(await exec(full, unmapCdb(list.length), list), INVALID_FIELD);
      const ro = await lu({ readOnly: true, name: 'ro2' });
      expectCheck(await exec(ro, unmapCdb(list.length), list), [7, 0x27, 0]);
    });

    it('COMPARE AND WRITE writes on match, reports the miscompare offset otherwise', async () => {
      const u = await lu();
      const a = Buffer.alloc(1024, 0x41);
      await exec(u, cdb10(Opcode.WRITE_10, 5, 2), a);
      const data = Buffer.concat([a, Buffer.alloc(1024, 0x42)]);
      expect((await exec(u, caw(5, 2), data)).status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(u, 5, 2)).every((b) => b === 0x42)).toBe(true);
      const bad = await exec(u, caw(5, 2), data); // medium is 'B' now, verify data 'A'
      expectCheck(bad, [0x0e, 0x1d, 0]);
      expect(bad.sense.readUInt32BE(3)).toBe(0);
      expect((await readBlocks(u, 5, 2)).every((b) => b === 0x42)).toBe(true);
      // 0 blocks: GOOD without data, INVALID FIELD when data-out disagrees (256 truncated).
      expect((await exec(u, caw(5, 0))).status).toBe(ScsiStatus.GOOD);
      expectCheck(await exec(u, caw(5, 0), Buffer.alloc(1024)), INVALID_FIELD);
      // Data-out of the wrong size.
      expectCheck(await exec(u, caw(5, 1), Buffer.alloc(2048)), [5, 0x0e, 0x03]);
      expectCheck(await exec(u, caw(BLOCKS - 1, 2), Buffer.alloc(2048)), LBA_OOR);
    });

    it('COMPARE AND WRITE is exclusive: later commands wait and run in order', async () => {
      const u = await lu();
      const a = Buffer.alloc(512, 0x41);
      await exec(u, cdb10(Opcode.WRITE_10, 7, 1), a);
      const cmpWrite = makeCommand(caw(7, 1), { dataOut: Buffer.concat([a, Buffer.alloc(512, 0x43)]) });
      const later = makeCommand(cdb10(Opcode.WRITE_10, 7, 1), { dataOut: Buffer.alloc(512, 0x44) });
      executeCommand(u, cmpWrite);
      executeCommand(u, later);
      await Promise.all([cmpWrite.finished, later.finished]);
      expect(cmpWrite.status).toBe(ScsiStatus.GOOD);
      expect(later.status).toBe(ScsiStatus.GOOD);
      // The WRITE queued behind the COMPARE AND WRITE, so its data is the final one.
      expect((await readBlocks(u, 7, 1)).every((b) => b === 0x44)).toBe(true);
      expect(u.sbc.gate).toBeNull();
    });

    it("another node's hold (cluster COMPARE AND WRITE) queues commands until released or timed out", async () => {
      const u = await lu();
      const settledWithin = (p: Promise<void>, ms: number) =>
        Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
      // The hold reports drained only once nothing of the LU is in flight.
      u.sbc.active++;
      const drained = u.sbc.holdForPeer('peer-1', 60_000);
      expect(await settledWithin(drained, 30), 'drained while a multi-step command runs').toBe(false);
      u.sbc.active--;
      expect(await settledWithin(drained, 1000)).toBe(true);
      expect(u.sbc.gate).not.toBeNull();
      const w = makeCommand(cdb10(Opcode.WRITE_10, 9, 1), { dataOut: Buffer.alloc(512, 0x44) });
      executeCommand(u, w);
      expect(await settledWithin(w.finished, 30), 'a WRITE runs while held').toBe(false);
      u.sbc.releasePeer('peer-1');
      await w.finished;
      expect(w.status).toBe(ScsiStatus.GOOD);
      expect(u.sbc.gate).toBeNull();
      expect((await readBlocks(u, 9, 1)).every((b) => b === 0x44)).toBe(true);
      // A hold whose release never comes (its node died) ends at its TTL.
      await u.sbc.holdForPeer('peer-2', 50);
      const r = makeCommand(cdb10(Opcode.READ_10, 9, 1), { dataLength: 512 });
      executeCommand(u, r);
      expect(await settledWithin(r.finished, 2000)).toBe(true);
      expect(r.status).toBe(ScsiStatus.GOOD);
      expect(u.sbc.peerHolds).toBe(0);
      expect(u.sbc.gate).toBeNull();
    });

    it('a step of a yielding command (EXTENDED COPY chunk) waits for a closed gate and counts as in flight', async () => {
      const u = await lu();
      const settledWithin = <T>(p: Promise<T>, ms: number) =>
        Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
      await u.sbc.holdForPeer('peer-3', 60_000);
      let ran = false;
      const first = u.sbc.step(async () => {
        ran = true;
      });
      expect(await settledWithin(first, 30), 'a step runs while the LU is held').toBe(false);
      expect(ran).toBe(false);
      u.sbc.releasePeer('peer-3');
      await first;
      expect(ran).toBe(true);
      // A hold taken while a step runs reports drained only once the step is done.
      let finish!: () => void;
      const second = u.sbc.step(() => new Promise<void>((r) => (finish = r)));
      await new Promise((r) => setImmediate(r));
      const drained = u.sbc.holdForPeer('peer-4', 60_000);
      expect(await settledWithin(drained, 30), 'drained while a step runs').toBe(false);
      finish();
      await second;
      expect(await settledWithin(drained, 1000)).toBe(true);
      u.sbc.releasePeer('peer-4');
      expect(u.sbc.gate).toBeNull();
    });

    it('ORWRITE ORs, WRITE ATOMIC writes and rejects atomic boundaries', async () => {
      const u = await lu();
      await exec(u, cdb10(Opcode.WRITE_10, 3, 1), Buffer.alloc(512, 0x0f));
      const or = await exec(u, cdb16(Opcode.ORWRITE_16, 3n, 1), Buffer.alloc(512, 0xf0));
      expect(or.status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(u, 3, 1)).every((b) => b === 0xff)).toBe(true);
      const wa = cdb16(Opcode.WRITE_ATOMIC_16, 4n, 0);
      wa[13] = 2;
      expect((await exec(u, wa, Buffer.alloc(1024, 0x33))).status).toBe(ScsiStatus.GOOD);
      expect((await readBlocks(u, 4, 2)).every((b) => b === 0x33)).toBe(true);
      wa[11] = 1; // ATOMIC BOUNDARY
      expect((await exec(u, wa, Buffer.alloc(1024))).fieldPointer).toMatchObject({ field: 10 });
      const oob = cdb16(Opcode.WRITE_ATOMIC_16, BigInt(BLOCKS), 0);
      expectCheck(await exec(u, oob), LBA_OOR);
    });

    it('WRITE AND VERIFY writes and verifies; BYTCHK 10b is reserved', async () => {
      const u = await lu();
      const wv = await exec(u, cdb10(Opcode.WRITE_AND_VERIFY_10, 9, 1, 0x02), Buffer.alloc(512, 0x66));
      expect(wv.status).toBe(ScsiStatus.GOOD);
      expect(wv.dataOutWanted).toBe(512);
      expect((await readBlocks(u, 9, 1)).every((b) => b === 0x66)).toBe(true);
      expect((await exec(u, cdb10(Opcode.WRITE_AND_VERIFY_10, 9, 1, 0x04), Buffer.alloc(512))).fieldPointer).toMatchObject({
        field: 1,
        bit: 2,
      });
      // VERIFY BYTCHK 11b: one block against every block.
      await exec(u, cdb10(Opcode.WRITE_SAME_10, 20, 4), Buffer.alloc(512, 0x21));
      expect((await exec(u, cdb10(Opcode.VERIFY_10, 20, 4, 0x06), Buffer.alloc(512, 0x21))).status).toBe(ScsiStatus.GOOD);
      await exec(u, cdb10(Opcode.WRITE_10, 22, 1), Buffer.alloc(512, 0x22));
      const mis = await exec(u, cdb10(Opcode.VERIFY_10, 20, 4, 0x06), Buffer.alloc(512, 0x21));
      expectCheck(mis, [0x0e, 0x1d, 0]);
      expect(mis.sense.readUInt32BE(3)).toBe(2 * 512);
    });

    it('PRE-FETCH and READ DEFECT DATA', async () => {
      const u = await lu();
      expect((await exec(u, cdb10(Opcode.PRE_FETCH_10, 0, 8, 0x02))).status).toBe(ScsiStatus.GOOD);
      expectCheck(await exec(u, cdb10(Opcode.PRE_FETCH_10, BLOCKS, 0)), LBA_OOR);
      expect((await exec(u, cdb10(Opcode.PRE_FETCH_10, 0, 1, 0x04))).fieldPointer).toMatchObject({ field: 1, bit: 2 });
      const rdd = await exec(u, [0x37, 0, 0x18, 0, 0, 0, 0, 0, 32, 0], undefined, 32);
      expect(rdd.status).toBe(ScsiStatus.GOOD);
      expect([...rdd.dataIn]).toEqual([0, 0x18, 0, 0]);
      expect((await exec(u, [0x37, 0, 0x01, 0, 0, 0, 0, 0, 32, 0], undefined, 32)).fieldPointer).toMatchObject({
        field: 2,
        bit: 2,
      });
    });

    it('SANITIZE OVERWRITE fills the LU; parameter list checks; BLOCK ERASE only when thin', async () => {
      const u = await lu();
      const list = Buffer.from([0x01, 0, 0, 2, 0xab, 0xcd]);
      const s = await exec(u, [0x48, 0x01, 0, 0, 0, 0, 0, 0, list.length, 0], list);
      expect(s.status).toBe(ScsiStatus.GOOD);
      const b = await readBlocks(u, BLOCKS - 1, 1);
      expect(b[0]).toBe(0xab);
      expect(b[511]).toBe(0xcd);
      const zeroCount = Buffer.from([0x00, 0, 0, 2, 1, 2]);
      expectCheck(await exec(u, [0x48, 0x01, 0, 0, 0, 0, 0, 0, 6, 0], zeroCount), [5, 0x26, 0]);
      expectCheck(await exec(u, [0x48, 0x01, 0, 0, 0, 0, 0, 0, 4, 0], Buffer.alloc(4)), INVALID_FIELD);
      expectCheck(await exec(u, [0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]), INVALID_FIELD);
      const thin = await lu({ thin: true, name: 'thin-s' });
      expect((await exec(thin, [0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0])).status).toBe(ScsiStatus.GOOD);
      expect(thin.sbc.map!.allDeallocated()).toBe(true);
    });

    it('SANITIZE IMMED: NOT READY, SANITIZE IN PROGRESS until done', async () => {
      const u = await lu();
      const list = Buffer.from([0x01, 0, 0, 1, 0x99]);
      const s = makeCommand([0x48, 0x81, 0, 0, 0, 0, 0, 0, list.length, 0], { dataOut: list });
      executeCommand(u, s);
      // IMMED: status at once; the operation runs on later event-loop turns.
      expect(s.finishCount).toBe(1);
      expect(s.status).toBe(ScsiStatus.GOOD);
      const tur = makeCommand([0, 0, 0, 0, 0, 0]);
      executeCommand(u, tur); // synchronous: answered in this same turn
      expectCheck(tur, [2, 0x04, 0x1b]);
      const inq = makeCommand([0x12, 0, 0, 0, 36, 0], { dataLength: 36 });
      executeCommand(u, inq);
      expect(inq.status).toBe(ScsiStatus.GOOD);
      while (u.sbc.notReady !== null) await new Promise((r) => setTimeout(r, 5));
      expect((await readBlocks(u, 0, 1)).every((x) => x === 0x99)).toBe(true);
    });

    it('removable medium: eject, NOT READY / MEDIUM NOT PRESENT, prevent per nexus', async () => {
      const u = await lu({ removable: true });
      const inq = await exec(u, [0x12, 0, 0, 0, 36, 0], undefined, 36);
      expect(inq.dataIn[1]! & 0x80).toBe(0x80);
      const prevent = makeCommand([0x1e, 0, 0, 0, 1, 0]);
      prevent.nexus = 7;
      expect((await run(u, prevent)).status).toBe(ScsiStatus.GOOD);
      expectCheck(await exec(u, [0x1b, 0, 0, 0, 0x02, 0]), [5, 0x53, 0x02]);
      const allowOther = await exec(u, [0x1e, 0, 0, 0, 0, 0]); // nexus 1: had no prevent
      expect(allowOther.status).toBe(ScsiStatus.GOOD);
      expectCheck(await exec(u, [0x1b, 0, 0, 0, 0x02, 0]), [5, 0x53, 0x02]);
      const allow = makeCommand([0x1e, 0, 0, 0, 0, 0]);
      allow.nexus = 7;
      await run(u, allow);
      expect((await exec(u, [0x1b, 0, 0, 0, 0x02, 0])).status).toBe(ScsiStatus.GOOD);
      expectCheck(await exec(u, [0, 0, 0, 0, 0, 0]), [2, 0x3a, 0]);
      expectCheck(await exec(u, cdb10(Opcode.READ_10, 0, 1), undefined, 512), [2, 0x3a, 0]);
      expectCheck(await exec(u, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], undefined, 8), [2, 0x3a, 0]);
      expect((await exec(u, [0x12, 0, 0, 0, 36, 0], undefined, 36)).status).toBe(ScsiStatus.GOOD);
      expect((await exec(u, [0x1b, 0, 0, 0, 0x03, 0])).status).toBe(ScsiStatus.GOOD);
      expect((await exec(u, [0, 0, 0, 0, 0, 0])).status).toBe(ScsiStatus.GOOD);
      expectCheck(await exec(u, [0x1e, 0, 0, 0, 2, 0]), INVALID_FIELD);
    });
  });
}
