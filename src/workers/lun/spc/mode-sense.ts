/**
 * MODE SENSE(6) and MODE SENSE(10) (SPC-4 6.11, 6.12) for a disk.
 *
 * Mode pages are a table, ascending by page code; "return all pages" (3Fh) walks it.
 * No page has subpages. MODE SELECT is not implemented yet, so no parameter is
 * changeable and current = default; saved values are not supported.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength10, allocationLength6, respondData } from '../../../shared/scsi/cdb.ts';
import { ModePage, Opcode } from '../../../shared/scsi/opcodes.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from './handler.ts';

/** SPC-4 6.11.1 table 162: PAGE CONTROL. */
export const PageControl = {
  CURRENT: 0,
  CHANGEABLE: 1,
  DEFAULT: 2,
  SAVED: 3,
} as const;

/** Builds one page at buf[offset...] for the page control value; returns its length. */
type ModePageBuilder = (lu: LogicalUnit, pc: number, buf: Buffer, offset: number) => number;

interface ModePageEntry {
  readonly page: number;
  readonly build: ModePageBuilder;
}

/** 01h Read-Write Error Recovery (SBC-4 6.5.9 table 250): no recovery knobs, all zero. */
function buildReadWriteErrorRecovery(_lu: LogicalUnit, _pc: number, buf: Buffer, o: number): number {
  buf.fill(0, o, o + 12);
  buf[o] = ModePage.READ_WRITE_ERROR_RECOVERY; // PS 0 | SPF 0 | PAGE CODE 01h
  buf[o + 1] = 0x0a; // PAGE LENGTH
  // 2: AWRE ARRE TB RC EER PER DTE DCR = 0; 3: READ RETRY COUNT; 4-7 obsolete/reserved;
  // 8: WRITE RETRY COUNT; 9: reserved; 10-11: RECOVERY TIME LIMIT. All zero.
  return 12;
}

/** 08h Caching (SBC-4 6.5.5 table 242): WCE mirrors the device's write cache mode. */
function buildCaching(lu: LogicalUnit, pc: number, buf: Buffer, o: number): number {
  buf.fill(0, o, o + 20);
  buf[o] = ModePage.CACHING; // PS 0 | SPF 0 | PAGE CODE 08h
  buf[o + 1] = 0x12; // PAGE LENGTH
  if (pc === PageControl.CHANGEABLE) return 20; // nothing changeable until MODE SELECT
  // 2: IC ABPF CAP DISC SIZE WCE(2) MF RCD(0): WCE per write cache mode; RCD 0 (read
  //    cache, i.e. the page cache, is used).
  buf[o + 2] = lu.writeCacheEnabled ? 0x04 : 0x00;
  // 3: DEMAND READ / WRITE RETENTION PRIORITY 0; 4-11: pre-fetch lengths 0;
  // 12: FSW LBCSS DRA ... NV_DIS = 0; 13: NUMBER OF CACHE SEGMENTS 0;
  // 14-15: CACHE SEGMENT SIZE 0; 16: reserved; 17-19: obsolete.
  return 20;
}

/** 0Ah Control (SPC-4 7.5.8 table 458). */
function buildControl(_lu: LogicalUnit, pc: number, buf: Buffer, o: number): number {
  buf.fill(0, o, o + 12);
  buf[o] = ModePage.CONTROL; // PS 0 | SPF 0 | PAGE CODE 0Ah
  buf[o + 1] = 0x0a; // PAGE LENGTH
  if (pc === PageControl.CHANGEABLE) return 12;
  // 2: TST 000b (one task set per LU) | TMF_ONLY 0 | DPICZ 0 | D_SENSE 0 (fixed format
  //    sense) | GLTSD 1 (no implicit log parameter saving) | RLEC 0.
  buf[o + 2] = 0x02;
  // 3: QUEUE ALGORITHM MODIFIER 1h (unrestricted reordering) | NUAR 0 | QERR 00b.
  buf[o + 3] = 0x10;
  // 4: VS 0 | RAC 0 | UA_INTLCK_CTRL 00b | SWP 0; 5: ATO 0 | TAS 0 | AUTOLOAD MODE 0.
  // 6-7: obsolete; 8-9: BUSY TIMEOUT PERIOD 0 (undefined);
  // 10-11: EXTENDED SELF-TEST COMPLETION TIME 0.
  return 12;
}

/** Mode pages, ascending by page code (the order of "return all pages"). */
export const MODE_PAGES: readonly ModePageEntry[] = [
  { page: ModePage.READ_WRITE_ERROR_RECOVERY, build: buildReadWriteErrorRecovery },
  { page: ModePage.CACHING, build: buildCaching },
  { page: ModePage.CONTROL, build: buildControl },
];

/**
 * MODE SENSE(6) CDB (SPC-4 6.11.1 table 161):
 *   0 opcode 1Ah | 1 reserved(7..4) DBD(3) reserved(2..0) | 2 PC(7..6) PAGE CODE(5..0)
 *   3 SUBPAGE CODE | 4 ALLOCATION LENGTH | 5 CONTROL
 * MODE SENSE(10) CDB (SPC-4 6.12 table 166):
 *   0 opcode 5Ah | 1 reserved(7..5) LLBAA(4) DBD(3) reserved(2..0) | 2 PC | PAGE CODE
 *   3 SUBPAGE CODE | 4-6 reserved | 7-8 ALLOCATION LENGTH | 9 CONTROL
 */
