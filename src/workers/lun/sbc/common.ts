/**
 * CDB checks shared by the SBC-4 write-type commands beyond READ/WRITE.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';

/** Field pointer to byte 1 bit 7: RDPROTECT / WRPROTECT / VRPROTECT / ORPROTECT. */
const PROTECT_FIELD = Object.freeze(cdbField(1, 7));

/**
 * Reject a non-zero xxPROTECT field (byte 1 bits 7..5): spindle formats without
 * protection information (SBC-4 4.22.2: PROT_EN = 0, so a non-zero field is an invalid
 * field in the CDB). True when the command was completed with CHECK CONDITION.
 */
export function rejectProtectField(cmd: ScsiCommand): boolean {
  if ((cmd.cdb[1]! & 0xe0) === 0) return false;
  setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, PROTECT_FIELD);
  return true;
}

/** DATA PROTECT, WRITE PROTECTED on a read-only LU (SBC-4 4.11). */
export function rejectWriteProtected(lu: LogicalUnit, cmd: ScsiCommand): boolean {
  if (!lu.readOnly) return false;
  setCheckCondition(cmd, SenseReason.WRITE_PROTECTED);
  return true;
}

/**
 * LBA range check that, unlike rejectLbaRange, accepts an empty range that starts at the
 * capacity (UNMAP block descriptors with NUMBER OF LOGICAL BLOCKS 0, SBC-4 5.32.2).
 */
export function rangeInside(lu: LogicalUnit, lba: number, blocks: number): boolean {
  return lba <= lu.blockCount && blocks <= lu.blockCount - lba;
}

/** Writes must be durable before status with FUA or a write-through LU (SBC-4 4.15). */
export function durable(lu: LogicalUnit, fua: boolean): boolean {
  return fua || !lu.writeCacheEnabled;
}
