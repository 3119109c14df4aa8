/**
 * Logical block provisioning commands: UNMAP (SBC-4 5.32) and GET LBA STATUS
 * (SBC-4 5.20). The allocation map and how deallocation keeps the bytes correct are
 * described in allocation.ts.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength16, respondData } from '../../../shared/scsi/cdb.ts';
import type { FieldPointer } from '../../../shared/scsi/sense.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { deallocate, runAsync, yieldTurn } from './bulk.ts';
import { rangeInside, rejectWriteProtected } from './common.ts';

/** UNMAP parameter list header (SBC-4 5.32.2 table 137). */
const UNMAP_HEADER = 8;
/** UNMAP block descriptor (SBC-4 5.32.2 table 138). */
const UNMAP_DESCRIPTOR = 16;

function paramField(byte: number, bit?: number): FieldPointer {
  return bit === undefined ? { cdb: false, byte } : { cdb: false, byte, bit };
}

/**
 * UNMAP CDB (SBC-4 5.32.1 table 136):
 *   0 42h | 1 reserved(7..1) ANCHOR(0) | 2-5 reserved | 6 reserved(7..6) GROUP NUMBER
 *   7-8 PARAMETER LIST LENGTH | 9 CONTROL
 * Parameter list: 0-1 UNMAP DATA LENGTH | 2-3 UNMAP BLOCK DESCRIPTOR DATA LENGTH |
 *   4-7 reserved | 8.. descriptors: 0-7 LBA, 8-11 NUMBER OF LOGICAL BLOCKS, 12-15 reserved.
 *
 * Every descriptor is validated before anything is deallocated, so a bad list changes
 * nothing. A fully provisioned LU (LBPU = 0) rejects UNMAP as an invalid field in the CDB
 * (it is in the command table for the LUs that are thin).
 */
export function unmap(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const paramLength = cdb.readUInt16BE(7);
  cmd.dataOutWanted = paramLength;
  if (
    rejectReservedBits(cmd, 1, 0xfe) ||
    rejectReservedBytes(cmd, 2, 6) ||
    rejectReservedBits(cmd, 6, 0xc0)
  ) {
    return Completion.DONE;
  }
  if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
  if (!lu.sbc.thin) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(0, 7));
    return Completion.DONE;
  }
  if ((cdb[1]! & 0x01) !== 0) {
    // ANCHOR = 1 while ANC_SUP = 0 (SBC-4 5.32.1).
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 0));
    return Completion.DONE;
  }
  if (paramLength === 0) return Completion.DONE; // SBC-4 5.32.1: not an error
  if (paramLength < UNMAP_HEADER) {
    setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
    return Completion.DONE;
  }
  const have = Math.min(paramLength, cmd.dataOutLength, cmd.data.length);
  if (have < UNMAP_HEADER) {
    setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
    return Completion.DONE;
  }
  const p = cmd.data;
  // Descriptors: what the header announces, truncated to whole descriptors and to the
  // data actually transferred.
  const announced = p.readUInt16BE(2);
  const count = Math.floor(Math.min(announced, have - UNMAP_HEADER) / UNMAP_DESCRIPTOR);
  if (count > lu.sbc.maxUnmapDescriptors) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, paramField(2, 7));
    return Completion.DONE;
  }
  const ranges: number[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const o = UNMAP_HEADER + i * UNMAP_DESCRIPTOR;
    const lba = p.readUInt32BE(o) * 0x1_0000_0000 + p.readUInt32BE(o + 4);
    const n = p.readUInt32BE(o + 8);
    if (!rangeInside(lu, lba, n)) {
      setCheckCondition(cmd, SenseReason.LBA_OUT_OF_RANGE);
      return Completion.DONE;
    }
    total += n;
    if (n > 0) ranges.push(lba, n);
  }
  if (total > lu.sbc.maxUnmapBlocks) {
    // SBC-4 5.32.1: more than MAXIMUM UNMAP LBA COUNT blocks.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, paramField(UNMAP_HEADER + 8, 7));
    return Completion.DONE;
  }
  if (ranges.length === 0) return Completion.DONE;
  return runAsync(lu, cmd, async () => {
    for (let i = 0; i < ranges.length; i += 2) {
      await deallocate(lu, ranges[i]!, ranges[i + 1]!);
      if (i + 2 < ranges.length) await yieldTurn();
    }
  });
}

/** GET LBA STATUS parameter data header and descriptor sizes (SBC-4 5.20.2). */
const LBA_STATUS_HEADER = 8;
const LBA_STATUS_DESCRIPTOR = 16;
/** PROVISIONING STATUS (SBC-4 5.20.2 table 75). */
const MAPPED = 0x0;
const DEALLOCATED = 0x1;

/**
 * GET LBA STATUS CDB (SBC-4 5.20.1 table 73), SERVICE ACTION IN(16) 12h:
 *   0 9Eh | 1 reserved(7..5) SERVICE ACTION | 2-9 STARTING LOGICAL BLOCK ADDRESS
 *   10-13 ALLOCATION LENGTH | 14 reserved | 15 CONTROL
 * Descriptors cover consecutive extents from the starting LBA, as many as the
 * allocation length (and the LU's scratch buffer) hold. A fully provisioned LU reports
 * everything mapped.
 */
export function getLbaStatus(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xe0) || rejectReservedBytes(cmd, 14, 15)) return Completion.DONE;
  const start = cdb.readUInt32BE(2) * 0x1_0000_0000 + cdb.readUInt32BE(6);
  if (start >= lu.blockCount) {
    setCheckCondition(cmd, SenseReason.LBA_OUT_OF_RANGE);
    return Completion.DONE;
  }
  const alloc = allocationLength16(cdb);
  const buf = lu.scratch;
  const fit = Math.floor((Math.min(alloc, buf.length) - LBA_STATUS_HEADER) / LBA_STATUS_DESCRIPTOR);
  const maxDescriptors = Math.max(1, Math.min(fit, Math.floor((buf.length - LBA_STATUS_HEADER) / LBA_STATUS_DESCRIPTOR)));
  const map = lu.sbc.map;
  let lba = start;
  let n = 0;
  let p = LBA_STATUS_HEADER;
  while (lba < lu.blockCount && n < maxDescriptors) {
    let blocks: number;
    let status: number;
    if (map === null) {
      blocks = Math.min(lu.blockCount - lba, 0xffffffff);
      status = MAPPED;
    } else {
      status = map.isMapped(Math.floor(lba / map.granule)) ? MAPPED : DEALLOCATED;
      blocks = map.runLength(lba, 0xffffffff);
    }
    buf.writeUInt32BE(Math.floor(lba / 0x1_0000_0000), p); // 0-7: LBA
    buf.writeUInt32BE(lba >>> 0, p + 4);
    buf.writeUInt32BE(blocks, p + 8); // 8-11: NUMBER OF LOGICAL BLOCKS
    buf[p + 12] = status; // 12: reserved(7..4) | PROVISIONING STATUS(3..0)
    buf[p + 13] = 0; // 13-15: reserved
    buf[p + 14] = 0;
    buf[p + 15] = 0;
    p += LBA_STATUS_DESCRIPTOR;
    lba += blocks;
    n++;
  }
  buf.writeUInt32BE(p - 4, 0); // 0-3: PARAMETER DATA LENGTH (n - 3)
  buf.writeUInt32BE(0, 4); // 4-7: reserved
  respondData(cmd, buf, p, alloc);
  return Completion.DONE;
}
