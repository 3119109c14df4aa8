/**
 * VERIFY(10/12/16) (SBC-4 5.33-5.35) and WRITE AND VERIFY(10/12/16) (SBC-4 5.45-5.47).
 *
 * VERIFY BYTCHK (SBC-4 5.33 table 115):
 *   00b: verify the medium: the range is read (a read error is a MEDIUM ERROR);
 *   01b: the Data-Out buffer (verification length blocks) is compared with the medium;
 *   10b: reserved;
 *   11b: one block of Data-Out is compared with every block of the range.
 * A difference ends the command with MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION and
 * the INFORMATION field set to the offset of the first differing byte (from the start of
 * the Data-Out buffer for 01b, from the start of the range for 11b).
 *
 * Not a hot path: closures and promises are fine. The medium is read in chunks of the
 * aligned arena (backing/aligned-pool.ts), so direct-I/O stores read into them as they are.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { cdbLba, cdbLengthOf, cdbTransferLength } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits } from '../spc/unit-status.ts';
import { CHUNK_BYTES, readAt, runAsync, writeAt, yieldTurn } from './bulk.ts';
import { withChunk } from '../backing/aligned-pool.ts';
import { rejectProtectField, rejectWriteProtected } from './common.ts';
import { rejectLbaRange, rejectPartialBlock } from './read-write.ts';

/** Offset of the GROUP NUMBER byte by CDB length (bits 7..6 reserved, SBC-4). */
function groupByte(cdb: Buffer): number {
  const len = cdbLengthOf(cdb[0]!);
  return len === 10 ? 6 : len === 12 ? 10 : 14;
}

/**
 * VERIFY CDB byte 1 (SBC-4 5.33 table 114):
 *   VRPROTECT(7..5) | DPO(4) | reserved(3) | BYTCHK(2..1) | obsolete(0)
 * LBA and VERIFICATION LENGTH sit where READ(10/12/16) has LBA and TRANSFER LENGTH.
 */
export function verify(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectProtectField(cmd) || rejectReservedBits(cmd, 1, 0x09) || rejectReservedBits(cmd, groupByte(cdb), 0xc0)) {
    return Completion.DONE;
  }
  const bytchk = (cdb[1]! >> 1) & 0x03;
  if (bytchk === 0b10) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 2));
    return Completion.DONE;
  }
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  const bs = lu.blockSize;
  const total = blocks * bs;
  // Data-out: verification length blocks (01b), one block (11b), none (00b).
  if (bytchk === 0b01) cmd.dataOutWanted = total;
  else if (bytchk === 0b11) cmd.dataOutWanted = blocks === 0 ? 0 : bs;
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  if (blocks === 0) return Completion.DONE; // SBC-4 5.33: not an error

  if (bytchk === 0b00) {
    return runAsync(lu, cmd, () => scanMedium(lu, lba, blocks));
  }
  if (bytchk === 0b11) {
    if (cmd.dataOutLength < bs || cmd.data.length < bs) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_INFORMATION_UNIT);
      return Completion.DONE;
    }
    return runAsync(lu, cmd, () => compareEveryBlock(lu, cmd, lba, blocks));
  }
  // 01b: compare what the initiator sent (at most the verification length).
  const n = Math.min(total, cmd.dataOutLength, cmd.data.length);
  if (n === 0) return Completion.DONE;
  return runAsync(lu, cmd, async () => {
    const offset = await compareWithMedium(lu, cmd.data, n, lba);
    if (offset >= 0) setCheckCondition(cmd, SenseReason.MISCOMPARE_DURING_VERIFY, undefined, offset);
  });
}

/**
 * Compare data[0, n) with the medium from `lba` on, a chunk at a time: the offset of
 * the first differing byte, or -1. `n` need not be whole blocks (a short Data-Out).
 */
