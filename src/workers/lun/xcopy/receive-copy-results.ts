/**
 * RECEIVE COPY RESULTS (LID1) (SPC-4 6.18; opcode 84h): COPY STATUS (00h), OPERATING
 * PARAMETERS (03h) and FAILED SEGMENT DETAILS (04h), and the Third-party Copy VPD page
 * (SPC-4 7.8.17) that advertises them.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength16, respondData } from '../../../shared/scsi/cdb.ts';
import { Opcode } from '../../../shared/scsi/opcodes.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { CopyManagerStatus, copyKey } from './copy-state.ts';
import {
  IMPLEMENTED_DESCRIPTORS,
  MAX_CONCURRENT_COPIES,
  MAX_CSCD_DESCRIPTORS,
  MAX_DESCRIPTOR_LIST_LENGTH,
  MAX_INLINE_DATA_LENGTH,
  MAX_SEGMENT_BLOCKS,
  MAX_SEGMENT_DESCRIPTORS,
} from './limits.ts';

/** RECEIVE COPY RESULTS service actions (SPC-4 6.18.1 table 372). */
export const CopyResults = {
  COPY_STATUS: 0x00,
  RECEIVE_DATA: 0x01,
  OPERATING_PARAMETERS: 0x03,
  FAILED_SEGMENT_DETAILS: 0x04,
} as const;

/** EXTENDED COPY service actions (SPC-4 annex D.3.3). */
export const ExtendedCopyAction = {
  EXTENDED_COPY_LID1: 0x00,
} as const;

const LIST_ID_FIELD = Object.freeze(cdbField(2, 7));

/** Check the CDB shared by all service actions; true when completed with CHECK CONDITION. */
function rejectCdb(cmd: ScsiCommand, listIdReserved: boolean): boolean {
  return (
    rejectReservedBits(cmd, 1, 0xe0) ||
    (listIdReserved && rejectReservedBytes(cmd, 2, 3)) ||
    rejectReservedBytes(cmd, 3, 10) ||
    rejectReservedBytes(cmd, 14, 15)
  );
}

/**
 * RECEIVE COPY RESULTS CDB (SPC-4 6.18.1 table 371):
 *   0 84h | 1 reserved(7..5) SERVICE ACTION | 2 LIST IDENTIFIER | 3-9 reserved
 *   10-13 ALLOCATION LENGTH | 14 reserved | 15 CONTROL
 *
 * COPY STATUS parameter data (SPC-4 6.18.3 table 374), 12 bytes.
 */
export function copyStatus(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectCdb(cmd, false)) return Completion.DONE;
  const record = lu.copies.records.get(copyKey(cmd.nexus, cmd.cdb[2]!));
  if (record === undefined) {
    // No copy with this list id in progress or held (SPC-4 6.18.3).
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, LIST_ID_FIELD);
    return Completion.DONE;
  }
  const buf = lu.scratch;
  buf.fill(0, 0, 12);
  buf.writeUInt32BE(8, 0); // 0-3: AVAILABLE DATA: bytes after this field
  // 4: HDD (held data discarded) | COPY MANAGER STATUS.
  buf[4] = (lu.copies.discardedHeld ? 0x80 : 0) | record.status;
  buf.writeUInt16BE(Math.min(record.segmentsProcessed, 0xffff), 5); // 5-6: SEGMENTS PROCESSED
  // 7: TRANSFER COUNT UNITS (table 376): bytes while they fit in 32 bits, else KiB (01h),
  // MiB (02h), GiB (03h). 8-11: TRANSFER COUNT.
  let units = 0;
  let count = record.bytesTransferred;
  while (count > 0xffffffff && units < 5) {
    count = Math.floor(count / 1024);
    units++;
  }
  buf[7] = units;
  buf.writeUInt32BE(count, 8);
  // Held results stay until a new EXTENDED COPY reuses the list id, FAILED SEGMENT
  // DETAILS reports them, or HELD_RESULTS_LIMIT pushes them out.
  respondData(cmd, buf, 12, allocationLength16(cmd.cdb));
  return Completion.DONE;
}

