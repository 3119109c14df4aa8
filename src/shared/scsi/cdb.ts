/**
 * CDB decoding helpers (SPC-4 4.2). Pure functions over a Buffer view, allocation free,
 * usable on the hot path.
 *
 *   opcode byte:  7 6 5 | 4 3 2 1 0
 *                 GROUP | COMMAND CODE
 *
 * The group code fixes the CDB length (SPC-4 4.2.5.1 table 4), which fixes where the
 * LBA, the transfer length and the control byte are for the common READ/WRITE layouts
 * (SBC-4 5.x; SPC-4 4.2.2 figure 6 to 9).
 */
import type { ScsiCommand } from './command.ts';
import { ScsiStatus } from './command.ts';

/** CDB length by group code (opcode >> 5); 0 = reserved / variable / vendor specific. */
export const CDB_LENGTH_BY_GROUP: readonly number[] = [
  6, // 000b: 6-byte commands
  10, // 001b: 10-byte commands
  10, // 010b: 10-byte commands
  0, // 011b: reserved (0x7F: variable-length CDB, SPC-4 4.2.3)
  16, // 100b: 16-byte commands
  12, // 101b: 12-byte commands
  0, // 110b: vendor specific
  0, // 111b: vendor specific
];

/** Length of the CDB that starts with `opcode`, or 0 when the group does not define one. */
export function cdbLengthOf(opcode: number): number {
  return CDB_LENGTH_BY_GROUP[(opcode >> 5) & 0x07]!;
}

/** Offset of the CONTROL byte (the last CDB byte, SAM-5 5.2), or -1 when unknown. */
export function controlByteOffset(opcode: number): number {
  return cdbLengthOf(opcode) - 1;
}

const TWO_POW_32 = 0x1_0000_0000;

/**
 * The LOGICAL BLOCK ADDRESS of a READ/WRITE/VERIFY-style CDB of any group.
 *
 * 6-byte (SBC-4 5.19): 21 bits in bytes 1-3. 10/12-byte: 32 bits at bytes 2-5.
 * 16-byte: 64 bits at bytes 2-9. A 64-bit LBA is returned as a double: exact up to
 * 2^53, approximate (but still larger than any capacity this process can address)
 * above, so range checks stay correct without BigInt allocation.
 */
export function cdbLba(cdb: Buffer): number {
  switch (cdbLengthOf(cdb[0]!)) {
    case 6:
      return ((cdb[1]! & 0x1f) << 16) | (cdb[2]! << 8) | cdb[3]!;
    case 10:
    case 12:
      return cdb.readUInt32BE(2);
    case 16:
      return cdb.readUInt32BE(2) * TWO_POW_32 + cdb.readUInt32BE(6);
    default:
      return 0;
  }
}

/**
 * The TRANSFER LENGTH (or VERIFICATION LENGTH / NUMBER OF LOGICAL BLOCKS) field,
 * in logical blocks. For 6-byte READ/WRITE, 0 means 256 blocks (SBC-4 5.19, 5.47);
 * for the other groups 0 means no blocks.
 */
export function cdbTransferLength(cdb: Buffer): number {
  switch (cdbLengthOf(cdb[0]!)) {
    case 6:
      return cdb[4]! === 0 ? 256 : cdb[4]!;
    case 10:
      return cdb.readUInt16BE(7);
    case 12:
      return cdb.readUInt32BE(6);
    case 16:
      return cdb.readUInt32BE(10);
    default:
      return 0;
  }
}

/** 6-byte CDB ALLOCATION LENGTH at byte 4 (e.g. MODE SENSE(6), REQUEST SENSE). */
export function allocationLength6(cdb: Buffer): number {
  return cdb[4]!;
}

/** 16-bit ALLOCATION LENGTH at bytes 3-4 (INQUIRY, SPC-4 6.6.1: 16 bits since SPC-3). */
export function allocationLengthInquiry(cdb: Buffer): number {
  return cdb.readUInt16BE(3);
}

/** 10-byte CDB ALLOCATION LENGTH at bytes 7-8 (e.g. MODE SENSE(10)). */
export function allocationLength10(cdb: Buffer): number {
  return cdb.readUInt16BE(7);
}

/** 12-byte CDB ALLOCATION LENGTH at bytes 6-9 (REPORT LUNS, MAINTENANCE IN). */
export function allocationLength12(cdb: Buffer): number {
  return cdb.readUInt32BE(6);
}

/** 16-byte CDB ALLOCATION LENGTH at bytes 10-13 (SERVICE ACTION IN(16)). */
export function allocationLength16(cdb: Buffer): number {
  return cdb.readUInt32BE(10);
}

/** SERVICE ACTION field (bits 4..0 of byte 1) of MAINTENANCE IN/OUT, SA IN/OUT(16). */
export function serviceAction(cdb: Buffer): number {
  return cdb[1]! & 0x1f;
}

/**
 * Complete a data-in command whose response was built in `src[0, responseLength)`:
 * SPC-4 4.2.5.6, the device server transfers the lesser of the ALLOCATION LENGTH and
 * the available data. Copies at most `cmd.data.length` bytes (the fabric reports any
 * residual) and sets status GOOD. Does not call `finish()`.
 */
export function respondData(
  cmd: ScsiCommand,
  src: Buffer,
  responseLength: number,
  allocationLength: number,
): void {
  const n = responseLength < allocationLength ? responseLength : allocationLength;
  const copy = n < cmd.data.length ? n : cmd.data.length;
  if (copy > 0) src.copy(cmd.data, 0, 0, copy);
  cmd.dataInLength = n;
  cmd.status = ScsiStatus.GOOD;
  cmd.senseLength = 0;
}
