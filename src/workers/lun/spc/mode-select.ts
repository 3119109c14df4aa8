/**
 * MODE SELECT(6) and MODE SELECT(10) (SPC-4 6.9, 6.10): change the current (and with
 * SP = 1 the saved) mode parameters of mode-pages.ts.
 *
 * The whole parameter list is checked before anything changes (a rejected list changes
 * nothing). Every error in the parameter data is INVALID FIELD IN PARAMETER LIST with a
 * field pointer (C/D = 0) at the offending byte of the parameter list; a list that ends
 * inside a header, descriptor or page is PARAMETER LIST LENGTH ERROR.
 *
 * When a current value changes, every other I_T nexus gets MODE PARAMETERS CHANGED
 * (SPC-4 7.5.1; ua/unit-attention.ts).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { Opcode } from '../../../shared/scsi/opcodes.ts';
import type { FieldPointer } from '../../../shared/scsi/sense.ts';
import { SenseReason, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import type { ModePageImage } from '../../../shared/state/mode-image.ts';
import { establish } from '../ua/unit-attention.ts';
import { Completion } from './handler.ts';
import { MODE_PAGES, findModePage, persistSavedPages } from './mode-pages.ts';
import { rejectReservedBits, rejectReservedBytes } from './unit-status.ts';

function paramField(byte: number, bit: number): FieldPointer {
  return { cdb: false, byte, bit };
}

function invalidParam(cmd: ScsiCommand, byte: number, bit: number): Completion {
  setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, paramField(byte, bit));
  return Completion.DONE;
}

function lengthError(cmd: ScsiCommand): Completion {
  setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
  return Completion.DONE;
}

function highBit(v: number): number {
  return 31 - Math.clz32(v);
}

/**
 * MODE SELECT(6) CDB (SPC-4 6.9 table 159):
 *   0 15h | 1 reserved(7..5) PF(4) reserved(3..1) SP(0) | 2-3 reserved
 *   4 PARAMETER LIST LENGTH | 5 CONTROL
 * MODE SELECT(10) CDB (SPC-4 6.10 table 160):
 *   0 55h | 1 as above | 2-6 reserved | 7-8 PARAMETER LIST LENGTH | 9 CONTROL
 */
