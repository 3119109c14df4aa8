/**
 * Commands addressed to a LUN that does not exist (SAM-5 5.11, "incorrect logical unit
 * selection"), answered by the session worker without a LUN worker.
 */
import type { ScsiCommand } from './command.ts';
import { ScsiStatus } from './command.ts';
import { allocationLength6, allocationLengthInquiry, respondData } from './cdb.ts';
import { Opcode } from './opcodes.ts';
import {
  SenseReason,
  cdbField,
  setCheckCondition,
  writeDescriptorSenseHeader,
  writeFixedSense,
} from './sense.ts';

/** Standard INQUIRY data for "no LU here": the 36-byte SPC-4 minimum. */
const NO_LUN_INQUIRY_LENGTH = 36;

/** Response scratch; this module is synchronous, so one buffer serves every call. */
const scratch = Buffer.alloc(64);

/**
 * Answer `cmd` for a LUN that does not exist. Fills status, sense and dataInLength; does
 * not call `cmd.finish()`. REPORT LUNS is the caller's (buildReportLuns with the
 * nexus's LUN list): SAM-5 requires it to work on any LUN, and only the caller knows
 * the list.
 *
 * - INQUIRY: PERIPHERAL QUALIFIER 011b ("not capable of supporting a device on this
 *   LU") and PERIPHERAL DEVICE TYPE 1Fh (SPC-4 6.6.2). With EVPD = 1 the page header
 *   carries the same qualifier/type with an empty page (choice: SPC-4 defines no page
 *   contents for a missing LU; Linux only reads VPD pages of LUs it attached).
 * - REQUEST SENSE: GOOD with sense data ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED as
 *   parameter data (SPC-4 6.39.2).
 * - anything else: CHECK CONDITION, ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (25/00).
 */
export function executeWithoutLun(cmd: ScsiCommand): void {
  const cdb = cmd.cdb;
  cmd.status = ScsiStatus.GOOD;
  cmd.senseLength = 0;
  cmd.dataInLength = 0;
  cmd.dataOutWanted = 0;
  switch (cdb[0]) {
    case Opcode.INQUIRY:
      inquiryWithoutLun(cmd);
      return;
    case Opcode.REQUEST_SENSE: {
      // Byte 1 bit 0: DESC (SPC-4 6.39.1); fixed format unless descriptor format asked for.
      const n =
        (cdb[1]! & 0x01) !== 0
          ? writeDescriptorSenseHeader(scratch, SenseReason.LOGICAL_UNIT_NOT_SUPPORTED)
          : writeFixedSense(scratch, SenseReason.LOGICAL_UNIT_NOT_SUPPORTED);
      respondData(cmd, scratch, n, allocationLength6(cdb));
      return;
    }
    default:
      setCheckCondition(cmd, SenseReason.LOGICAL_UNIT_NOT_SUPPORTED);
  }
}

function inquiryWithoutLun(cmd: ScsiCommand): void {
  const cdb = cmd.cdb;
  const evpd = (cdb[1]! & 0x01) !== 0;
  if ((cdb[1]! & 0xfe) !== 0) {
    // Byte 1 bits 7..1: reserved (bit 1 was CMDDT, obsolete in SPC-4).
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 1));
    return;
  }
  if (!evpd && cdb[2] !== 0) {
    // SPC-4 6.6.1: PAGE CODE must be zero when EVPD is zero.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 7));
    return;
  }
  const alloc = allocationLengthInquiry(cdb);
  if (evpd) {
    scratch[0] = 0x7f; // PERIPHERAL QUALIFIER 011b | PERIPHERAL DEVICE TYPE 1Fh
    scratch[1] = cdb[2]!; // PAGE CODE as requested
    scratch.writeUInt16BE(0, 2); // PAGE LENGTH: empty
    respondData(cmd, scratch, 4, alloc);
    return;
  }
  scratch.fill(0, 0, NO_LUN_INQUIRY_LENGTH);
  scratch[0] = 0x7f; // PERIPHERAL QUALIFIER 011b | PERIPHERAL DEVICE TYPE 1Fh (unknown / no device)
  scratch[1] = 0x00; // RMB 0
  scratch[2] = 0x06; // VERSION: SPC-4
  scratch[3] = 0x12; // NORMACA 0 | HISUP 1 | RESPONSE DATA FORMAT 2
  scratch[4] = NO_LUN_INQUIRY_LENGTH - 5; // ADDITIONAL LENGTH: bytes after byte 4
  // Bytes 5-7: no capability bits; bytes 8-35: identification strings blank (no LU).
  scratch.fill(0x20, 8, 36);
  respondData(cmd, scratch, NO_LUN_INQUIRY_LENGTH, alloc);
}