/** OPERATING PARAMETERS parameter data (SPC-4 6.18.4 table 377). */
export function operatingParameters(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectCdb(cmd, true)) return Completion.DONE;
  const buf = lu.scratch;
  const n = 44 + IMPLEMENTED_DESCRIPTORS.length;
  buf.fill(0, 0, n);
  buf.writeUInt32BE(n - 4, 0); // 0-3: AVAILABLE DATA
  buf[4] = 0x01; // 4: reserved | SNLID 1: LIST ID USAGE 11b (no list identifier) supported
  // 5-7: reserved.
  buf.writeUInt16BE(MAX_CSCD_DESCRIPTORS, 8); // 8-9: MAXIMUM CSCD DESCRIPTOR COUNT
  buf.writeUInt16BE(MAX_SEGMENT_DESCRIPTORS, 10); // 10-11: MAXIMUM SEGMENT DESCRIPTOR COUNT
  buf.writeUInt32BE(MAX_DESCRIPTOR_LIST_LENGTH, 12); // 12-15: MAXIMUM DESCRIPTOR LIST LENGTH
  buf.writeUInt32BE(MAX_SEGMENT_BLOCKS * lu.blockSize, 16); // 16-19: MAXIMUM SEGMENT LENGTH (bytes)
  buf.writeUInt32BE(MAX_INLINE_DATA_LENGTH, 20); // 20-23: MAXIMUM INLINE DATA LENGTH
  buf.writeUInt32BE(0, 24); // 24-27: HELD DATA LIMIT: no segment returns data to hold
  buf.writeUInt32BE(0, 28); // 28-31: MAXIMUM STREAM DEVICE TRANSFER SIZE: no stream devices
  // 32-33: reserved.
  buf.writeUInt16BE(MAX_CONCURRENT_COPIES, 34); // 34-35: TOTAL CONCURRENT COPIES
  buf[36] = MAX_CONCURRENT_COPIES; // 36: MAXIMUM CONCURRENT COPIES
  buf[37] = lu.blockShift; // 37: DATA SEGMENT GRANULARITY (log2 bytes)
  buf[38] = 0; // 38: INLINE DATA GRANULARITY
  buf[39] = 0; // 39: HELD DATA GRANULARITY
  // 40-42: reserved. 43: IMPLEMENTED DESCRIPTOR LIST LENGTH; 44..: the type codes.
  buf[43] = IMPLEMENTED_DESCRIPTORS.length;
  for (let i = 0; i < IMPLEMENTED_DESCRIPTORS.length; i++) buf[44 + i] = IMPLEMENTED_DESCRIPTORS[i]!;
  respondData(cmd, buf, n, allocationLength16(cmd.cdb));
  return Completion.DONE;
}

/**
 * FAILED SEGMENT DETAILS parameter data (SPC-4 6.18.5 table 378):
 *   0-3 AVAILABLE DATA | 4-59 reserved | 60 COPY COMMAND STATUS | 61 reserved
 *   62-63 SENSE DATA LENGTH | 64.. SENSE DATA
 * Available for copies whose results are held (LIST ID USAGE 00b) until reported here.
 * A copy still in progress reports AVAILABLE DATA 0.
 */
export function failedSegmentDetails(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectCdb(cmd, false)) return Completion.DONE;
  const key = copyKey(cmd.nexus, cmd.cdb[2]!);
  const record = lu.copies.records.get(key);
  if (record === undefined) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, LIST_ID_FIELD);
    return Completion.DONE;
  }
  const buf = lu.scratch;
  if (record.status === CopyManagerStatus.IN_PROGRESS_FOREGROUND) {
    buf.fill(0, 0, 4); // AVAILABLE DATA 0: nothing to report yet
    respondData(cmd, buf, 4, allocationLength16(cmd.cdb));
    return Completion.DONE;
  }
  const n = 64 + record.sense.length;
  buf.fill(0, 0, 64);
  buf.writeUInt32BE(n - 4, 0); // 0-3: AVAILABLE DATA
  buf[60] = record.commandStatus; // 60: COPY COMMAND STATUS
  buf.writeUInt16BE(record.sense.length, 62); // 62-63: SENSE DATA LENGTH
  record.sense.copy(buf, 64); // 64..: SENSE DATA
  lu.copies.records.delete(key); // reported: no longer held
  respondData(cmd, buf, n, allocationLength16(cmd.cdb));
  return Completion.DONE;
}

