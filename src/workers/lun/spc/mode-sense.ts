/**
 * MODE SENSE(6) and MODE SENSE(10) (SPC-4 6.11, 6.12) for a disk.
 *
 * The pages and their current / changeable / default / saved values live in
 * mode-pages.ts (the same state MODE SELECT changes); "return all pages" (3Fh) walks the
 * table in page, subpage order.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength10, allocationLength6, respondData } from '../../../shared/scsi/cdb.ts';
import { Opcode } from '../../../shared/scsi/opcodes.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from './handler.ts';
import type { ModeState } from './mode-pages.ts';
import { MODE_PAGES, ModePageCode, ModeSubpage } from './mode-pages.ts';
import { DeviceType } from '../device-type.ts';

/** SPC-4 6.11.1 table 162: PAGE CONTROL. */
export const PageControl = {
  CURRENT: 0,
  CHANGEABLE: 1,
  DEFAULT: 2,
  SAVED: 3,
} as const;

/**
 * Copy page `i` for page control `pc` to buf[o...]; returns its length. PS (bit 7 of
 * byte 0) is set when the LU implements saved values (SPC-4 7.5.7).
 */
function emitPage(lu: LogicalUnit, i: number, pc: number, buf: Buffer, o: number): number {
  const m = lu.modes;
  const def = MODE_PAGES[i]!;
  if (pc === PageControl.CHANGEABLE) {
    // Changeable values (SPC-4 6.11.1): the page header, then the changeable mask.
    const headerLength = def.subpage === 0 ? 2 : 4;
    m.defaults[i]!.copy(buf, o, 0, headerLength);
    m.changeable[i]!.copy(buf, o + headerLength, headerLength);
  } else {
    if (pc === PageControl.CURRENT) def.refresh?.(lu, m.current[i]!);
    const src =
      pc === PageControl.CURRENT ? m.current[i]! : pc === PageControl.DEFAULT ? m.defaults[i]! : (m.saved[i] ?? m.defaults[i]!);
    src.copy(buf, o);
  }
  if (m.savable) buf[o] = buf[o]! | 0x80; // PS: the page is savable
  return def.length;
}

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
  if (pc === PageControl.SAVED && !lu.modes.savable) {
    // SPC-4 6.11.1: saved values are not implemented without a state directory.
    setCheckCondition(cmd, SenseReason.SAVING_PARAMETERS_NOT_SUPPORTED, cdbField(2, 7));
    return Completion.DONE;
  }
  // Which pages (SPC-4 6.11.1 table 163): 3Fh/00h all page_0 pages; 3Fh/FFh all pages
  // and subpages; PP/FFh page PP and all its subpages; PP/SS one page.
  const modes = lu.modes;
  const selected = selectPages(modes, pageCode, subpage);
  if (selected === PAGE_NOT_FOUND) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 5));
    return Completion.DONE;
  }
  if (selected === SUBPAGE_NOT_FOUND) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(3, 7));
    return Completion.DONE;
  }

  const buf = lu.scratch;
  const headerLength = ten ? 8 : 4;
  // MMC-6 7.2.1: a CD/DVD device returns no block descriptors.
  const disk = lu.deviceType === DeviceType.DISK;
  const descriptorLength = dbd || !disk ? 0 : llbaa ? 16 : 8;
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
  for (const i of selected) p += emitPage(lu, i, pc, buf, p);

  // DEVICE-SPECIFIC PARAMETER for direct-access devices (SBC-4 6.5.1 table 236):
  // WP(7) = read-only device | reserved(6..5) | DPOFUA(4) = 1: DPO and FUA are accepted.
  // Reserved (0) for a CD/DVD device (MMC-6 7.2.1).
  const deviceSpecific = pc === PageControl.CHANGEABLE || !disk ? 0 : (lu.readOnly ? 0x80 : 0) | 0x10;
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

const PAGE_NOT_FOUND = 0;
const SUBPAGE_NOT_FOUND = 1;

/** Indexes into MODE_PAGES of the pages MODE SENSE returns, in order; or a not-found code. */
function selectPages(modes: ModeState, pageCode: number, subpage: number): number[] | 0 | 1 {
  const out: number[] = []; // allocation: MODE SENSE is not a hot-path command
  let pageSeen = false;
  for (let i = 0; i < MODE_PAGES.length; i++) {
    if (modes.current[i] === null) continue;
    const d = MODE_PAGES[i]!;
    if (pageCode === ModePageCode.ALL_PAGES) {
      if (subpage === ModeSubpage.ALL || d.subpage === 0) out.push(i);
      continue;
    }
    if (d.page !== pageCode) continue;
    pageSeen = true;
    if (subpage === ModeSubpage.ALL || d.subpage === subpage) out.push(i);
  }
  if (pageCode === ModePageCode.ALL_PAGES) return subpage === 0 || subpage === ModeSubpage.ALL ? out : SUBPAGE_NOT_FOUND;
  if (!pageSeen) return PAGE_NOT_FOUND;
  return out.length === 0 ? SUBPAGE_NOT_FOUND : out;
}
