/**
 * REPORT LUNS (SPC-4 6.33), built by the session worker from its LUN map without a hop
 * to a LUN worker (DESIGN.md: commands that need no I/O may be answered in place).
 */
import type { ScsiCommand } from './command.ts';
import { allocationLength12, respondData } from './cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from './sense.ts';

/** SPC-4 6.33 table 172: SELECT REPORT values spindle understands. */
export const SelectReport = {
  /** All logical units except well-known LUs. */
  ALL_EXCEPT_WELL_KNOWN: 0x00,
  /** Well-known LUs only (spindle has none: an empty list). */
  WELL_KNOWN_ONLY: 0x01,
  /** All logical units including well-known LUs. */
  ALL: 0x02,
} as const;

/** Largest LUN single-level flat space addressing can carry (SAM-5 4.7.7: 14 bits). */
export const MAX_SINGLE_LEVEL_LUN = 0x3fff;

/** Bytes in the REPORT LUNS parameter data header (LUN LIST LENGTH + reserved). */
const HEADER_LENGTH = 8;
const LUN_ENTRY_LENGTH = 8;

/**
 * Encode `lun` as an 8-byte single-level LUN (SAM-5 4.7) at dst[offset, +8):
 *   < 256:      peripheral device addressing, ADDRESS METHOD 00b, BUS IDENTIFIER 0
 *               (byte 0 = 00h, byte 1 = LUN), which is what every initiator expects for
 *               small LUNs;
 *   256..16383: flat space addressing, ADDRESS METHOD 01b, 14-bit LUN in byte 0 bits 5..0
 *               and byte 1.
 * Bytes 2-7 (second to fourth level) are zero. Returns false for LUNs above 16383.
 */
export function encodeLun(dst: Uint8Array, offset: number, lun: number): boolean {
  if (!Number.isInteger(lun) || lun < 0 || lun > MAX_SINGLE_LEVEL_LUN) return false;
  if (lun < 256) {
    dst[offset] = 0x00; // ADDRESS METHOD 00b | BUS IDENTIFIER 0
    dst[offset + 1] = lun; // TARGET OR LUN
  } else {
    dst[offset] = 0x40 | (lun >> 8); // ADDRESS METHOD 01b | LUN bits 13..8
    dst[offset + 1] = lun & 0xff; // LUN bits 7..0
  }
  dst.fill(0, offset + 2, offset + 8); // no second/third/fourth level
  return true;
}

/**
 * Answer a REPORT LUNS command with `luns` (the LUNs the I_T nexus may see, in the order
 * to report). LUNs that single-level addressing cannot carry are left out; the config
 * schema keeps LUNs below 16384. Fills status, sense and dataInLength; does not call
 * `cmd.finish()`.
 *
 * CDB (SPC-4 6.33 table 171):
 *   0 opcode A0h | 1 reserved | 2 SELECT REPORT | 3-5 reserved
 *   6-9 ALLOCATION LENGTH | 10 reserved | 11 CONTROL
 */
export function buildReportLuns(cmd: ScsiCommand, luns: readonly number[]): void {
  const cdb = cmd.cdb;
  const select = cdb[2]!;
  if (
    select !== SelectReport.ALL_EXCEPT_WELL_KNOWN &&
    select !== SelectReport.WELL_KNOWN_ONLY &&
    select !== SelectReport.ALL
  ) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 7));
    return;
  }
  const alloc = allocationLength12(cdb);
  // SPC-4 6.33 (and SPC-3 6.21): an allocation length below 16 bytes cannot hold the
  // header and one LUN; the device server rejects it.
  if (alloc < 16) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(6, 7));
    return;
  }
  const wanted = select === SelectReport.WELL_KNOWN_ONLY ? [] : luns;
  // Not a hot path: one buffer per REPORT LUNS (at most 8 + 8 x 16384 bytes).
  const response = Buffer.alloc(HEADER_LENGTH + wanted.length * LUN_ENTRY_LENGTH);
  let offset = HEADER_LENGTH;
  for (const lun of wanted) if (encodeLun(response, offset, lun)) offset += LUN_ENTRY_LENGTH;
  response.writeUInt32BE(offset - HEADER_LENGTH, 0); // 0-3: LUN LIST LENGTH (n - 7)
  response.writeUInt32BE(0, 4); // 4-7: reserved
  // Truncate to the allocation length and the data buffer (SPC-4 4.2.5.6).
  respondData(cmd, response, offset, alloc);
}
