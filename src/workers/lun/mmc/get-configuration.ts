/**
 * GET CONFIGURATION (MMC-6 6.6): the drive's profiles and features.
 *
 * The drive is a CD-ROM reader: one profile, CD-ROM (0008h), current while a disc is in.
 * Features, in ascending order (one table; the response is generated from it):
 *   0000h Profile List        the profiles (MMC-6 5.3.1)
 *   0001h Core                SCSI family interface, INQUIRY version 2 data, device busy
 *                             events (MMC-6 5.3.2)
 *   0002h Morphing            GET EVENT STATUS NOTIFICATION polling, operational change
 *                             events (MMC-6 5.3.3)
 *   0003h Removable Medium    tray loader, eject, load, lock (MMC-6 5.3.4)
 *   0010h Random Readable     2048-byte blocks, blocking 1 (MMC-6 5.3.6), current with a disc
 * CD Read (001Eh) is not claimed: it requires READ CD and READ CD MSF (raw sectors,
 * sub-channels), which an ISO image has no data for.
 *
 * CDB (MMC-6 table 273):
 *   0 46h | 1 reserved(7..2) RT(1..0) | 2-3 STARTING FEATURE NUMBER | 4-6 reserved
 *   7-8 ALLOCATION LENGTH | 9 CONTROL
 * RT 00b: every feature from the starting number on; 01b: only current ones; 10b: the
 * one feature named (none if the drive has no such feature); 11b reserved.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength10, respondData } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { Profile } from './medium.ts';

/** One feature: its code and version, and how its descriptor is built. */
interface FeatureEntry {
  readonly code: number;
  readonly version: number;
  /** PERSISTENT: always current, whatever the medium. */
  readonly persistent: boolean;
  readonly current: (lu: LogicalUnit) => boolean;
  /** Write the feature dependent data at buf[p]; returns its length (a multiple of 4). */
  readonly data: (lu: LogicalUnit, buf: Buffer, p: number) => number;
}

const always = (): boolean => true;
const withDisc = (lu: LogicalUnit): boolean => lu.mmc?.discPresent === true;

/** Feature descriptors, ascending by feature code (MMC-6 5.2.2). */
export const FEATURES: readonly FeatureEntry[] = [
  {
    code: 0x0000, // Profile List (MMC-6 5.3.1 table 88)
    version: 0,
    persistent: true,
    current: always,
    data: (lu, b, p) => {
      // One profile descriptor: 0-1 PROFILE NUMBER | 2 reserved(7..1) CURRENTP(0) | 3 reserved
      b.writeUInt16BE(Profile.CD_ROM, p);
      b[p + 2] = withDisc(lu) ? 0x01 : 0x00;
      b[p + 3] = 0;
      return 4;
    },
  },
  {
    code: 0x0001, // Core (MMC-6 5.3.2 table 90)
    version: 2,
    persistent: true,
    current: always,
    data: (_lu, b, p) => {
      b.writeUInt32BE(0x00000001, p); // 0-3: PHYSICAL INTERFACE STANDARD 1h: SCSI family
      b[p + 4] = 0x03; // reserved(7..2) | INQ2(1) 1: standard INQUIRY data per SPC-3+ | DBE(0) 1
      b[p + 5] = 0; // reserved
      b[p + 6] = 0;
      b[p + 7] = 0;
      return 8;
    },
  },
  {
    code: 0x0002, // Morphing (MMC-6 5.3.3 table 92)
    version: 1,
    persistent: true,
    current: always,
    data: (_lu, b, p) => {
      b[p] = 0x02; // reserved(7..2) | OCEVENT(1) 1: operational change events | ASYNC(0) 0: polling only
      b[p + 1] = 0;
      b[p + 2] = 0;
      b[p + 3] = 0;
      return 4;
    },
  },
  {
    code: 0x0003, // Removable Medium (MMC-6 5.3.4 table 93)
    version: 2,
    persistent: true,
    current: always,
    data: (_lu, b, p) => {
      // LOADING MECHANISM TYPE(7..5) 001b tray | LOAD(4) 1 | EJECT(3) 1 | PVNT JMPR(2) 0 |
      // DBML(1) 0 | LOCK(0) 1: PREVENT ALLOW MEDIUM REMOVAL locks the tray
      b[p] = 0x20 | 0x10 | 0x08 | 0x01;
      b[p + 1] = 0;
      b[p + 2] = 0;
      b[p + 3] = 0;
      return 4;
    },
  },
  {
    code: 0x0010, // Random Readable (MMC-6 5.3.6 table 97)
    version: 0,
    persistent: false,
    current: withDisc,
    data: (lu, b, p) => {
      b.writeUInt32BE(lu.blockSize, p); // 0-3: LOGICAL BLOCK SIZE
      b.writeUInt16BE(1, p + 4); // 4-5: BLOCKING: 1 block per readable unit (CD)
      b[p + 6] = 0x01; // reserved(7..1) | PP(0) 1: the Read/Write Error Recovery page is present
      b[p + 7] = 0; // reserved
      return 8;
    },
  },
];

/** RT values (MMC-6 table 274). */
const RequestType = { ALL: 0b00, CURRENT: 0b01, ONE: 0b10 } as const;

const FEATURE_HEADER_LENGTH = 8;

export function getConfiguration(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xfc) || rejectReservedBytes(cmd, 4, 7)) return Completion.DONE;
  const rt = cdb[1]! & 0x03;
  if (rt !== RequestType.ALL && rt !== RequestType.CURRENT && rt !== RequestType.ONE) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 1));
    return Completion.DONE;
  }
  const start = cdb.readUInt16BE(2);
  const b = lu.scratch;
  let p = FEATURE_HEADER_LENGTH;
  for (const f of FEATURES) {
    if (rt === RequestType.ONE ? f.code !== start : f.code < start) continue;
    const current = f.persistent || f.current(lu);
    if (rt === RequestType.CURRENT && !current) continue;
    // Feature descriptor header (MMC-6 table 87):
    b.writeUInt16BE(f.code, p); // 0-1: FEATURE CODE
    // 2: reserved(7..6) | VERSION(5..2) | PERSISTENT(1) | CURRENT(0)
    b[p + 2] = (f.version << 2) | (f.persistent ? 0x02 : 0) | (current ? 0x01 : 0);
    const n = f.data(lu, b, p + 4);
    b[p + 3] = n; // 3: ADDITIONAL LENGTH
    p += 4 + n;
  }
  // Feature header (MMC-6 table 85):
  b.writeUInt32BE(p - 4, 0); // 0-3: DATA LENGTH (bytes after this field)
  b.writeUInt16BE(0, 4); // 4-5: reserved
  b.writeUInt16BE(lu.mmc?.currentProfile ?? Profile.NONE, 6); // 6-7: CURRENT PROFILE
  respondData(cmd, b, p, allocationLength10(cdb));
  return Completion.DONE;
}
