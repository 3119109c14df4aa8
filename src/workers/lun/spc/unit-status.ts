/**
 * TEST UNIT READY (SPC-4 6.47) and REQUEST SENSE (SPC-4 6.39).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { allocationLength6, respondData } from '../../../shared/scsi/cdb.ts';
import {
  SenseReason,
  cdbField,
  setCheckCondition,
  setFixedSenseProgress,
  writeDescriptorSenseHeader,
  writeDescriptorSenseWithProgress,
  writeFixedSense,
} from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from './handler.ts';
import { takeUnitAttention } from '../ua/unit-attention.ts';

/**
 * Reject a CDB whose bytes [from, to) are not zero (reserved fields, SPC-4 4.4.2: a
 * device server may check them; spindle does, so malformed CDBs fail loudly).
 * Returns true when the command was completed with CHECK CONDITION.
 */
export function rejectReservedBytes(cmd: ScsiCommand, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const v = cmd.cdb[i]!;
    if (v !== 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(i, 31 - Math.clz32(v)));
      return true;
    }
  }
  return false;
}

/** Reject reserved bits `mask` of CDB byte `byte`; true when completed with CHECK CONDITION. */
export function rejectReservedBits(cmd: ScsiCommand, byte: number, mask: number): boolean {
  const v = cmd.cdb[byte]! & mask;
  if (v === 0) return false;
  setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(byte, 31 - Math.clz32(v)));
  return true;
}

/**
 * TEST UNIT READY CDB: 0 opcode 00h | 1-4 reserved | 5 CONTROL. A ready LU reports GOOD;
 * NOT READY states (ALUA transitioning, fencing) are checked before dispatch once they
 * exist.
 */
export function testUnitReady(_lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectReservedBytes(cmd, 1, 5)) return Completion.DONE;
  cmd.status = ScsiStatus.GOOD;
  return Completion.DONE;
}

/**
 * REQUEST SENSE CDB (SPC-4 6.39.1 table 300):
 *   0 opcode 03h | 1 reserved(7..1) DESC(0) | 2-3 reserved | 4 ALLOCATION LENGTH | 5 CONTROL
 *
 * spindle delivers sense with CHECK CONDITION (autosense, SAM-5 5.14), never holds it
 * pending, and has no deferred errors. REQUEST SENSE on an existing LU reports, in this
 * order (SPC-4 6.39.2):
 *   1. a pending unit attention for the nexus (clearing it);
 *   2. pollable sense data: while a sanitize operation is in progress, NOT READY,
 *      LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS with the PROGRESS INDICATION in the
 *      sense-key specific information (SPC-4 4.5.2.4.4, SBC-4 4.11.2; SBC-4 5.30.1: an
 *      application client polls a sanitize with REQUEST SENSE whatever its IMMED bit);
 *   3. otherwise NO SENSE.
 * DESC = 1 is honoured: descriptor format (8 bytes, plus an 8-byte sense key specific
 * descriptor for the progress); DESC = 0 gives 18 bytes of fixed format.
 */
export function requestSense(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectReservedBits(cmd, 1, 0xfe) || rejectReservedBytes(cmd, 2, 4)) return Completion.DONE;
  const buf = lu.scratch;
  const desc = (cmd.cdb[1]! & 0x01) !== 0;
  // SPC-4 6.39.2: a pending unit attention is reported (and cleared) as the sense data.
  const ua = takeUnitAttention(lu, cmd.nexus);
  const sanitizing = lu.sbc.sanitizeProgress();
  let n: number;
  if (ua === undefined && sanitizing >= 0) {
    const reason = SenseReason.LUN_NOT_READY_SANITIZE_IN_PROGRESS;
    if (desc) {
      n = writeDescriptorSenseWithProgress(buf, reason, sanitizing);
    } else {
      n = writeFixedSense(buf, reason);
      setFixedSenseProgress(buf, sanitizing);
    }
  } else {
    const reason = ua ?? SenseReason.NO_SENSE;
    n = desc ? writeDescriptorSenseHeader(buf, reason) : writeFixedSense(buf, reason);
  }
  respondData(cmd, buf, n, allocationLength6(cmd.cdb));
  return Completion.DONE;
}
