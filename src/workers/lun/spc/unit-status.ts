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
  writeDescriptorSenseHeader,
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
 * pending, and has no deferred errors: REQUEST SENSE on an existing LU reports a pending
 * unit attention (clearing it) or else NO SENSE (SPC-4 6.39.2). DESC = 1 is honoured: the descriptor-format answer has no descriptors
 * (8 bytes); DESC = 0 gives 18 bytes of fixed format.
 */
export function requestSense(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectReservedBits(cmd, 1, 0xfe) || rejectReservedBytes(cmd, 2, 4)) return Completion.DONE;
  const buf = lu.scratch;
  // SPC-4 6.39.2: a pending unit attention is reported (and cleared) as the sense data.
  const reason = takeUnitAttention(lu, cmd.nexus) ?? SenseReason.NO_SENSE;
  const n =
    (cmd.cdb[1]! & 0x01) !== 0 ? writeDescriptorSenseHeader(buf, reason) : writeFixedSense(buf, reason);
  respondData(cmd, buf, n, allocationLength6(cmd.cdb));
  return Completion.DONE;
}
