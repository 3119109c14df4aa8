/**
 * The read-modify-write and atomic write commands, each run LU-wide exclusive
 * (state.ts explains the gate):
 *   COMPARE AND WRITE (SBC-4 5.3), ORWRITE(16) (SBC-4 5.22), WRITE ATOMIC(16) (SBC-4 5.48).
 *
 * Atomicity is with respect to every other command of the LU. Across a power loss a
 * file-backed LU relies on the host file system: a multi-page pwrite can tear, so a
 * WRITE ATOMIC that crosses a page may be partly on disk after a crash (no journal).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { cdbLba, cdbTransferLength } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { CHUNK_BYTES, readAt, runExclusive, writeAt } from './bulk.ts';
import { withChunk } from '../backing/aligned-pool.ts';
import { durable, rejectProtectField, rejectWriteProtected } from './common.ts';
import { rejectLbaRange, rejectPartialBlock } from './read-write.ts';
import { firstDifference } from './verify.ts';

const FUA = 0x08;

/**
 * Tests only (SPINDLE_TEST_FAULTS=1): a pause between COMPARE AND WRITE's compare and its
 * write, so a cluster test can send a command through another node inside that window
 * and see that it waits (cluster-node.ts lockLu). 0 otherwise.
 */
const TEST_COMPARE_PAUSE_MS =
  process.env['SPINDLE_TEST_FAULTS'] === '1' ? Number(process.env['SPINDLE_TEST_CAW_PAUSE_MS'] ?? 0) : 0;

/**
 * COMPARE AND WRITE CDB (SBC-4 5.3 table 37):
 *   0 89h | 1 WRPROTECT(7..5) DPO(4) FUA(3) reserved(2) FUA_NV(1) reserved(0)
 *   2-9 LBA | 10-12 reserved | 13 NUMBER OF LOGICAL BLOCKS
 *   14 reserved(7..6) GROUP NUMBER(5..0) | 15 CONTROL
 * Data-out: n blocks of verify data, then n blocks of write data. The medium is compared
 * with the verify data; all equal: the write data is written; otherwise nothing is
 * written and the command ends with MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION, the
 * INFORMATION field holding the offset of the first differing byte (SBC-4 5.3.2).
 * FUA_NV is a non-volatile cache hint with nothing to do here.
 */
export function compareAndWrite(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const blocks = cdb[13]!;
  const half = blocks * lu.blockSize;
  cmd.dataOutWanted = 2 * half;
  if (
    rejectProtectField(cmd) ||
    rejectReservedBits(cmd, 1, 0x05) ||
    rejectReservedBytes(cmd, 10, 13) ||
    rejectReservedBits(cmd, 14, 0xc0)
  ) {
    return Completion.DONE;
  }
  if (blocks > lu.sbc.maxCompareAndWriteBlocks) {
    // SBC-4 5.3.1: more than MAXIMUM COMPARE AND WRITE LENGTH.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(13, 7));
    return Completion.DONE;
  }
  const lba = cdbLba(cdb);
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
  if (blocks === 0) {
    // SBC-4 5.3.1: zero blocks is not an error and transfers nothing; data-out sent
    // anyway means the CDB and the transfer disagree (e.g. 256 blocks truncated to the
    // 8-bit field), which must not pass as a successful no-op.
    if (cmd.expectedLength !== 0) setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(13, 7));
    return Completion.DONE;
  }
  if (cmd.expectedLength !== 2 * half || cmd.dataOutLength < 2 * half || cmd.data.length < 2 * half) {
    // The transfer is not exactly the verify and write data the CDB describes: which
    // half is which would be a guess, so nothing is compared or written.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_INFORMATION_UNIT);
    return Completion.DONE;
  }
  const fua = (cdb[1]! & FUA) !== 0;
  return runExclusive(lu, cmd, async () => {
    // At most 255 blocks (MAXIMUM COMPARE AND WRITE LENGTH): one aligned chunk holds them.
    const at = await withChunk(async (medium) => {
      await readAt(lu, medium, 0, half, lba);
      return firstDifference(cmd.data, medium, half);
    });
    if (at >= 0) {
      setCheckCondition(cmd, SenseReason.MISCOMPARE_DURING_VERIFY, undefined, at);
      return;
    }
    if (TEST_COMPARE_PAUSE_MS > 0) await new Promise((r) => setTimeout(r, TEST_COMPARE_PAUSE_MS));
    await writeAt(lu, cmd.data, half, half, lba, durable(lu, fua));
    lu.sbc.noteWritten(lba, blocks);
  });
}