export function modeSelect(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const ten = cdb[0] === Opcode.MODE_SELECT_10;
  if (rejectReservedBits(cmd, 1, 0xee) || rejectReservedBytes(cmd, 2, ten ? 7 : 4)) return Completion.DONE;
  const pf = (cdb[1]! & 0x10) !== 0;
  const sp = (cdb[1]! & 0x01) !== 0;
  const paramLength = ten ? cdb.readUInt16BE(7) : cdb[4]!;
  cmd.dataOutWanted = paramLength;
  const modes = lu.modes;
  if (sp && !modes.savable) {
    // SPC-4 6.9: SP = 1 on a LU that does not implement saved pages.
    setCheckCondition(cmd, SenseReason.SAVING_PARAMETERS_NOT_SUPPORTED, { cdb: true, byte: 1, bit: 0 });
    return Completion.DONE;
  }
  // SPC-4 6.9: a PARAMETER LIST LENGTH of zero transfers nothing and is not an error.
  if (paramLength === 0) return Completion.DONE;
  let len = paramLength < cmd.dataOutLength ? paramLength : cmd.dataOutLength;
  if (len > cmd.data.length) len = cmd.data.length;
  const p = cmd.data;

  // Mode parameter header (SPC-4 7.5.5): (6) 0 MODE DATA LENGTH, 1 MEDIUM TYPE,
  // 2 DEVICE-SPECIFIC PARAMETER, 3 BLOCK DESCRIPTOR LENGTH; (10) 0-1 MODE DATA LENGTH,
  // 2 MEDIUM TYPE, 3 DEVICE-SPECIFIC PARAMETER, 4 reserved(7..1) LONGLBA(0), 5 reserved,
  // 6-7 BLOCK DESCRIPTOR LENGTH. With MODE SELECT, MODE DATA LENGTH is reserved and the
  // device-specific WP and DPOFUA bits are ignored (SBC-4 6.5.1): both are what MODE
  // SENSE returned, which initiators send back unchanged, so they are not checked.
  const headerLength = ten ? 8 : 4;
  if (len < headerLength) return lengthError(cmd);
  const mediumTypeAt = ten ? 2 : 1;
  if (p[mediumTypeAt] !== 0) return invalidParam(cmd, mediumTypeAt, highBit(p[mediumTypeAt]!)); // SBC: 00h
  let longLba = false;
  let descriptorLength: number;
  if (ten) {
    if ((p[4]! & 0xfe) !== 0) return invalidParam(cmd, 4, highBit(p[4]! & 0xfe));
    if (p[5] !== 0) return invalidParam(cmd, 5, highBit(p[5]!));
    longLba = (p[4]! & 0x01) !== 0;
    descriptorLength = p.readUInt16BE(6);
  } else {
    descriptorLength = p[3]!;
  }
  const lengthField = ten ? 6 : 3;
  const oneDescriptor = longLba ? 16 : 8;
  if (descriptorLength !== 0 && descriptorLength !== oneDescriptor) {
    // One block descriptor at most: a disk has a single logical block length.
    return invalidParam(cmd, lengthField, 7);
  }
  if (headerLength + descriptorLength > len) return lengthError(cmd);
  if (descriptorLength !== 0) {
    // Block descriptor (SBC-4 6.5.2): NUMBER OF LOGICAL BLOCKS is accepted as sent
    // (spindle does not resize through MODE SELECT; SBC-4 lets the device server keep
    // its capacity), LOGICAL BLOCK LENGTH must be the LU's (no FORMAT UNIT to change it).
    const d = headerLength;
    const blockLengthAt = longLba ? d + 12 : d + 5;
    const blockLength = longLba ? p.readUInt32BE(blockLengthAt) : p.readUIntBE(blockLengthAt, 3);
    if (blockLength !== lu.blockSize && blockLength !== 0) return invalidParam(cmd, blockLengthAt, 7);
    // Reserved: short descriptor byte 4; long descriptor bytes 8-11.
    const reservedFrom = longLba ? d + 8 : d + 4;
    const reservedTo = longLba ? d + 12 : d + 5;
    for (let i = reservedFrom; i < reservedTo; i++) if (p[i] !== 0) return invalidParam(cmd, i, highBit(p[i]!));
  }

  // Mode pages: validate all into `changes`, then apply.
  const changes: { index: number; at: number }[] = []; // allocation: not a hot path
  let o = headerLength + descriptorLength;
  if (o < len && !pf) {
    // PF = 0: the pages would be vendor specific (SCSI-1 format); spindle has none.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, { cdb: true, byte: 1, bit: 4 });
    return Completion.DONE;
  }
  while (o < len) {
    if (o + 2 > len) return lengthError(cmd);
    const b0 = p[o]!;
    // PS is reserved in MODE SELECT (SPC-4 7.5.7).
    if ((b0 & 0x80) !== 0) return invalidParam(cmd, o, 7);
    const spf = (b0 & 0x40) !== 0;
    if (spf && o + 4 > len) return lengthError(cmd);
    const subpage = spf ? p[o + 1]! : 0;
    const index = spf && subpage === 0 ? -1 : findModePage(modes, b0 & 0x3f, subpage);
    if (index < 0) {
      // Point at the SUBPAGE CODE when the page exists but not that subpage.
      const atSubpage = spf && subpage !== 0 && findAnyPage(b0 & 0x3f);
      return invalidParam(cmd, atSubpage ? o + 1 : o, atSubpage ? 7 : 5);
    }
    const def = MODE_PAGES[index]!;
    const pageLength = spf ? p.readUInt16BE(o + 2) : p[o + 1]!;
    const headerBytes = spf ? 4 : 2;
    if (pageLength !== def.length - headerBytes) return invalidParam(cmd, spf ? o + 2 : o + 1, 7);
    if (o + def.length > len) return lengthError(cmd);
    // Only changeable bits may differ from the current value (SPC-4 6.9).
    const cur = modes.current[index]!;
    const mask = modes.changeable[index]!;
    for (let i = headerBytes; i < def.length; i++) {
      const bad = (p[o + i]! ^ cur[i]!) & ~mask[i]! & 0xff;
      if (bad !== 0) return invalidParam(cmd, o + i, highBit(bad));
    }
    const fieldError = def.validate?.(p.subarray(o, o + def.length));
    if (fieldError !== undefined) return invalidParam(cmd, o + fieldError.byte, fieldError.bit);
    changes.push({ index, at: o });
    o += def.length;
  }

  // Apply: current values, then saved ones with SP = 1.
  let changed = false;
  for (const { index, at } of changes) {
    const def = MODE_PAGES[index]!;
    const cur = modes.current[index]!;
    const img = p.subarray(at, at + def.length);
    const headerBytes = def.subpage === 0 ? 2 : 4;
    if (!img.subarray(headerBytes).equals(cur.subarray(headerBytes))) {
      img.copy(cur, headerBytes, headerBytes);
      cur[0] = cur[0]! & 0x7f;
      def.apply?.(lu, cur);
      changed = true;
    }
    if (sp) modes.saved[index] = Buffer.from(cur);
  }
  if (changed) establish(lu, SenseReason.MODE_PARAMETERS_CHANGED, cmd.nexus);
  // In a cluster the pages belong to the LU on every node (SPC-4 7.5): carry them over.
  if ((changed || sp) && lu.env.modesChanged !== undefined) lu.env.modesChanged(lu.pr.luKey, pageImages(lu, changes.map((c) => c.index)));
  if (!sp || changes.length === 0) return Completion.DONE;
  // SP = 1: GOOD only once the saved pages are on disk.
  persistSavedPages(lu).then(
    () => {
      cmd.status = ScsiStatus.GOOD;
      cmd.finish();
    },
    () => {
      // The current values (and the in-memory saved copy) changed, but the file could
      // not be written: report the failure rather than claim the values are saved.
      setCheckCondition(cmd, SenseReason.INTERNAL_TARGET_FAILURE);
      cmd.finish();
    },
  );
  return Completion.PENDING;
}

