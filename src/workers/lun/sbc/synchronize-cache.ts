/**
 * SYNCHRONIZE CACHE(10) (SBC-4 5.26) and SYNCHRONIZE CACHE(16) (SBC-4 5.27).
 *
 * The whole store is flushed whatever the range: a range flush is allowed to do more
 * (SBC-4 5.26: "may synchronize additional logical blocks"), and fdatasync has no range.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { cdbLba, cdbTransferLength } from '../../../shared/scsi/cdb.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits } from '../spc/unit-status.ts';
import { rejectLbaRange } from './read-write.ts';

/**
 * CDB (SBC-4 5.26 table 96 / 5.27 table 97):
 *   1 reserved(7..3) obsolete(2) IMMED(1) obsolete(0) | LBA (10: 2-5, 16: 2-9)
 *   NUMBER OF LOGICAL BLOCKS (10: 7-8, 16: 10-13; 0 = through the last LBA) | GROUP NUMBER
 * IMMED = 1 is honoured the conservative way: status after the flush (allowed: IMMED
 * only permits an early status).
 */
export function synchronizeCache(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectReservedBits(cmd, 1, 0xf8)) return Completion.DONE;
  const lba = cdbLba(cmd.cdb);
  const blocks = cdbTransferLength(cmd.cdb);
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  cmd.onIo = lu.io.flush;
  lu.store.flush(cmd.ioTrampoline);
  return Completion.PENDING;
}