/**
 * ORWRITE(16) CDB (SBC-4 5.22 table 85):
 *   0 8Bh | 1 ORPROTECT(7..5) DPO(4) FUA(3) reserved(2) FUA_NV(1) reserved(0)
 *   2-9 LBA | 10-13 TRANSFER LENGTH | 14 reserved(7..6) GROUP NUMBER | 15 CONTROL
 * Each byte written is the OR of the data-out byte and the byte on the medium. As with
 * WRITE, a shorter data-out than the CDB describes is processed as far as it goes.
 */
export function orWrite(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const blocks = cdbTransferLength(cdb);
  const total = blocks * lu.blockSize;
  cmd.dataOutWanted = total;
  if (rejectProtectField(cmd) || rejectReservedBits(cmd, 1, 0x05) || rejectReservedBits(cmd, 14, 0xc0)) {
    return Completion.DONE;
  }
  const lba = cdbLba(cdb);
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
  const n = Math.min(total, cmd.dataOutLength, cmd.data.length);
  if (n === 0 || rejectPartialBlock(lu, cmd, n)) return Completion.DONE;
  const fua = (cdb[1]! & FUA) !== 0;
  const bs = lu.blockSize;
  return runExclusive(lu, cmd, async () => {
    // Merged a chunk at a time (the command runs alone on the LU, so the pieces cannot
    // interleave with another write): read, OR in the data, write back.
    await withChunk(async (merged) => {
      const src = cmd.data;
      for (let at = 0; at < n; at += CHUNK_BYTES) {
        const len = Math.min(CHUNK_BYTES, n - at);
        const whole = Math.ceil(len / bs) * bs; // a short Data-Out keeps the rest of its last block
        await readAt(lu, merged, 0, whole, lba + at / bs);
        for (let i = 0; i < len; i++) merged[i] = merged[i]! | src[at + i]!;
        await writeAt(lu, merged, 0, whole, lba + at / bs, durable(lu, fua));
      }
    });
    lu.sbc.noteWritten(lba, Math.ceil(n / bs));
  });
}

/**
 * WRITE ATOMIC(16) CDB (SBC-4 5.48 table 203):
 *   0 9Ch | 1 WRPROTECT(7..5) DPO(4) FUA(3) reserved(2..0) | 2-9 LBA
 *   10-11 ATOMIC BOUNDARY | 12-13 TRANSFER LENGTH | 14 reserved(7..6) GROUP NUMBER | 15
 * Limits (VPD B0h): MAXIMUM ATOMIC TRANSFER LENGTH; no alignment or granularity
 * requirement; atomic boundaries are not supported (MAXIMUM ATOMIC BOUNDARY SIZE 0), so
 * a non-zero ATOMIC BOUNDARY is an invalid field in the CDB.
 */
export function writeAtomic(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const blocks = cdb.readUInt16BE(12);
  const total = blocks * lu.blockSize;
  cmd.dataOutWanted = total;
  if (rejectProtectField(cmd) || rejectReservedBits(cmd, 1, 0x07) || rejectReservedBits(cmd, 14, 0xc0)) {
    return Completion.DONE;
  }
  if (cdb.readUInt16BE(10) !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(10, 7));
    return Completion.DONE;
  }
  if (blocks > lu.sbc.maxAtomicBlocks) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(12, 7));
    return Completion.DONE;
  }
  const lba = cdbLba(cdb);
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
  const n = Math.min(total, cmd.dataOutLength, cmd.data.length);
  if (n === 0 || rejectPartialBlock(lu, cmd, n)) return Completion.DONE;
  const fua = (cdb[1]! & FUA) !== 0;
  return runExclusive(lu, cmd, async () => {
    await writeAt(lu, cmd.data, 0, n, lba, durable(lu, fua));
    lu.sbc.noteWritten(lba, Math.ceil(n / lu.blockSize));
  });
}
