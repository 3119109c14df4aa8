/**
 * READ(6/10/12/16) and WRITE(6/10/12/16) (SBC-4 5.15-5.18, 5.40-5.43): the hot path.
 *
 * Allocation free: the LBA and length are decoded straight from the CDB bytes, data moves
 * between the backing store and cmd.data (a view into the session worker's slab), and
 * the I/O continuation is a module-level function reached through cmd.ioTrampoline.
 *
 * Byte 1 of the 10/12/16-byte CDBs (SBC-4 table 57):
 *   RDPROTECT/WRPROTECT (7..5) | DPO (4) | FUA (3) | RARC (2, READ) | obsolete (1..0)
 * READ(6)/WRITE(6) (SBC-4 5.19, 5.44): byte 1 = reserved (7..5) | LBA (4..0).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { cdbLba, cdbTransferLength } from '../../../shared/scsi/cdb.ts';
import { Opcode } from '../../../shared/scsi/opcodes.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';

/** FUA: force unit access (SBC-4 5.16): the write is durable before status. */
const FUA = 0x08;
/** RDPROTECT / WRPROTECT / VRPROTECT field of byte 1. */
const PROTECT_MASK = 0xe0;

/** Field pointers (frozen singletons, so the error paths allocate nothing either). */
const PROTECT_FIELD = Object.freeze(cdbField(1, 7));

/**
 * SBC-4 4.5 / 5.x: an LBA range is valid when it lies within the capacity. An LBA beyond
 * the last one is out of range even for a zero transfer length. 64-bit LBAs above 2^53
 * arrive as (inexact) doubles that are still far above any capacity, so "LBA + length
 * overflows 2^64" is caught by the same comparison.
 * Returns true when the command was completed with CHECK CONDITION.
 */
export function rejectLbaRange(lu: LogicalUnit, cmd: ScsiCommand, lba: number, blocks: number): boolean {
  if (lba < lu.blockCount && blocks <= lu.blockCount - lba) return false;
  setCheckCondition(cmd, SenseReason.LBA_OUT_OF_RANGE);
  return true;
}

/**
 * A write whose data (EDTL cut short of what the CDB asks) ends inside a logical block:
 * writing the partial block would leave a block neither old nor new, reported written.
 * FCP-4 9.4.2 case b: transfer nothing, ILLEGAL REQUEST, INVALID FIELD IN INFORMATION
 * UNIT; the fabric still reports the residual from dataOutWanted.
 * Returns true when the command was completed with CHECK CONDITION.
 */
export function rejectPartialBlock(lu: LogicalUnit, cmd: ScsiCommand, bytes: number): boolean {
  if ((bytes & (lu.blockSize - 1)) === 0) return false;
  setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_INFORMATION_UNIT);
  return true;
}

/** Reject non-zero RDPROTECT/WRPROTECT: spindle formats without protection information. */
function rejectProtect(cmd: ScsiCommand): boolean {
  const cdb = cmd.cdb;
  if (cdb[0] === Opcode.READ_6 || cdb[0] === Opcode.WRITE_6) {
    // Byte 1 bits 7..5 are reserved in the 6-byte CDBs (formerly the LUN).
    const v = cdb[1]! & 0xe0;
    if (v === 0) return false;
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 31 - Math.clz32(v)));
    return true;
  }
  if ((cdb[1]! & PROTECT_MASK) === 0) return false;
  // SBC-4 5.16 table 58: a non-zero RDPROTECT on a LU without protection information.
  setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, PROTECT_FIELD);
  return true;
}

/**
 * Inline I/O (lun/inline-grant.ts): the unit's epoch as the command passed its checks. A
 * file store may complete it later; it earns a grant only if nothing moved the epoch
 * in between.
 */
function noteInlineEpoch(lu: LogicalUnit, cmd: ScsiCommand): void {
  const d = lu.inline;
  if (d !== null) cmd.inlineEpoch = d.grants.epoch(d.index);
}

/**
 * READ(6/10/12/16). Reads min(transfer length x block size, cmd.data.length) bytes into
 * cmd.data and reports dataInLength = transfer length x block size: when the iSCSI
 * EDTL is smaller, the fabric sends what fits and reports the overflow residual
 * (RFC 7143 11.4.5.1; libiscsi read*_residuals). DPO and FUA are accepted: DPO is a
 * cache hint, and FUA on a read needs no action because reads go through the same page
 * cache that every write (durable or not) went through.
 */
export function read(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectProtect(cmd)) return Completion.DONE;
  const lba = cdbLba(cmd.cdb);
  const blocks = cdbTransferLength(cmd.cdb);
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  const total = blocks * lu.blockSize;
  cmd.dataInLength = total;
  const n = total < cmd.data.length ? total : cmd.data.length;
  if (n === 0) return Completion.DONE; // SBC-4 5.16: transfer length 0 is not an error
  cmd.onIo = lu.io.read; // io-completion.ts: GOOD, or the sense of the I/O error
  noteInlineEpoch(lu, cmd);
  lu.store.read(cmd.data, 0, n, lba * lu.blockSize, cmd.ioTrampoline);
  return Completion.PENDING;
}

/**
 * WRITE(6/10/12/16). Writes min(transfer length x block size, cmd.dataOutLength) bytes:
 * when the initiator sent less than the CDB asks for (EDTL < transfer length), only what
 * was sent is written and the status is GOOD when it is whole blocks (a partial block is
 * refused, nothing written); the fabric reports the residual
 * (libiscsi write*_residuals accept this, FCP-4 9.4.2 case a). The write is durable
 * before status with FUA or when the write cache is disabled (write-through).
 */
export function write(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectProtect(cmd)) return Completion.DONE;
  const lba = cdbLba(cmd.cdb);
  const blocks = cdbTransferLength(cmd.cdb);
  const total = blocks * lu.blockSize;
  // What the CDB calls for; the fabric compares it with EDTL for the residual.
  cmd.dataOutWanted = total;
  if (rejectLbaRange(lu, cmd, lba, blocks)) return Completion.DONE;
  if (lu.readOnly) {
    // SBC-4 4.11: writes to a write-protected medium.
    setCheckCondition(cmd, SenseReason.WRITE_PROTECTED);
    return Completion.DONE;
  }
  let n = total < cmd.dataOutLength ? total : cmd.dataOutLength;
  if (n > cmd.data.length) n = cmd.data.length;
  if (n === 0) return Completion.DONE;
  if (rejectPartialBlock(lu, cmd, n)) return Completion.DONE;
  // WRITE(6) has no FUA bit; its byte 1 is LBA.
  const fua = cmd.cdb[0] !== Opcode.WRITE_6 && (cmd.cdb[1]! & FUA) !== 0;
  // Thin LUs: the written blocks become mapped (one null check otherwise; allocation free).
  lu.sbc.noteWritten(lba, blocks);
  cmd.onIo = lu.io.write;
  noteInlineEpoch(lu, cmd);
  lu.store.write(cmd.data, 0, n, lba * lu.blockSize, fua || !lu.writeCacheEnabled, cmd.ioTrampoline);
  return Completion.PENDING;
}
