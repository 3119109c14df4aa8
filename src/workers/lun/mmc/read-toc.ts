/**
 * READ TOC/PMA/ATIP (MMC-6 6.26) for the disc an ISO image is: one complete session
 * holding one data track (track 1, Mode 1, starting at LBA 0), then the lead-out at the
 * capacity. PMA, ATIP and CD-TEXT exist on recordable or audio discs only.
 *
 * CDB (MMC-6 table 461):
 *   0 43h | 1 reserved(7..2) MSF(1) reserved(0) | 2 reserved(7..4) FORMAT(3..0)
 *   3-5 reserved | 6 TRACK/SESSION NUMBER | 7-8 ALLOCATION LENGTH | 9 CONTROL
 * FORMAT: 0h formatted TOC, 1h multi-session information, 2h raw TOC; 3h PMA, 4h ATIP,
 * 5h CD-TEXT are not on this medium (INVALID FIELD IN CDB).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength10, respondData } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';

/** TRACK NUMBER of the lead-out (MMC-6 6.26.2.3). */
export const LEAD_OUT = 0xaa;
/** ADR 1h (Q sub-channel encodes the current position) | CONTROL 4h (data track, uninterrupted). */
export const ADR_CONTROL_DATA = 0x14;

/**
 * Write a 4-byte address field at buf[p]: an LBA, or with `msf` the MSF form (0, M, S, F)
 * of MMC-6 4.2.3.4: LBA + 150 frames (the 2 s pregap), 75 frames per second.
 */
export function writeAddress(buf: Buffer, p: number, lba: number, msf: boolean): void {
  if (!msf) {
    buf.writeUInt32BE(lba >>> 0, p);
    return;
  }
  const frames = lba + 150;
  buf[p] = 0; // reserved
  buf[p + 1] = Math.min(0xff, Math.floor(frames / (60 * 75))); // M
  buf[p + 2] = Math.floor(frames / 75) % 60; // S
  buf[p + 3] = frames % 75; // F
}

export function readToc(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xfd) || rejectReservedBits(cmd, 2, 0xf0) || rejectReservedBytes(cmd, 3, 6))
    return Completion.DONE;
  const msf = (cdb[1]! & 0x02) !== 0;
  const format = cdb[2]! & 0x0f;
  const number = cdb[6]!;
  const buf = lu.scratch;
  let n: number;
  if (format === 0) n = formattedToc(lu, buf, number, msf);
  else if (format === 1) n = sessionInfo(buf, msf);
  else if (format === 2) n = rawToc(lu, buf, number);
  else n = -1;
  if (n === -1) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 3));
    return Completion.DONE;
  }
  if (n === -2) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(6, 7));
    return Completion.DONE;
  }
  respondData(cmd, buf, n, allocationLength10(cdb));
  return Completion.DONE;
}

/**
 * Format 0h (MMC-6 6.26.3.2, tables 464/465): the descriptors from track `start` on
 * (0 and 1: track 1 then the lead-out; AAh: the lead-out only). -2 for another number.
 */
function formattedToc(lu: LogicalUnit, buf: Buffer, start: number, msf: boolean): number {
  if (start > 1 && start !== LEAD_OUT) return -2;
  let p = 4;
  const descriptor = (track: number, lba: number): void => {
    buf[p] = 0; // reserved
    buf[p + 1] = ADR_CONTROL_DATA; // ADR | CONTROL
    buf[p + 2] = track; // TRACK NUMBER
    buf[p + 3] = 0; // reserved
    writeAddress(buf, p + 4, lba, msf); // TRACK START ADDRESS
    p += 8;
  };
  if (start !== LEAD_OUT) descriptor(1, 0);
  descriptor(LEAD_OUT, lu.blockCount);
  buf.writeUInt16BE(p - 2, 0); // 0-1: TOC DATA LENGTH (bytes after this field)
  buf[2] = 1; // FIRST TRACK NUMBER
  buf[3] = 1; // LAST TRACK NUMBER
  return p;
}

/** Format 1h (MMC-6 6.26.3.3, table 466): the first track of the last complete session. */
function sessionInfo(buf: Buffer, msf: boolean): number {
  buf.writeUInt16BE(10, 0); // 0-1: TOC DATA LENGTH
  buf[2] = 1; // FIRST COMPLETE SESSION NUMBER
  buf[3] = 1; // LAST COMPLETE SESSION NUMBER
  buf[4] = 0; // reserved
  buf[5] = ADR_CONTROL_DATA; // ADR | CONTROL
  buf[6] = 1; // FIRST TRACK NUMBER IN LAST COMPLETE SESSION
  buf[7] = 0; // reserved
  writeAddress(buf, 8, 0, msf); // START ADDRESS OF FIRST TRACK IN LAST SESSION
  return 12;
}

/**
 * Format 2h (MMC-6 6.26.3.4, tables 467/468): the Q sub-channel entries of the lead-in
 * of session 1 (`start`: 0 or 1), always in MSF: A0h first track, A1h last track, A2h
 * lead-out start, then track 1's start.
 */
function rawToc(lu: LogicalUnit, buf: Buffer, start: number): number {
  if (start > 1) return -2;
  let p = 4;
  const entry = (point: number, pmin: number, psec: number, pframe: number): void => {
    buf[p] = 1; // SESSION NUMBER
    buf[p + 1] = ADR_CONTROL_DATA; // ADR | CONTROL
    buf[p + 2] = 0; // TNO: lead-in
    buf[p + 3] = point; // POINT
    buf[p + 4] = 0; // MIN
    buf[p + 5] = 0; // SEC
    buf[p + 6] = 0; // FRAME
    buf[p + 7] = 0; // ZERO
    buf[p + 8] = pmin; // PMIN
    buf[p + 9] = psec; // PSEC
    buf[p + 10] = pframe; // PFRAME
    p += 11;
  };
  entry(0xa0, 1, 0x00, 0); // first track 1; PSEC disc type 00h: CD-DA or CD-ROM
  entry(0xa1, 1, 0, 0); // last track 1
  const out = Buffer.alloc(4); // allocation: not a hot path
  writeAddress(out, 0, lu.blockCount, true);
  entry(0xa2, out[1]!, out[2]!, out[3]!); // lead-out start
  writeAddress(out, 0, 0, true);
  entry(1, out[1]!, out[2]!, out[3]!); // track 1 start: 00:02:00
  buf.writeUInt16BE(p - 2, 0); // 0-1: TOC DATA LENGTH
  buf[2] = 1; // FIRST COMPLETE SESSION NUMBER
  buf[3] = 1; // LAST COMPLETE SESSION NUMBER
  return p;
}
