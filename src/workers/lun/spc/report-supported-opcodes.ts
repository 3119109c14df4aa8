/**
 * REPORT SUPPORTED OPERATION CODES (SPC-4 6.35), MAINTENANCE IN service action 0Ch,
 * generated from the same registry rows that dispatch (../opcode-registry.ts).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength12, respondData } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import type { CommandDescriptor } from './handler.ts';
import { Completion } from './handler.ts';
import { rejectReservedBits, rejectReservedBytes } from './unit-status.ts';

/** SPC-4 6.35.1 table 188: REPORTING OPTIONS. */
export const ReportingOptions = {
  ALL: 0b000,
  ONE_OPCODE: 0b001,
  ONE_OPCODE_AND_SERVICE_ACTION: 0b010,
  ONE_OPCODE_SERVICE_ACTION_IF_ANY: 0b011,
} as const;

/** SPC-4 6.35.3 table 192: SUPPORT values. */
const SUPPORT_NOT_SUPPORTED = 0b001;
const SUPPORT_STANDARD = 0b011;

/** Command timeouts descriptor (SPC-4 6.35.4 table 193) length, with its 2-byte length field. */
const TIMEOUTS_DESCRIPTOR_LENGTH = 12;

/** Write a command timeouts descriptor with unspecified (zero) timeouts; returns 12. */
function writeTimeouts(buf: Buffer, p: number): number {
  buf.fill(0, p, p + TIMEOUTS_DESCRIPTOR_LENGTH);
  buf.writeUInt16BE(0x0a, p); // 0-1: DESCRIPTOR LENGTH
  // 2: reserved; 3: COMMAND SPECIFIC; 4-7: NOMINAL COMMAND PROCESSING TIMEOUT and
  // 8-11: RECOMMENDED COMMAND TIMEOUT: 0, not specified.
  return TIMEOUTS_DESCRIPTOR_LENGTH;
}

/**
 * CDB (SPC-4 6.35.1 table 187):
 *   0 A3h | 1 reserved(7..5) SERVICE ACTION 0Ch | 2 RCTD(7) reserved(6..3) REPORTING OPTIONS
 *   3 REQUESTED OPERATION CODE | 4-5 REQUESTED SERVICE ACTION | 6-9 ALLOCATION LENGTH
 *   10 reserved | 11 CONTROL
 */
export function reportSupportedOperationCodes(
  lu: LogicalUnit,
  cmd: ScsiCommand,
  commands: readonly CommandDescriptor[],
): Completion {
  const cdb = cmd.cdb;
  if (
    rejectReservedBits(cmd, 1, 0xe0) ||
    rejectReservedBits(cmd, 2, 0x78) ||
    rejectReservedBytes(cmd, 10, 11)
  ) {
    return Completion.DONE;
  }
  const rctd = (cdb[2]! & 0x80) !== 0;
  const options = cdb[2]! & 0x07;
  const alloc = allocationLength12(cdb);
  const buf = lu.scratch;

  if (options === ReportingOptions.ALL) {
    // All-commands parameter data (SPC-4 6.35.2 table 189).
    let p = 4;
    for (const c of commands) {
      const hasSa = c.serviceAction !== undefined;
      // Command descriptor (table 190):
      buf[p] = c.opcode; // 0: OPERATION CODE
      buf[p + 1] = 0; // 1: reserved
      buf.writeUInt16BE(c.serviceAction ?? 0, p + 2); // 2-3: SERVICE ACTION
      buf[p + 4] = 0; // 4: reserved
      buf[p + 5] = (rctd ? 0x02 : 0) | (hasSa ? 0x01 : 0); // 5: CTDP(1) | SERVACTV(0)
      buf.writeUInt16BE(c.usage.length, p + 6); // 6-7: CDB LENGTH
      p += 8;
      if (rctd) p += writeTimeouts(buf, p);
    }
    buf.writeUInt32BE(p - 4, 0); // 0-3: COMMAND DATA LENGTH: bytes after this field
    respondData(cmd, buf, p, alloc);
    return Completion.DONE;
  }

  const opcode = cdb[3]!;
  const requestedSa = cdb.readUInt16BE(4);
  const opcodeHasSa = commands.some((c) => c.opcode === opcode && c.serviceAction !== undefined);
  let found: CommandDescriptor | undefined;
  switch (options) {
    case ReportingOptions.ONE_OPCODE:
      // The opcode must not be one that dispatches on a service action (SPC-4 6.35.1).
      if (opcodeHasSa) {
        setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 2));
        return Completion.DONE;
      }
      found = commands.find((c) => c.opcode === opcode);
      break;
    case ReportingOptions.ONE_OPCODE_AND_SERVICE_ACTION:
      if (!opcodeHasSa && commands.some((c) => c.opcode === opcode)) {
        setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 2));
        return Completion.DONE;
      }
      found = commands.find((c) => c.opcode === opcode && c.serviceAction === requestedSa);
      break;
    case ReportingOptions.ONE_OPCODE_SERVICE_ACTION_IF_ANY:
      found = commands.find((c) => c.opcode === opcode && (!opcodeHasSa || c.serviceAction === requestedSa));
      break;
    default:
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 2));
      return Completion.DONE;
  }

  // One-command parameter data (SPC-4 6.35.3 table 191).
  buf[0] = 0; // 0: reserved
  if (found === undefined) {
    buf[1] = SUPPORT_NOT_SUPPORTED; // 1: CTDP 0 | SUPPORT 001b
    buf.writeUInt16BE(0, 2); // 2-3: CDB SIZE 0
    respondData(cmd, buf, 4, alloc);
    return Completion.DONE;
  }
  buf[1] = (rctd ? 0x80 : 0) | SUPPORT_STANDARD; // 1: CTDP(7) | SUPPORT 011b
  buf.writeUInt16BE(found.usage.length, 2); // 2-3: CDB SIZE
  let p = 4;
  for (const b of found.usage) buf[p++] = b; // 4..: CDB USAGE DATA
  if (rctd) p += writeTimeouts(buf, p);
  respondData(cmd, buf, p, alloc);
  return Completion.DONE;
}
