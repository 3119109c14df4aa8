/**
 * WRITE SAME(10) (SBC-4 5.49) and WRITE SAME(16) (SBC-4 5.50).
 *
 * CDB byte 1: WRPROTECT(7..5) | ANCHOR(4) | UNMAP(3) | obsolete(2..1) | reserved(0) in
 * the 10-byte CDB, NDOB(0) in the 16-byte one. LBA and NUMBER OF LOGICAL BLOCKS sit
 * where WRITE(10/16) has LBA and TRANSFER LENGTH; byte 6 (10) / 14 (16) holds the GROUP
 * NUMBER in bits 5..0, bits 7..6 reserved.
 *
 * - NUMBER OF LOGICAL BLOCKS 0 means "through the last LBA" (WSNZ = 0 in VPD B0h);
 *   more than MAXIMUM WRITE SAME LENGTH blocks is an invalid field in the CDB.
 * - UNMAP = 1 on a thin LU deallocates the range (SBC-4 4.7.3.4: the device server
 *   performs the unmap; with LBPRZ = 1 the blocks then read as zeros whatever the
 *   Data-Out held, which is what initiators such as Linux's "WRITE SAME with UNMAP"
 *   discard expect). On a fully provisioned LU (LBPWS = LBPWS10 = 0) UNMAP = 1 is an
 *   invalid field in the CDB (SBC-4 5.50).
 * - ANCHOR = 1: ANC_SUP is 0 in VPD B2h, so it is an invalid field in the CDB.
 * - NDOB = 1 (no data-out buffer): the data is a block of zeros.
 * - The data-out must be exactly one logical block: a different EDTL cannot be a
 *   pattern, so it ends with INVALID FIELD IN INFORMATION UNIT (SAM-5 5.13 names it for
 *   data-length errors of the information unit).
 *
 * Large ranges are written in chunks across event-loop turns (bulk.ts).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { cdbLba, cdbTransferLength } from '../../../shared/scsi/cdb.ts';
import { Opcode } from '../../../shared/scsi/opcodes.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits } from '../spc/unit-status.ts';
import { deallocate, fillBlocks, runAsync, zeroBlock } from './bulk.ts';
import { rejectProtectField, rejectWriteProtected } from './common.ts';

const ANCHOR = 0x10;
const UNMAP = 0x08;
const NDOB = 0x01;

export function writeSame(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const sixteen = cdb[0] === Opcode.WRITE_SAME_16;
  const byte1 = cdb[1]!;
  const ndob = sixteen && (byte1 & NDOB) !== 0;
  // The data-out the CDB calls for: one block, none with NDOB (SBC-4 5.50).
  cmd.dataOutWanted = ndob ? 0 : lu.blockSize;
  if (
    rejectProtectField(cmd) ||
    rejectReservedBits(cmd, 1, sixteen ? 0x06 : 0x07) ||
    rejectReservedBits(cmd, sixteen ? 14 : 6, 0xc0)
  ) {
    return Completion.DONE;
  }
  const lba = cdbLba(cdb);
  const n = cdbTransferLength(cdb);
  if (lba >= lu.blockCount) {
    setCheckCondition(cmd, SenseReason.LBA_OUT_OF_RANGE);
    return Completion.DONE;
  }
  // NUMBER OF LOGICAL BLOCKS 0: from LBA through the last LBA (WSNZ = 0).
  const blocks = n === 0 ? lu.blockCount - lba : n;
  if (blocks > lu.blockCount - lba) {
    setCheckCondition(cmd, SenseReason.LBA_OUT_OF_RANGE);
    return Completion.DONE;
  }
  if (blocks > lu.sbc.maxWriteSameBlocks) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(sixteen ? 10 : 7, 7));
    return Completion.DONE;
  }
  if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
  if ((byte1 & ANCHOR) !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 4));
    return Completion.DONE;
  }
  const unmap = (byte1 & UNMAP) !== 0;
  if (unmap && !lu.sbc.thin) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 3));
    return Completion.DONE;
  }
  let pattern: Buffer;
  if (ndob) {
    pattern = zeroBlock(lu);
  } else {
    if (cmd.expectedLength !== lu.blockSize || cmd.dataOutLength !== lu.blockSize) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_INFORMATION_UNIT);
      return Completion.DONE;
    }
    pattern = cmd.data.subarray(0, lu.blockSize);
  }
  const durable = !lu.writeCacheEnabled;
  if (unmap) {
    return runAsync(lu, cmd, () => deallocate(lu, lba, blocks));
  }
  // fillBlocks replicates the pattern into its own chunk buffer before the first write
  // (cmd.data stays valid until the command finishes anyway).
  return runAsync(lu, cmd, async () => {
    await fillBlocks(lu, lba, blocks, pattern, durable);
  });
}