/** Third-party copy descriptor types (SPC-4 7.8.17.1 table 591). */
const TpcDescriptor = {
  SUPPORTED_COMMANDS: 0x0001,
  SUPPORTED_DESCRIPTORS: 0x0008,
  GENERAL_COPY_OPERATIONS: 0x8001,
} as const;

/** The third-party copy commands advertised: opcode → service actions. */
const TPC_COMMANDS: readonly (readonly [number, readonly number[]])[] = [
  [Opcode.EXTENDED_COPY, [ExtendedCopyAction.EXTENDED_COPY_LID1]],
  [
    Opcode.RECEIVE_COPY_RESULTS,
    [CopyResults.COPY_STATUS, CopyResults.OPERATING_PARAMETERS, CopyResults.FAILED_SEGMENT_DETAILS],
  ],
];

/** Write a descriptor's 4-byte header and pad its body to a multiple of 4; returns its end. */
function closeDescriptor(buf: Buffer, start: number, type: number, bodyEnd: number): number {
  let end = bodyEnd;
  while ((end - start) % 4 !== 0) buf[end++] = 0; // pad (SPC-4 7.8.17.1)
  buf.writeUInt16BE(type, start); // 0-1: THIRD-PARTY COPY DESCRIPTOR TYPE
  buf.writeUInt16BE(end - start - 4, start + 2); // 2-3: THIRD-PARTY COPY DESCRIPTOR LENGTH
  return end;
}

/**
 * Body of the Third-party Copy VPD page (8Fh, SPC-4 7.8.17) at buf[4..]; returns the
 * page's total length (the caller writes the 4-byte VPD header).
 */
export function buildThirdPartyCopyDescriptors(lu: LogicalUnit, buf: Buffer): number {
  let p = 4;
  // Supported Commands (SPC-4 7.8.17.3 table 594): 4 COMMANDS SUPPORTED LIST LENGTH,
  // then per command: OPERATION CODE, SERVICE ACTION LIST LENGTH, SERVICE ACTIONs.
  let start = p;
  let q = start + 5;
  for (const [op, actions] of TPC_COMMANDS) {
    buf[q++] = op;
    buf[q++] = actions.length;
    for (const a of actions) buf[q++] = a;
  }
  buf[start + 4] = q - (start + 5);
  p = closeDescriptor(buf, start, TpcDescriptor.SUPPORTED_COMMANDS, q);

  // Supported Descriptors (SPC-4 7.8.17.6 table 599): 4 SUPPORTED DESCRIPTOR LIST
  // LENGTH, then the implemented descriptor type codes.
  start = p;
  q = start + 5;
  for (const d of IMPLEMENTED_DESCRIPTORS) buf[q++] = d;
  buf[start + 4] = IMPLEMENTED_DESCRIPTORS.length;
  p = closeDescriptor(buf, start, TpcDescriptor.SUPPORTED_DESCRIPTORS, q);

  // General Copy Operations (SPC-4 7.8.17.9 table 602), 32 bytes:
  // 4-7 TOTAL CONCURRENT COPIES | 8-11 MAXIMUM IDENTIFIED CONCURRENT COPIES |
  // 12-15 MAXIMUM SEGMENT LENGTH | 16 DATA SEGMENT GRANULARITY |
  // 17 INLINE DATA GRANULARITY | 18-31 reserved
  start = p;
  buf.fill(0, start, start + 32);
  buf.writeUInt32BE(MAX_CONCURRENT_COPIES, start + 4);
  buf.writeUInt32BE(MAX_CONCURRENT_COPIES, start + 8);
  buf.writeUInt32BE(MAX_SEGMENT_BLOCKS * lu.blockSize, start + 12);
  buf[start + 16] = lu.blockShift;
  p = closeDescriptor(buf, start, TpcDescriptor.GENERAL_COPY_OPERATIONS, start + 32);
  return p;
}