export function compareWithMedium(lu: LogicalUnit, data: Buffer, n: number, lba: number): Promise<number> {
  const bs = lu.blockSize;
  return withChunk(async (chunk) => {
    const step = Math.floor(chunk.length / bs) * bs;
    for (let at = 0; at < n; at += step) {
      const len = Math.min(step, n - at);
      // Whole blocks from the medium (a partial last block is compared as far as it goes).
      await readAt(lu, chunk, 0, Math.ceil(len / bs) * bs, lba + at / bs);
      const d = firstDifference(data.subarray(at, at + len), chunk, len);
      if (d >= 0) return at + d;
      if (at + step < n) await yieldTurn();
    }
    return -1;
  });
}

/** Read [lba, +blocks) in chunks: a read error fails the command (BYTCHK 00b). */
async function scanMedium(lu: LogicalUnit, lba: number, blocks: number): Promise<void> {
  const chunkBlocks = Math.max(1, Math.min(blocks, Math.floor(CHUNK_BYTES / lu.blockSize)));
  await withChunk(async (buf) => {
    for (let done = 0; done < blocks; ) {
      const n = Math.min(chunkBlocks, blocks - done);
      await readAt(lu, buf, 0, n * lu.blockSize, lba + done);
      done += n;
      if (done < blocks) await yieldTurn();
    }
  });
}

/** BYTCHK 11b: cmd.data[0, blockSize) against every block of [lba, +blocks). */
async function compareEveryBlock(lu: LogicalUnit, cmd: ScsiCommand, lba: number, blocks: number): Promise<void> {
  const bs = lu.blockSize;
  const pattern = cmd.data.subarray(0, bs);
  const chunkBlocks = Math.max(1, Math.min(blocks, Math.floor(CHUNK_BYTES / bs)));
  await withChunk(async (buf) => {
    for (let done = 0; done < blocks; ) {
      const n = Math.min(chunkBlocks, blocks - done);
      await readAt(lu, buf, 0, n * bs, lba + done);
      for (let b = 0; b < n; b++) {
        const at = firstDifference(pattern, buf.subarray(b * bs, (b + 1) * bs), bs);
        if (at >= 0) {
          setCheckCondition(cmd, SenseReason.MISCOMPARE_DURING_VERIFY, undefined, (done + b) * bs + at);
          return;
        }
      }
      done += n;
      if (done < blocks) await yieldTurn();
    }
  });
}

/**
 * WRITE AND VERIFY(10/12/16) CDB byte 1 (SBC-4 5.45 table 198):
 *   WRPROTECT(7..5) | DPO(4) | reserved(3) | BYTCHK(2..1) | obsolete(0)
 * BYTCHK 00b: write, then read the range back (medium verification); 01b: write, then
 * compare the medium with the Data-Out buffer; 10b and 11b are reserved here.
 * The write is always durable before it is verified: verifying a volatile cache would
 * prove nothing about the medium. Like WRITE, a shorter data-out than the CDB
 * describes is processed as far as it goes (the fabric reports the residual).
 */
export function writeAndVerify(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  const total = blocks * lu.blockSize;
  cmd.dataOutWanted = total;
  if (rejectProtectField(cmd) || rejectReservedBits(cmd, 1, 0x09) || rejectReservedBits(cmd, groupByte(cdb), 0xc0)) {
    return Completion.DONE;
  }
  const bytchk = (cdb[1]! >> 1) & 0x03;
  if (bytchk >= 0b10) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 2));
    return Completion.DONE;
  }
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
  const n = Math.min(total, cmd.dataOutLength, cmd.data.length);
  if (n === 0 || rejectPartialBlock(lu, cmd, n)) return Completion.DONE;
  return runAsync(lu, cmd, async () => {
    await writeAt(lu, cmd.data, 0, n, lba, true);
    lu.sbc.noteWritten(lba, Math.ceil(n / lu.blockSize));
    // BYTCHK 00b: the read back is the verification (a read error fails the command);
    // 01b: and it must match what was sent.
    const offset = await compareWithMedium(lu, cmd.data, n, lba);
    if (bytchk === 0b01 && offset >= 0)
      setCheckCondition(cmd, SenseReason.MISCOMPARE_DURING_VERIFY, undefined, offset);
  });
}

/** Offset of the first byte where a[0, n) and b[0, n) differ, or -1. */
export function firstDifference(a: Buffer, b: Buffer, n: number): number {
  if (a.compare(b, 0, n, 0, n) === 0) return -1;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}
