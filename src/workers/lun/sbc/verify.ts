/**
 * VERIFY(10/12/16) (SBC-4 5.33-5.35).
 *
 * BYTCHK 00b: the medium is always readable here, so only the range is checked.
 * BYTCHK 01b: the Data-Out buffer is compared with the medium; the first difference ends
 * the command with MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION and the INFORMATION
 * field set to the offset of that byte in the Data-Out buffer (SBC-4 5.33.1).
 * BYTCHK 11b (one block compared against every block) is optional and not supported;
 * 10b is reserved.
 *
 * Not a hot path: a byte-checking VERIFY allocates a buffer for the medium's data and a
 * closure for its continuation.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { cdbLba, cdbTransferLength } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits } from '../spc/unit-status.ts';
import { rejectLbaRange } from './read-write.ts';

/**
 * CDB byte 1 (SBC-4 5.33 table 114):
 *   VRPROTECT(7..5) | DPO(4) | reserved(3) | BYTCHK(2..1) | obsolete(0)
 * LBA and VERIFICATION LENGTH sit where READ(10/12/16) has LBA and TRANSFER LENGTH.
 */
export function verify(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if ((cdb[1]! & 0xe0) !== 0) {
    // No protection information: VRPROTECT must be zero.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 7));
    return Completion.DONE;
  }
  if (rejectReservedBits(cmd, 1, 0x08)) return Completion.DONE;
  const bytchk = (cdb[1]! >> 1) & 0x03;
  if (bytchk === 0b10 || bytchk === 0b11) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 2));
    return Completion.DONE;
  }
  const lba = cdbLba(cdb);
  const blocks = cdbTransferLength(cdb);
  const total = blocks * lu.blockSize;
  // BYTCHK 01b transfers verification length x block size of data-out (SBC-4 5.33).
  if (bytchk === 0b01) cmd.dataOutWanted = total;
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  if (bytchk === 0b00 || blocks === 0) return Completion.DONE;

  // Compare what the initiator sent (at most the verification length).
  let n = total < cmd.dataOutLength ? total : cmd.dataOutLength;
  if (n > cmd.data.length) n = cmd.data.length;
  if (n === 0) return Completion.DONE;
  const medium = Buffer.allocUnsafe(n);
  cmd.onIo = (c, err) => {
    if (err !== null) {
      setCheckCondition(c, SenseReason.UNRECOVERED_READ_ERROR);
    } else {
      const offset = firstDifference(c.data, medium, n);
      if (offset < 0) c.status = ScsiStatus.GOOD;
      else setCheckCondition(c, SenseReason.MISCOMPARE_DURING_VERIFY, undefined, offset);
    }
    c.finish();
  };
  lu.store.read(medium, 0, n, lba * lu.blockSize, cmd.ioTrampoline);
  return Completion.PENDING;
}

/** Offset of the first byte where a[0, n) and b[0, n) differ, or -1. */
export function firstDifference(a: Buffer, b: Buffer, n: number): number {
  if (a.compare(b, 0, n, 0, n) === 0) return -1;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}
