/**
 * PRE-FETCH(10/16) (SBC-4 5.9, 5.10) and READ DEFECT DATA(10/12) (SBC-4 5.16, 5.17):
 * commands that report on, or hint at, the medium without moving user data.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { cdbLba, cdbTransferLength, respondData } from '../../../shared/scsi/cdb.ts';
import { Opcode } from '../../../shared/scsi/opcodes.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { rejectLbaRange } from './read-write.ts';

/**
 * PRE-FETCH CDB (SBC-4 5.9 table 48 / 5.10 table 49):
 *   1 reserved(7..2) IMMED(1) obsolete(0) | LBA | PREFETCH LENGTH (0: through the last
 *   LBA is not implied; 0 blocks is not an error) | GROUP NUMBER byte: reserved(7..6)
 * The LU has no cache it controls (the host page cache is not addressable per command),
 * so no block is guaranteed to be cached: status GOOD, which SBC-4 5.9 defines for
 * "not all of the blocks fit the cache" (CONDITION MET would promise they do).
 */
export function preFetch(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const sixteen = cmd.cdb[0] === Opcode.PRE_FETCH_16;
  if (rejectReservedBits(cmd, 1, 0xfd) || rejectReservedBits(cmd, sixteen ? 14 : 6, 0xc0)) return Completion.DONE;
  const lba = cdbLba(cmd.cdb);
  const blocks = cdbTransferLength(cmd.cdb);
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  cmd.status = ScsiStatus.GOOD;
  return Completion.DONE;
}

/** DEFECT LIST FORMAT values (SBC-4 6.2.1 table 229) a device may report. */
const DEFECT_FORMATS = new Set([0b000, 0b011, 0b100, 0b101, 0b110]);

/**
 * READ DEFECT DATA(10) (SBC-4 5.16 table 71):
 *   0 37h | 1 reserved | 2 reserved(7..5) REQ_PLIST(4) REQ_GLIST(3) DEFECT LIST FORMAT(2..0)
 *   3-6 reserved | 7-8 ALLOCATION LENGTH | 9 CONTROL
 * READ DEFECT DATA(12) (SBC-4 5.17 table 73):
 *   0 B7h | 1 reserved(7..5) REQ_PLIST(4) REQ_GLIST(3) DEFECT LIST FORMAT(2..0)
 *   2-5 ADDRESS DESCRIPTOR INDEX | 6-9 ALLOCATION LENGTH | 10 reserved | 11 CONTROL
 * A virtual disk has no defects: the requested lists are reported valid (PLISTV/GLISTV
 * as requested) and empty, in the requested format.
 */
export function readDefectData(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const twelve = cdb[0] === Opcode.READ_DEFECT_DATA_12;
  const flagsByte = twelve ? 1 : 2;
  if (twelve) {
    if (rejectReservedBits(cmd, 1, 0xe0) || rejectReservedBytes(cmd, 10, 11)) return Completion.DONE;
  } else if (rejectReservedBytes(cmd, 1, 2) || rejectReservedBits(cmd, 2, 0xe0) || rejectReservedBytes(cmd, 3, 7)) {
    return Completion.DONE;
  }
  const flags = cdb[flagsByte]!;
  if (!DEFECT_FORMATS.has(flags & 0x07)) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(flagsByte, 2));
    return Completion.DONE;
  }
  const buf = lu.scratch;
  // Byte 1: reserved(7..5) | PLISTV(4) | GLISTV(3) | DEFECT LIST FORMAT(2..0): echoes the request.
  buf[0] = 0; // reserved
  buf[1] = flags & 0x1f;
  if (twelve) {
    buf.writeUInt16BE(0, 2); // 2-3: GENERATION CODE (0: not supported)
    buf.writeUInt32BE(0, 4); // 4-7: DEFECT LIST LENGTH: no descriptors
    respondData(cmd, buf, 8, cdb.readUInt32BE(6));
  } else {
    buf.writeUInt16BE(0, 2); // 2-3: DEFECT LIST LENGTH: no descriptors
    respondData(cmd, buf, 4, cdb.readUInt16BE(7));
  }
  return Completion.DONE;
}
