/**
 * READ CAPACITY(10) (SBC-4 5.20) and READ CAPACITY(16) (SBC-4 5.21, SERVICE ACTION IN(16)
 * service action 10h).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength16, respondData } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';

const READ_CAPACITY_10_LENGTH = 8;
const READ_CAPACITY_16_LENGTH = 32;

/**
 * CDB (SBC-4 5.20.1 table 63):
 *   0 25h | 1 reserved(7..1) obsolete(0) | 2-5 LOGICAL BLOCK ADDRESS (obsolete)
 *   6-7 reserved | 8 reserved(7..1) PMI(0, obsolete) | 9 CONTROL
 * SBC-3 required INVALID FIELD IN CDB for PMI = 0 with a non-zero LBA; SBC-4 made both
 * obsolete. spindle keeps the SBC-3 check, which SBC-4 initiators never trigger.
 */
export function readCapacity10(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (
    rejectReservedBits(cmd, 1, 0xfe) ||
    rejectReservedBytes(cmd, 6, 8) ||
    rejectReservedBits(cmd, 8, 0xfe)
  ) {
    return Completion.DONE;
  }
  if ((cdb[8]! & 0x01) === 0 && cdb.readUInt32BE(2) !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 7));
    return Completion.DONE;
  }
  const buf = lu.scratch;
  const lastLba = lu.blockCount > 0 ? lu.blockCount - 1 : 0;
  // 0-3: RETURNED LOGICAL BLOCK ADDRESS; FFFFFFFFh when the last LBA does not fit
  // (SBC-4 5.20.2): the initiator then uses READ CAPACITY(16).
  buf.writeUInt32BE(lastLba >= 0xffffffff ? 0xffffffff : lastLba, 0);
  // 4-7: LOGICAL BLOCK LENGTH IN BYTES.
  buf.writeUInt32BE(lu.blockSize, 4);
  // No ALLOCATION LENGTH field: the parameter data is always 8 bytes.
  respondData(cmd, buf, READ_CAPACITY_10_LENGTH, READ_CAPACITY_10_LENGTH);
  return Completion.DONE;
}

/**
 * CDB (SBC-4 5.21.1 table 65):
 *   0 9Eh | 1 reserved(7..5) SERVICE ACTION 10h | 2-9 LOGICAL BLOCK ADDRESS (obsolete)
 *   10-13 ALLOCATION LENGTH | 14 reserved(7..1) PMI(0, obsolete) | 15 CONTROL
 * Allocation lengths below 32 truncate the data; they are not errors (libiscsi
 * readcapacity16_alloclen checks 0..15).
 */
export function readCapacity16(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xe0) || rejectReservedBits(cmd, 14, 0xfe)) return Completion.DONE;
  if ((cdb[14]! & 0x01) === 0 && (cdb.readUInt32BE(2) | cdb.readUInt32BE(6)) !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 7));
    return Completion.DONE;
  }
  const buf = lu.scratch;
  buf.fill(0, 0, READ_CAPACITY_16_LENGTH);
  const lastLba = lu.blockCount > 0 ? lu.blockCount - 1 : 0;
  // 0-7: RETURNED LOGICAL BLOCK ADDRESS (< 2^53: two exact 32-bit halves).
  buf.writeUInt32BE(Math.floor(lastLba / 0x1_0000_0000), 0);
  buf.writeUInt32BE(lastLba >>> 0, 4);
  // 8-11: LOGICAL BLOCK LENGTH IN BYTES.
  buf.writeUInt32BE(lu.blockSize, 8);
  // 12: reserved | RC BASIS 00b | P_TYPE 000b | PROT_EN 0: no protection information.
  // 13: P_I_EXPONENT 0 (7..4) | LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT (3..0).
  buf[13] = lu.sbc.physicalExponent & 0x0f;
  // 14: LBPME(7) | LBPRZ(6) | LOWEST ALIGNED LOGICAL BLOCK ADDRESS (13..8) = 0; 15: (7..0) = 0.
  // A thin LU: logical block provisioning management enabled, deallocated blocks read
  // zeros (SBC-4 5.21.2, 4.7.4.5).
  buf[14] = lu.sbc.thin ? 0xc0 : 0x00;
  // 16-31: reserved.
  respondData(cmd, buf, READ_CAPACITY_16_LENGTH, allocationLength16(cdb));
  return Completion.DONE;
}
