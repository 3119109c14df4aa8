/**
 * READ DISC INFORMATION (MMC-6 6.22) and READ TRACK INFORMATION (MMC-6 6.27) for the disc
 * an ISO image is: a finalized, non-erasable disc with one complete session holding one
 * data track (read-toc.ts describes the same layout).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength10, respondData } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';

/** Standard disc information length (MMC-6 table 399), without optional OPC tables. */
const DISC_INFORMATION_LENGTH = 34;
/** Track information length (MMC-6 table 483). */
const TRACK_INFORMATION_LENGTH = 48;

/**
 * READ DISC INFORMATION CDB (MMC-6 table 397):
 *   0 51h | 1 reserved(7..3) DATA TYPE(2..0) | 2-6 reserved | 7-8 ALLOCATION LENGTH | 9 CONTROL
 * DATA TYPE 000b: standard disc information; 001b (track resources) and 010b (POW
 * resources) describe recordable media and are not supported.
 */
export function readDiscInformation(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectReservedBits(cmd, 1, 0xf8) || rejectReservedBytes(cmd, 2, 7)) return Completion.DONE;
  if ((cmd.cdb[1]! & 0x07) !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 2));
    return Completion.DONE;
  }
  const b = lu.scratch;
  b.fill(0, 0, DISC_INFORMATION_LENGTH);
  b.writeUInt16BE(DISC_INFORMATION_LENGTH - 2, 0); // 0-1: DISC INFORMATION LENGTH
  // 2: DISC INFORMATION DATA TYPE 000b | ERASABLE 0 | STATE OF LAST SESSION 11b
  //    (complete) | DISC STATUS 10b (finalized)
  b[2] = 0x0e;
  b[3] = 1; // NUMBER OF FIRST TRACK ON DISC
  b[4] = 1; // NUMBER OF SESSIONS (LSB)
  b[5] = 1; // FIRST TRACK NUMBER IN LAST SESSION (LSB)
  b[6] = 1; // LAST TRACK NUMBER IN LAST SESSION (LSB)
  // 7: DID_V 0 | DBC_V 0 | URU 1 (unrestricted use) | DAC_V 0 | reserved | LEGACY 0 |
  //    BG FORMAT STATUS 00b
  b[7] = 0x20;
  b[8] = 0x00; // DISC TYPE 00h: CD-DA or CD-ROM
  // 9-11: MSBs of the session and track numbers: 0. 12-15: DISC IDENTIFICATION 0.
  // 16-19 LAST SESSION LEAD-IN START ADDRESS and 20-23 LAST POSSIBLE LEAD-OUT START
  // ADDRESS: FFFFFFFFh on a finalized disc (MMC-6 6.22.3.1.12, 6.22.3.1.13).
  b.writeUInt32BE(0xffffffff, 16);
  b.writeUInt32BE(0xffffffff, 20);
  // 24-31: DISC BAR CODE 0; 32: DISC APPLICATION CODE 0; 33: NUMBER OF OPC TABLES 0.
  respondData(cmd, b, DISC_INFORMATION_LENGTH, allocationLength10(cmd.cdb));
  return Completion.DONE;
}

/** ADDRESS/NUMBER TYPE (MMC-6 table 481). */
const AddressType = { LBA: 0b00, TRACK: 0b01, SESSION: 0b10 } as const;

/**
 * READ TRACK INFORMATION CDB (MMC-6 table 480):
 *   0 52h | 1 reserved(7..3) OPEN(2) ADDRESS/NUMBER TYPE(1..0)
 *   2-5 LOGICAL BLOCK ADDRESS / TRACK NUMBER / SESSION NUMBER | 6 reserved
 *   7-8 ALLOCATION LENGTH | 9 CONTROL
 * The only track is track 1 of session 1, LBAs 0 to capacity - 1. OPEN = 1 asks for the
 * first open track: a finalized disc has none (INVALID FIELD IN CDB), as have track 0
 * (the lead-in), the lead-out and the invisible track (FFh).
 */
export function readTrackInformation(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xf8) || rejectReservedBytes(cmd, 6, 7)) return Completion.DONE;
  if ((cdb[1]! & 0x04) !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 2));
    return Completion.DONE;
  }
  const type = cdb[1]! & 0x03;
  const value = cdb.readUInt32BE(2);
  if (type === AddressType.LBA) {
    if (value >= lu.blockCount) {
      setCheckCondition(cmd, SenseReason.LBA_OUT_OF_RANGE);
      return Completion.DONE;
    }
  } else if ((type !== AddressType.TRACK && type !== AddressType.SESSION) || value !== 1) {
    setCheckCondition(
      cmd,
      SenseReason.INVALID_FIELD_IN_CDB,
      cdbField(type > AddressType.SESSION ? 1 : 2, type > AddressType.SESSION ? 1 : 7),
    );
    return Completion.DONE;
  }
  const b = lu.scratch;
  b.fill(0, 0, TRACK_INFORMATION_LENGTH);
  b.writeUInt16BE(TRACK_INFORMATION_LENGTH - 2, 0); // 0-1: DATA LENGTH
  b[2] = 1; // TRACK NUMBER (LSB)
  b[3] = 1; // SESSION NUMBER (LSB)
  // 4: reserved. 5: LJRS 00b | DAMAGE 0 | COPY 0 | TRACK MODE 4h (data, uninterrupted)
  b[5] = 0x04;
  // 6: RT 0 | BLANK 0 | PACKET/INC 0 | FP 0 | DATA MODE 1h (Mode 1: 2048-byte user data)
  b[6] = 0x01;
  b[7] = 0x00; // reserved | LRA_V 0 | NWA_V 0: nothing can be written
  // 8-11: LOGICAL TRACK START ADDRESS 0; 12-15: NEXT WRITABLE ADDRESS 0; 16-19: FREE
  // BLOCKS 0; 20-23: FIXED PACKET SIZE 0.
  b.writeUInt32BE(lu.blockCount, 24); // 24-27: LOGICAL TRACK SIZE
  // 28-31: LAST RECORDED ADDRESS (LRA_V 0); 32-33: MSBs of track and session numbers;
  // 34-35 reserved; 36-47: READ COMPATIBILITY LBA and layer jump addresses (DVD): 0.
  respondData(cmd, b, TRACK_INFORMATION_LENGTH, allocationLength10(cdb));
  return Completion.DONE;
}
