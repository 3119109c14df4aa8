/**
 * The SBC command paths on an O_DIRECT file device (issue 14): every buffer the target
 * core hands to the store is aligned, so not one request is bounced (FileStore.bounced),
 * and the data is what a page-cache device would hold. Command data is page aligned here
 * as a session worker's slab is (helpers.ts alignedCommand).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScsiStatus } from '../../../src/shared/scsi/command.ts';
import { Opcode } from '../../../src/shared/scsi/opcodes.ts';
import type { DeviceConfig } from '../../../src/shared/config-types.ts';
import type { FileStore } from '../../../src/workers/lun/backing/file-store.ts';
import { LogicalUnit } from '../../../src/workers/lun/logical-unit.ts';
import {
  CLUSTER,
  TEST_ENV,
  alignedCommand,
  cdb10,
  cdb16,
  ramDevice,
  run,
  supportsDirectIo,
  tempDir,
  type TestCommand,
} from './helpers.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const BLOCKS = 4096;

const pattern = (len: number, seed: number): Buffer =>
  Buffer.from(Array.from({ length: len }, (_, i) => (i * 31 + seed) & 0xff));

for (const blockSize of [512, 4096] as const) {
  describe.skipIf(!supportsDirectIo(tmp.dir))(
    `SBC on an O_DIRECT file device, ${blockSize}-byte blocks`,
    () => {
      let lu: LogicalUnit;
      let store: FileStore;
      const bs = blockSize;
      beforeAll(async () => {
        const dev: DeviceConfig = {
          ...ramDevice({ blockSize, thin: true }, BLOCKS),
          backing: { type: 'file', path: path.join(tmp.dir, `direct-${bs}.img`), size: BLOCKS * bs },
          direct: true,
        };
        lu = await LogicalUnit.open(dev, CLUSTER, TEST_ENV);
        store = lu.store as FileStore;
      });
      afterAll(async () => lu.close());

      const exec = async (cmd: TestCommand): Promise<TestCommand> => {
        const done = await run(lu, cmd);
        expect(done.status, `sense ${done.senseTriple.join('/')}`).toBe(ScsiStatus.GOOD);
        return done;
      };
      const readBlocks = async (lba: number, blocks: number): Promise<Buffer> =>
        (await exec(alignedCommand(cdb16(Opcode.READ_16, BigInt(lba), blocks), { dataLength: blocks * bs })))
          .dataIn;

      it('is a direct store', () => {
        expect(store.direct).toBe(true);
        expect(store.alignment).toBe(bs);
      });

      it('WRITE (with and without FUA) and READ round trip', async () => {
        const data = pattern(16 * bs, 1);
        await exec(alignedCommand(cdb10(Opcode.WRITE_10, 100, 16), { dataOut: data }));
        await exec(
          alignedCommand(cdb16(Opcode.WRITE_16, 200n, 4, 0x08), { dataOut: data.subarray(0, 4 * bs) }),
        );
        expect((await readBlocks(100, 16)).equals(data)).toBe(true);
        expect((await readBlocks(200, 4)).equals(data.subarray(0, 4 * bs))).toBe(true);
      });

      it('WRITE SAME (chunked fill from the aligned arena), and with UNMAP', async () => {
        const block = pattern(bs, 7);
        // 3000 blocks: more than one 1 MiB chunk at 512-byte blocks.
        await exec(alignedCommand(cdb16(Opcode.WRITE_SAME_16, 1000n, 3000), { dataOut: block }));
        const back = await readBlocks(1000, 3000);
        for (let b = 0; b < 3000; b += 499)
          expect(back.subarray(b * bs, (b + 1) * bs).equals(block)).toBe(true);
        await exec(alignedCommand(cdb16(Opcode.WRITE_SAME_16, 1000n, 16, 0x08), { dataOut: block }));
        expect((await readBlocks(1000, 16)).every((x) => x === 0)).toBe(true);
      });

      it('UNMAP, GET LBA STATUS', async () => {
        const list = Buffer.alloc(24);
        list.writeUInt16BE(22, 0);
        list.writeUInt16BE(16, 2);
        list.writeBigUInt64BE(2000n, 8);
        list.writeUInt32BE(64, 16);
        await exec(alignedCommand([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { dataOut: list }));
        expect((await readBlocks(2000, 64)).every((x) => x === 0)).toBe(true);
        const st = await exec(
          alignedCommand([0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0x07, 0xd0, 0, 0, 0, 64, 0, 0], { dataLength: 64 }),
        );
        expect(st.dataIn.readUInt32BE(8 + 8)).toBeGreaterThan(0);
      });

      it('VERIFY with BYTCHK 00b, 01b (match and miscompare) and 11b', async () => {
        const data = pattern(8 * bs, 3);
        await exec(alignedCommand(cdb10(Opcode.WRITE_10, 300, 8), { dataOut: data }));
        await exec(alignedCommand(cdb10(Opcode.VERIFY_10, 300, 8)));
        await exec(alignedCommand(cdb10(Opcode.VERIFY_10, 300, 8, 0x02), { dataOut: data }));
        const wrong = Buffer.from(data);
        wrong[5 * bs + 3]! ^= 0xff;
        const mis = await run(lu, alignedCommand(cdb10(Opcode.VERIFY_10, 300, 8, 0x02), { dataOut: wrong }));
        expect(mis.senseTriple).toEqual([0x0e, 0x1d, 0x00]);
        expect(mis.sense.readUInt32BE(3)).toBe(5 * bs + 3);
        await exec(alignedCommand(cdb16(Opcode.WRITE_SAME_16, 320n, 10), { dataOut: pattern(bs, 4) }));
        await exec(alignedCommand(cdb10(Opcode.VERIFY_10, 320, 10, 0x06), { dataOut: pattern(bs, 4) }));
      });

      it('WRITE AND VERIFY', async () => {
        const data = pattern(32 * bs, 5);
        await exec(alignedCommand(cdb10(Opcode.WRITE_AND_VERIFY_10, 400, 32, 0x02), { dataOut: data }));
        expect((await readBlocks(400, 32)).equals(data)).toBe(true);
      });

      it('COMPARE AND WRITE, ORWRITE, WRITE ATOMIC', async () => {
        const old = pattern(2 * bs, 8);
        await exec(alignedCommand(cdb10(Opcode.WRITE_10, 500, 2), { dataOut: old }));
        const next = pattern(2 * bs, 9);
        const caw = [0x89, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xf4, 0, 0, 0, 2, 0, 0];
        await exec(alignedCommand(caw, { dataOut: Buffer.concat([old, next]) }));
        expect((await readBlocks(500, 2)).equals(next)).toBe(true);
        const mis = await run(lu, alignedCommand(caw, { dataOut: Buffer.concat([old, old]) }));
        expect(mis.senseTriple).toEqual([0x0e, 0x1d, 0x00]);

        const ors = pattern(2 * bs, 10);
        await exec(alignedCommand(cdb16(Opcode.ORWRITE_16, 500n, 2), { dataOut: ors }));
        const expected = Buffer.from(next.map((b, i) => b | ors[i]!));
        expect((await readBlocks(500, 2)).equals(expected)).toBe(true);

        const atomic = pattern(4 * bs, 11);
        const wa = [0x9c, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x58, 0, 0, 0, 4, 0, 0];
        await exec(alignedCommand(wa, { dataOut: atomic }));
        expect((await readBlocks(600, 4)).equals(atomic)).toBe(true);
      });

      it('SYNCHRONIZE CACHE', async () => {
        await exec(alignedCommand([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
      });

      it('EXTENDED COPY within the LU (through one aligned chunk)', async () => {
        const data = pattern(20 * bs, 12);
        await exec(alignedCommand(cdb10(Opcode.WRITE_10, 700, 20), { dataOut: data }));
        const target = Buffer.alloc(32);
        target[0] = 0xe4;
        target[4] = 0x01;
        target[5] = 0x03;
        target[7] = lu.naa.length;
        lu.naa.copy(target, 8);
        target.writeUIntBE(bs, 29, 3);
        const seg = Buffer.alloc(28);
        seg[0] = 0x02;
        seg.writeUInt16BE(0x18, 2);
        seg.writeUInt16BE(20, 10);
        seg.writeBigUInt64BE(700n, 12);
        seg.writeBigUInt64BE(800n, 20);
        const header = Buffer.alloc(16);
        header[1] = 0b11 << 3; // no list id
        header.writeUInt16BE(32, 2);
        header.writeUInt32BE(28, 8);
        const list = Buffer.concat([header, target, seg]);
        const cdb = new Array<number>(16).fill(0);
        cdb[0] = 0x83;
        cdb[13] = list.length;
        await exec(alignedCommand(cdb, { dataOut: list }));
        expect((await readBlocks(800, 20)).equals(data)).toBe(true);
      });

      it('SANITIZE OVERWRITE writes the whole LU in aligned chunks', async () => {
        const params = Buffer.from([0x01, 0, 0, 4, 0xa5, 0x5a, 0xa5, 0x5a]);
        await exec(alignedCommand([0x48, 0x01, 0, 0, 0, 0, 0, 0, 8, 0], { dataOut: params }));
        const first = await readBlocks(0, 2);
        const last = await readBlocks(BLOCKS - 2, 2);
        for (const buf of [first, last])
          for (let i = 0; i < buf.length; i += 4) expect(buf.readUInt32BE(i)).toBe(0xa55aa55a);
      });

      it('handed the store no unaligned buffer, length or position on any of these paths', () => {
        expect(store.bounced).toBe(0);
        expect(store.misaligned).toBe(0);
      });
    },
  );
}
