import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { Opcode } from '../../../src/shared/scsi/opcodes.ts';
import type { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import type { StoreKind } from './helpers.ts';
import { cdb10, cdb12, cdb16, cdb6, makeCommand, openLu, run, tempDir } from './helpers.ts';

const BLOCKS = 1024;
const tmp = tempDir();
afterAll(() => tmp.cleanup());

function expectCheck(cmd: { status: number; senseTriple: number[] }, triple: number[]) {
  expect(cmd.status).toBe(ScsiStatus.CHECK_CONDITION);
  expect(cmd.senseTriple).toEqual(triple);
}

const pattern = (len: number, seed: number) =>
  Buffer.from(Array.from({ length: len }, (_, i) => (i * 7 + seed) & 0xff));

for (const kind of ['ram', 'file'] as StoreKind[]) {
  for (const blockSize of [512, 4096] as const) {
    describe(`SBC on a ${kind} store, ${blockSize}-byte blocks`, () => {
      let lu: LogicalUnit;
      const bs = blockSize;
      beforeAll(async () => {
        lu = await openLu(kind, tmp.dir, { blockSize }, BLOCKS);
      });
      afterAll(async () => lu.close());

      const write = (cdb: number[], data: Buffer, dataOutLength = data.length) =>
        run(lu, makeCommand(cdb, { dataOut: data, dataOutLength }));
      const read = (cdb: number[], dataLength: number) => run(lu, makeCommand(cdb, { dataLength }));

      it('READ CAPACITY(10) and (16)', async () => {
        const rc10 = await read([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
        expect(rc10.status).toBe(ScsiStatus.GOOD);
        expect(rc10.dataIn.readUInt32BE(0)).toBe(BLOCKS - 1);
        expect(rc10.dataIn.readUInt32BE(4)).toBe(bs);
        const rc16 = await read([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], 32);
        expect(rc16.dataInLength).toBe(32);
        expect(Number(rc16.dataIn.readBigUInt64BE(0))).toBe(BLOCKS - 1);
        expect(rc16.dataIn.readUInt32BE(8)).toBe(bs);
        expect([rc16.dataIn[12], rc16.dataIn[13], rc16.dataIn[14]]).toEqual([0, 0, 0]);
      });

      it('WRITE then READ round trips for every CDB size', async () => {
        const cases: [number[], number[], number][] = [
          [cdb6(Opcode.WRITE_6, 3, 2), cdb6(Opcode.READ_6, 3, 2), 2],
          [cdb10(Opcode.WRITE_10, 10, 3), cdb10(Opcode.READ_10, 10, 3), 3],
          [cdb12(Opcode.WRITE_12, 20, 4), cdb12(Opcode.READ_12, 20, 4), 4],
          [cdb16(Opcode.WRITE_16, BigInt(BLOCKS - 5), 5), cdb16(Opcode.READ_16, BigInt(BLOCKS - 5), 5), 5],
        ];
        let seed = 1;
        for (const [w, r, blocks] of cases) {
          const data = pattern(blocks * bs, seed++);
          const wc = await write(w, data);
          expect(wc.status).toBe(ScsiStatus.GOOD);
          expect(wc.dataInLength).toBe(0);
          expect(wc.dataOutWanted).toBe(blocks * bs);
          const rc = await read(r, blocks * bs);
          expect(rc.status).toBe(ScsiStatus.GOOD);
          expect(rc.dataOutWanted).toBe(0);
          expect(rc.dataInLength).toBe(blocks * bs);
          expect(rc.dataIn.equals(data)).toBe(true);
        }
      });

      it('READ(6)/WRITE(6) transfer length 0 means 256 blocks', async () => {
        const data = pattern(256 * bs, 9);
        expect((await write(cdb6(Opcode.WRITE_6, 100, 0), data)).status).toBe(ScsiStatus.GOOD);
        const rc = await read(cdb6(Opcode.READ_6, 100, 0), 256 * bs);
        expect(rc.dataInLength).toBe(256 * bs);
        expect(rc.dataIn.equals(data)).toBe(true);
      });

      it('transfer length 0 in 10/12/16 is GOOD with no data, even at the last LBA', async () => {
        for (const cdb of [
          cdb10(Opcode.READ_10, 0, 0),
          cdb12(Opcode.READ_12, BLOCKS - 1, 0),
          cdb16(Opcode.WRITE_16, 0n, 0),
          cdb10(Opcode.WRITE_10, BLOCKS - 1, 0),
        ]) {
          const cmd = await read(cdb, 0);
          expect(cmd.status).toBe(ScsiStatus.GOOD);
          expect(cmd.dataInLength).toBe(0);
        }
      });

      it('rejects ranges past the end and LBA overflow with LBA OUT OF RANGE', async () => {
        const oob: number[][] = [
          cdb10(Opcode.READ_10, BLOCKS, 1),
          cdb10(Opcode.READ_10, BLOCKS - 1, 2),
          cdb10(Opcode.READ_10, BLOCKS + 1, 0),
          cdb10(Opcode.READ_10, 0x80000000, 1),
          cdb10(Opcode.READ_10, 0xffffffff, 1),
          cdb10(Opcode.WRITE_10, BLOCKS - 1, 256),
          cdb12(Opcode.READ_12, 0, BLOCKS + 1),
          cdb12(Opcode.WRITE_12, 0xffffffff, 0xffffffff),
          cdb16(Opcode.READ_16, 2n ** 64n - 1n, 1),
          cdb16(Opcode.READ_16, 2n ** 64n - 1n, 0),
          cdb16(Opcode.WRITE_16, 2n ** 64n - 2n, 4),
          cdb16(Opcode.READ_16, 2n ** 53n + 1n, 1),
          cdb16(Opcode.READ_16, BigInt(BLOCKS) - 1n, 0xffffffff),
          cdb6(Opcode.READ_6, 0x1fffff, 1),
          cdb6(Opcode.READ_6, BLOCKS - 1, 2),
        ];
        for (const cdb of oob) {
          const cmd = await run(lu, makeCommand(cdb, { dataLength: 2 * bs, dataOut: Buffer.alloc(2 * bs) }));
          expect(cmd.status, cdb.join(',')).toBe(ScsiStatus.CHECK_CONDITION);
          expect(cmd.senseTriple).toEqual([5, 0x21, 0]);
          expect(cmd.dataInLength).toBe(0);
        }
      });

      it('accepts DPO and FUA; rejects RDPROTECT/WRPROTECT with a field pointer', async () => {
        const data = pattern(bs, 3);
        for (const flags of [0x10, 0x08, 0x18]) {
          expect((await write(cdb10(Opcode.WRITE_10, 0, 1, flags), data)).status).toBe(ScsiStatus.GOOD);
          expect((await read(cdb16(Opcode.READ_16, 0n, 1, flags), bs)).status).toBe(ScsiStatus.GOOD);
        }
        for (let p = 1; p < 8; p++) {
          const r = await read(cdb10(Opcode.READ_10, 0, 1, p << 5), bs);
          expectCheck(r, [5, 0x24, 0]);
          expect(r.fieldPointer).toMatchObject({ sksv: true, cd: true, field: 1, bit: 7 });
          const w = await write(cdb12(Opcode.WRITE_12, 0, 1, p << 5), data);
          expectCheck(w, [5, 0x24, 0]);
        }
        const r6 = await read([Opcode.READ_6, 0x20, 0, 0, 1, 0], bs);
        expect(r6.fieldPointer).toMatchObject({ field: 1, bit: 5 });
      });

      it('READ residuals: copies only what fits, reports the full length', async () => {
        const data = pattern(2 * bs, 11);
        await write(cdb10(Opcode.WRITE_10, 50, 2), data);
        const small = await read(cdb10(Opcode.READ_10, 50, 2), 200);
        expect(small.status).toBe(ScsiStatus.GOOD);
        expect(small.dataInLength).toBe(2 * bs);
        expect(small.data.equals(data.subarray(0, 200))).toBe(true);
        const none = await read(cdb10(Opcode.READ_10, 50, 1), 0);
        expect(none.status).toBe(ScsiStatus.GOOD);
        expect(none.dataInLength).toBe(bs);
        const big = await read(cdb10(Opcode.READ_10, 50, 1), 10000);
        expect(big.dataInLength).toBe(bs);
        expect(big.data[bs]).toBe(0xee); // nothing written past the transfer
      });

      it('WRITE residuals: writes only what was sent (EDTL < transfer length)', async () => {
        const a = Buffer.alloc(2 * bs, 'a');
        await write(cdb10(Opcode.WRITE_10, 60, 2), a);
        const b = Buffer.alloc(2 * bs, 'b');
        // two blocks announced, one sent
        const short = await write(cdb10(Opcode.WRITE_10, 60, 2), b, bs);
        expect(short.status).toBe(ScsiStatus.GOOD);
        expect(short.dataOutWanted).toBe(2 * bs); // the fabric reports the overflow
        let back = await read(cdb10(Opcode.READ_10, 60, 2), 2 * bs);
        expect(back.dataIn.subarray(0, bs).every((x) => x === 0x62)).toBe(true);
        expect(back.dataIn.subarray(bs).every((x) => x === 0x61)).toBe(true);
        // one block announced, 200 bytes sent: a partial block is refused (FCP-4 9.4.2
        // case b: ILLEGAL REQUEST, INVALID FIELD IN INFORMATION UNIT), nothing written,
        // the residual still reported
        await write(cdb10(Opcode.WRITE_10, 60, 2), a);
        const partial = await write(cdb10(Opcode.WRITE_10, 60, 1), b, 200);
        expect(partial.status).toBe(ScsiStatus.CHECK_CONDITION);
        expect(partial.senseTriple).toEqual([0x5, 0x0e, 0x03]);
        expect(partial.dataOutWanted).toBe(bs);
        back = await read(cdb10(Opcode.READ_10, 60, 1), bs);
        expect(back.dataIn.every((x) => x === 0x61)).toBe(true);
        // and two blocks announced, one and a half sent: the whole block is not written either
        const half = await write(cdb10(Opcode.WRITE_10, 60, 2), b, bs + bs / 2);
        expect(half.senseTriple).toEqual([0x5, 0x0e, 0x03]);
        back = await read(cdb10(Opcode.READ_10, 60, 2), 2 * bs);
        expect(back.dataIn.every((x) => x === 0x61)).toBe(true);
        // one block announced, two sent: only one written
        await write(cdb10(Opcode.WRITE_10, 60, 2), a);
        expect((await write(cdb10(Opcode.WRITE_10, 60, 1), b)).status).toBe(ScsiStatus.GOOD);
        back = await read(cdb10(Opcode.READ_10, 60, 2), 2 * bs);
        expect(back.dataIn.subarray(bs).every((x) => x === 0x61)).toBe(true);
        // nothing sent
        expect((await write(cdb10(Opcode.WRITE_10, 60, 1), Buffer.alloc(0))).status).toBe(ScsiStatus.GOOD);
      });

      it('SYNCHRONIZE CACHE(10/16) flushes and checks the range', async () => {
        expect((await read([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0)).status).toBe(ScsiStatus.GOOD);
        expect((await read([0x35, 0x02, 0, 0, 0, 0, 0, 0, 8, 0], 0)).status).toBe(ScsiStatus.GOOD);
        expect((await read(cdb16(0x91, BigInt(BLOCKS - 1), 1), 0)).status).toBe(ScsiStatus.GOOD);
        expectCheck(await read(cdb10(0x35, BLOCKS - 1, 2), 0), [5, 0x21, 0]);
        expectCheck(await read(cdb16(0x91, 2n ** 64n - 1n, 0), 0), [5, 0x21, 0]);
        const reserved = await read([0x35, 0x80, 0, 0, 0, 0, 0, 0, 0, 0], 0);
        expect(reserved.fieldPointer).toMatchObject({ field: 1, bit: 7 });
      });

      it('VERIFY: BYTCHK 0 checks the range, BYTCHK 1 compares and reports the miscompare offset', async () => {
        const data = pattern(4 * bs, 21);
        await write(cdb10(Opcode.WRITE_10, 200, 4), data);
        expect((await read(cdb10(Opcode.VERIFY_10, 200, 4), 0)).status).toBe(ScsiStatus.GOOD);
        expectCheck(await read(cdb10(Opcode.VERIFY_10, BLOCKS, 1), 0), [5, 0x21, 0]);
        const same = await write(cdb16(Opcode.VERIFY_16, 200n, 4, 0x02), data);
        expect(same.status).toBe(ScsiStatus.GOOD);
        expect(same.dataInLength).toBe(0);
        expect(same.dataOutWanted).toBe(4 * bs);
        const changed = Buffer.from(data);
        changed[bs + 17]! ^= 0xff;
        const diff = await write(cdb10(Opcode.VERIFY_10, 200, 4, 0x02), changed);
        expectCheck(diff, [0x0e, 0x1d, 0]);
        expect(diff.sense[0]! & 0x80).toBe(0x80); // VALID
        expect(diff.sense.readUInt32BE(3)).toBe(bs + 17);
        // BYTCHK 11b: one block against every block of the range (SBC-4 5.33).
        const bytchk3 = await write(cdb10(Opcode.VERIFY_10, 200, 1, 0x06), data.subarray(0, bs));
        expect(bytchk3.status).toBe(ScsiStatus.GOOD);
        expect(bytchk3.dataOutWanted).toBe(bs);
        // BYTCHK 10b is reserved.
        const bytchk2 = await write(cdb10(Opcode.VERIFY_10, 200, 1, 0x04), data.subarray(0, bs));
        expect(bytchk2.fieldPointer).toMatchObject({ field: 1, bit: 2 });
        const vrprotect = await write(cdb12(Opcode.VERIFY_12, 200, 1, 0x22), data.subarray(0, bs));
        expect(vrprotect.fieldPointer).toMatchObject({ field: 1, bit: 7 });
      });
    });
  }
}

describe('write-protected and write-through devices', () => {
  let ro: LogicalUnit;
  let wt: LogicalUnit;
  beforeAll(async () => {
    ro = await openLu('file', tmp.dir, { readOnly: true }, 64);
    wt = await openLu('file', tmp.dir, { writeCache: 'writethrough' }, 64);
  });
  afterAll(async () => {
    await ro.close();
    await wt.close();
  });

  it('fails writes with DATA PROTECT, WRITE PROTECTED and still serves reads', async () => {
    for (const cdb of [
      cdb6(Opcode.WRITE_6, 0, 1),
      cdb10(Opcode.WRITE_10, 0, 1),
      cdb16(Opcode.WRITE_16, 0n, 1),
    ]) {
      const cmd = await run(ro, makeCommand(cdb, { dataOut: Buffer.alloc(512) }));
      expectCheck(cmd, [7, 0x27, 0]);
    }
    expect((await run(ro, makeCommand(cdb10(Opcode.READ_10, 0, 1), { dataLength: 512 }))).status).toBe(
      ScsiStatus.GOOD,
    );
  });

  it('write-through writes are durable and read back', async () => {
    const data = pattern(512, 5);
    expect((await run(wt, makeCommand(cdb10(Opcode.WRITE_10, 3, 1), { dataOut: data }))).status).toBe(
      ScsiStatus.GOOD,
    );
    const back = await run(wt, makeCommand(cdb10(Opcode.READ_10, 3, 1), { dataLength: 512 }));
    expect(back.dataIn.equals(data)).toBe(true);
  });
});

describe('backing I/O errors', () => {
  let lu: LogicalUnit;
  afterEach(async () => {
    await lu?.close().catch(() => {});
  });

  async function failing(kind: 'read' | 'write' | 'flush'): Promise<LogicalUnit> {
    const l = await openLu('ram', tmp.dir, {}, 64);
    const err = Object.assign(new Error('EIO'), { code: 'EIO' });
    const store = l.store as unknown as Record<string, unknown>;
    if (kind === 'flush') store.flush = (cb: (e: unknown) => void) => setImmediate(cb, err);
    else store[kind] = (...args: unknown[]) => setImmediate(args.at(-1) as (e: unknown) => void, err);
    return l;
  }

  it('READ error → MEDIUM ERROR, UNRECOVERED READ ERROR, finish once', async () => {
    lu = await failing('read');
    const cmd = await run(lu, makeCommand(cdb10(Opcode.READ_10, 0, 1), { dataLength: 512 }));
    expectCheck(cmd, [3, 0x11, 0]);
    expect(cmd.dataInLength).toBe(0);
  });

  it('WRITE error → MEDIUM ERROR, WRITE ERROR', async () => {
    lu = await failing('write');
    expectCheck(
      await run(lu, makeCommand(cdb10(Opcode.WRITE_10, 0, 1), { dataOut: Buffer.alloc(512) })),
      [3, 0x0c, 0],
    );
  });

  it('flush error → MEDIUM ERROR, WRITE ERROR', async () => {
    lu = await failing('flush');
    expectCheck(await run(lu, makeCommand([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0])), [3, 0x0c, 0]);
  });

  it('an executor bug completes the command with HARDWARE ERROR', async () => {
    // Reported to the LU's environment (the LUN worker's logger), with the command.
    const seen: [unknown, unknown][] = [];
    lu = await openLu('ram', tmp.dir, {}, 64, { reportInternalError: (e, c) => seen.push([e, c]) });
    Object.defineProperty(lu, 'scratch', { value: null }); // INQUIRY will throw
    const cmd = await run(lu, makeCommand([0x12, 0, 0, 0, 96, 0], { dataLength: 96 }));
    expectCheck(cmd, [4, 0x44, 0]);
    expect(seen).toHaveLength(1);
    expect(seen[0]![0]).toBeInstanceOf(TypeError);
    expect(seen[0]![1]).toBe(cmd);
  });
});
