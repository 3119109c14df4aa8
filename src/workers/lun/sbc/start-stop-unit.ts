/**
 * START STOP UNIT (SBC-4 5.25) for a non-removable disk that is always spinning.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';

/** SBC-4 5.25 table 94: POWER CONDITION values defined for direct-access devices. */
const VALID_POWER_CONDITIONS = new Set([
  0x0, // START_VALID: process START and LOEJ
  0x1, // ACTIVE
  0x2, // IDLE
  0x3, // STANDBY
  0x7, // LU_CONTROL
  0xa, // FORCE_IDLE_0
  0xb, // FORCE_STANDBY_0
]);

/**
 * CDB (SBC-4 5.25 table 93):
 *   0 1Bh | 1 reserved(7..1) IMMED(0) | 2 reserved
 *   3 reserved(7..4) POWER CONDITION MODIFIER(3..0)
 *   4 POWER CONDITION(7..4) reserved(3) NO_FLUSH(2) LOEJ(1) START(0) | 5 CONTROL
 *
 * Accepted and ignored: the medium cannot be ejected and a stopped spindle would only
 * make the LU NOT READY for no benefit (Linux stops disks on shutdown). Reserved fields
 * and undefined power conditions are rejected.
 */
export function startStopUnit(_lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (
    rejectReservedBits(cmd, 1, 0xfe) ||
    rejectReservedBytes(cmd, 2, 3) ||
    rejectReservedBits(cmd, 3, 0xf0) ||
    rejectReservedBits(cmd, 4, 0x08)
  ) {
    return Completion.DONE;
  }
  const powerCondition = cdb[4]! >> 4;
  if (!VALID_POWER_CONDITIONS.has(powerCondition)) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(4, 7));
    return Completion.DONE;
  }
  // The modifier only qualifies IDLE (0..2: idle_a/b/c) and STANDBY (0..1: standby_z/y).
  const modifier = cdb[3]! & 0x0f;
  const maxModifier = powerCondition === 0x2 ? 2 : powerCondition === 0x3 ? 1 : 0;
  if (modifier > maxModifier) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(3, 3));
    return Completion.DONE;
  }
  cmd.status = ScsiStatus.GOOD;
  return Completion.DONE;
}
