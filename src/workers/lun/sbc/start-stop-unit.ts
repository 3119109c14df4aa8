/**
 * START STOP UNIT (SBC-4 5.25) and PREVENT ALLOW MEDIUM REMOVAL (SBC-4 5.13): power
 * conditions (accepted, nothing to spin) and, on a removable LU, loading and ejecting the
 * medium.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';

/**
 * SBC-4 5.25 table 94: POWER CONDITION values defined for direct-access devices. The
 * others are reserved (4h, 6h, 8h, 9h, Ch-Fh) or obsolete (5h, SLEEP in SBC-2, which only
 * a reset ended) and are rejected: SPC-4 3.5 ("reserved"): receipt of reserved code
 * values in defined fields shall be reported as an error. (libiscsi's
 * StartStopUnit.PwrCnd wants GOOD for every value 1h-Fh, as tgt answers without looking.)
 */
const VALID_POWER_CONDITIONS = new Set([
  0x0, // START_VALID: process START and LOEJ
  0x1, // ACTIVE
  0x2, // IDLE
  0x3, // STANDBY
  0x7, // LU_CONTROL
  0xa, // FORCE_IDLE_0
  0xb, // FORCE_STANDBY_0
]);

const LOEJ = 0x02;
const START = 0x01;

/**
 * CDB (SBC-4 5.25 table 93):
 *   0 1Bh | 1 reserved(7..1) IMMED(0) | 2 reserved
 *   3 reserved(7..4) POWER CONDITION MODIFIER(3..0)
 *   4 POWER CONDITION(7..4) reserved(3) NO_FLUSH(2) LOEJ(1) START(0) | 5 CONTROL
 *
 * START without LOEJ is accepted and changes nothing: a stopped virtual disk would only
 * turn NOT READY for no benefit (Linux stops disks on shutdown). With POWER CONDITION
 * 0h (START_VALID) and LOEJ = 1 on a removable LU: START = 0 ejects the medium,
 * START = 1 loads it; both are refused with MEDIUM REMOVAL PREVENTED while any I_T
 * nexus prevents removal (SBC-4 5.13). A non-removable LU ignores LOEJ. Other power conditions ignore
 * START and LOEJ (SBC-4 5.25).
 */
export function startStopUnit(lu: LogicalUnit, cmd: ScsiCommand): Completion {
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
  const sbc = lu.sbc;
  if (powerCondition === 0 && (cdb[4]! & LOEJ) !== 0 && sbc.removable) {
    // A prevented medium is locked in: neither ejected nor (re)loaded (SBC-4 5.13).
    if (sbc.preventing.size > 0) {
      setCheckCondition(cmd, SenseReason.MEDIUM_REMOVAL_PREVENTED);
      return Completion.DONE;
    }
    sbc.loadEject((cdb[4]! & START) !== 0, cmd.nexus);
  }
  cmd.status = ScsiStatus.GOOD;
  return Completion.DONE;
}

/**
 * PREVENT ALLOW MEDIUM REMOVAL CDB (SBC-4 5.13 table 57):
 *   0 1Eh | 1-3 reserved | 4 reserved(7..2) PREVENT(1..0) | 5 CONTROL
 * PREVENT 00b allows and 01b prevents removal for this I_T nexus; 10b and 11b are
 * obsolete in SBC-4 (they concerned medium changers) and rejected. The LU refuses an
 * eject while any nexus prevents it. On a non-removable LU the state is kept too and
 * has no effect.
 */
export function preventAllowMediumRemoval(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectReservedBytes(cmd, 1, 4) || rejectReservedBits(cmd, 4, 0xfc)) return Completion.DONE;
  const prevent = cmd.cdb[4]! & 0x03;
  if (prevent > 1) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(4, 1));
    return Completion.DONE;
  }
  if (prevent === 1) lu.sbc.preventing.add(cmd.nexus);
  else lu.sbc.preventing.delete(cmd.nexus);
  cmd.status = ScsiStatus.GOOD;
  return Completion.DONE;
}