/** Whether any page with this page code exists in the table (to point at the subpage). */
function findAnyPage(page: number): boolean {
  return MODE_PAGES.some((d) => d.page === page);
}

/** The pages at `indexes` as they travel to other cluster nodes. */
export function pageImages(lu: LogicalUnit, indexes: readonly number[]): ModePageImage[] {
  const m = lu.modes;
  return indexes.map((i) => {
    const def = MODE_PAGES[i]!;
    const saved = m.saved[i] ?? null;
    return { page: def.page, subpage: def.subpage, current: m.current[i]!.toString('hex'), saved: saved === null ? null : saved.toString('hex') };
  });
}

/**
 * Pages changed by MODE SELECT on another node: the same current (and saved) values here,
 * with their side effects, and MODE PARAMETERS CHANGED for every I_T nexus of this node
 * (SPC-4 7.5.1: every nexus but the issuing one, which is on the other node).
 */
export async function applyPageImages(lu: LogicalUnit, pages: readonly ModePageImage[]): Promise<void> {
  const m = lu.modes;
  let changed = false;
  let saved = false;
  for (const img of pages) {
    const i = findModePage(m, img.page, img.subpage);
    if (i < 0) continue;
    const def = MODE_PAGES[i]!;
    const cur = m.current[i]!;
    const next = Buffer.from(img.current, 'hex');
    if (next.length !== def.length) continue;
    if (!next.equals(cur)) {
      next.copy(cur);
      def.apply?.(lu, cur);
      changed = true;
    }
    if (img.saved !== null) {
      m.saved[i] = Buffer.from(img.saved, 'hex');
      saved = true;
    }
  }
  if (changed) establish(lu, SenseReason.MODE_PARAMETERS_CHANGED);
  if (saved) await persistSavedPages(lu);
}