export function modeSense(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const ten = cdb[0] === Opcode.MODE_SENSE_10;
  // Reserved bits of byte 1 (MODE SENSE(10) also has LLBAA in bit 4).
  const reserved1 = cdb[1]! & (ten ? 0xe7 : 0xf7);
  if (reserved1 !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 31 - Math.clz32(reserved1)));
    return Completion.DONE;
  }
  if (ten && (cdb[4]! | cdb[5]! | cdb[6]!) !== 0) {
    const byte = cdb[4] !== 0 ? 4 : cdb[5] !== 0 ? 5 : 6;
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(byte, 31 - Math.clz32(cdb[byte]!)));
    return Completion.DONE;
  }
  const dbd = (cdb[1]! & 0x08) !== 0;
  const llbaa = ten && (cdb[1]! & 0x10) !== 0;
  const pc = cdb[2]! >> 6;
  const pageCode = cdb[2]! & 0x3f;
  const subpage = cdb[3]!;
  if (pc === PageControl.SAVED) {
    // SPC-4 6.11.1: saved values not implemented.
    setCheckCondition(cmd, SenseReason.SAVING_PARAMETERS_NOT_SUPPORTED, cdbField(2, 7));
    return Completion.DONE;
  }

  // Which pages: one page (subpage 0 only: none of ours has subpages), or all pages with
  // subpage 00h (pages only) or FFh (pages and subpages: the same set here).
  let first = 0;
  let end = 0;
  if (pageCode === ModePage.ALL_PAGES) {
    if (subpage !== 0x00 && subpage !== 0xff) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(3, 7));
      return Completion.DONE;
    }
    end = MODE_PAGES.length;
  } else {
    first = MODE_PAGES.findIndex((e) => e.page === pageCode);
    if (first < 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 5));
      return Completion.DONE;
    }
    if (subpage !== 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(3, 7));
      return Completion.DONE;
    }
    end = first + 1;
  }

  const buf = lu.scratch;
  const headerLength = ten ? 8 : 4;
  const descriptorLength = dbd ? 0 : llbaa ? 16 : 8;
  buf.fill(0, 0, headerLength + descriptorLength);
  let p = headerLength;
  if (descriptorLength === 16) {
    // Long LBA mode parameter block descriptor (SBC-4 6.5.2.3 table 239).
    if (pc !== PageControl.CHANGEABLE) {
      // 0-7: NUMBER OF LOGICAL BLOCKS (64 bits; < 2^53 so two 32-bit halves are exact).
      buf.writeUInt32BE(Math.floor(lu.blockCount / 0x1_0000_0000), p);
      buf.writeUInt32BE(lu.blockCount >>> 0, p + 4);
      // 8-11: reserved; 12-15: LOGICAL BLOCK LENGTH.
      buf.writeUInt32BE(lu.blockSize, p + 12);
    }
  } else if (descriptorLength === 8) {
    // Short LBA mode parameter block descriptor (SBC-4 6.5.2.2 table 238).
    if (pc !== PageControl.CHANGEABLE) {
      // 0-3: NUMBER OF LOGICAL BLOCKS; FFFFFFFFh when the count does not fit.
      buf.writeUInt32BE(lu.blockCount > 0xffffffff ? 0xffffffff : lu.blockCount, p);
      // 4: reserved; 5-7: LOGICAL BLOCK LENGTH (24 bits).
      buf.writeUIntBE(lu.blockSize, p + 5, 3);
    }
  }
  p += descriptorLength;
  for (let i = first; i < end; i++) p += MODE_PAGES[i]!.build(lu, pc, buf, p);

  // DEVICE-SPECIFIC PARAMETER for direct-access devices (SBC-4 6.5.1 table 236):
  // WP(7) = read-only device | reserved(6..5) | DPOFUA(4) = 1: DPO and FUA are accepted.
  const deviceSpecific = pc === PageControl.CHANGEABLE ? 0 : (lu.readOnly ? 0x80 : 0) | 0x10;
  if (ten) {
    // Mode parameter header(10) (SPC-4 7.5.5 table 447).
    buf.writeUInt16BE(p - 2, 0); // 0-1: MODE DATA LENGTH: bytes after this field
    buf[2] = 0x00; // MEDIUM TYPE: 00h for SBC
    buf[3] = deviceSpecific; // DEVICE-SPECIFIC PARAMETER
    buf[4] = llbaa && !dbd ? 0x01 : 0x00; // reserved(7..1) | LONGLBA(0)
    buf[5] = 0x00; // reserved
    buf.writeUInt16BE(descriptorLength, 6); // 6-7: BLOCK DESCRIPTOR LENGTH
    respondData(cmd, buf, p, allocationLength10(cdb));
  } else {
    // Mode parameter header(6) (SPC-4 7.5.5 table 446).
    buf[0] = p - 1; // MODE DATA LENGTH: bytes after this field
    buf[1] = 0x00; // MEDIUM TYPE
    buf[2] = deviceSpecific; // DEVICE-SPECIFIC PARAMETER
    buf[3] = descriptorLength; // BLOCK DESCRIPTOR LENGTH
    respondData(cmd, buf, p, allocationLength6(cdb));
  }
  return Completion.DONE;
}
