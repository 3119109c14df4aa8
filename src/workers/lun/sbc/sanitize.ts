/**
 * SANITIZE (SBC-4 5.30; sanitize operations SBC-4 4.11).
 *
 * CDB (SBC-4 5.30.1 table 143):
 *   0 48h | 1 IMMED(7) reserved(6) AUSE(5) SERVICE ACTION(4..0) | 2-6 reserved
 *   7-8 PARAMETER LIST LENGTH | 9 CONTROL
 *
 * Service actions:
 *   OVERWRITE (01h): the whole LU is written OVERWRITE COUNT times with the
 *     initialization pattern (repeated to fill each block), inverted on every other pass
 *     when INVERT = 1. Parameter list (SBC-4 5.30.2.2 table 146):
 *       0 INVERT(7) TEST(6..5) OVERWRITE COUNT(4..0) | 1 reserved
 *       2-3 INITIALIZATION PATTERN LENGTH | 4.. INITIALIZATION PATTERN
 *   BLOCK ERASE (02h), thin LUs only: every block is deallocated (reads zeros, LBPRZ).
 *     SBC-4 would allow it on a fully provisioned LU too (block erase sets the physical
 *     blocks to a vendor-specific value; reads of mapped LBAs may then fail), but there
 *     it would be an overwrite with zeros under another name, and initiators (libiscsi's
 *     conformance suite among them) take BLOCK ERASE to mean LBPME = 1 and every LBA
 *     deallocated afterwards, which a fully provisioned LU (LBPME = 0, every LBA mapped,
 *     SBC-4 4.7.2) cannot report. OVERWRITE serves fully provisioned LUs.
 *   CRYPTOGRAPHIC ERASE (03h), thin LUs only: spindle stores no ciphertext, so there is
 *     no key to change; the same end state (user data irrecoverable through the LU) is
 *     reached by deallocating every block. WACEREQ = 01b: reads succeed after it.
 *   EXIT FAILURE MODE (1Fh): leaves the failed state of a sanitize that failed.
 *
 * While the operation runs the LU answers NOT READY, SANITIZE IN PROGRESS to everything
 * but INQUIRY, REPORT LUNS, REQUEST SENSE, LOG SENSE and REPORT SUPPORTED OPERATION
 * CODES (state.ts). The operation starts once the commands already in flight are done,
 * runs in chunks across event-loop turns (bulk.ts), and ends GOOD, or in the failed
 * state (MEDIUM ERROR, SANITIZE COMMAND FAILED) on an I/O error. IMMED = 1 returns
 * status before the operation, IMMED = 0 after it.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { SanitizeAction } from '../../../shared/scsi/opcodes.ts';
import type { FieldPointer } from '../../../shared/scsi/sense.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { deallocate, fillBlocks, yieldTurn } from './bulk.ts';
import { rejectWriteProtected } from './common.ts';
import { SanitizeState } from './state.ts';

const IMMED = 0x80;
const PARAMETER_LIST_LENGTH_FIELD = Object.freeze(cdbField(7, 7));

function paramField(byte: number, bit?: number): FieldPointer {
  return bit === undefined ? { cdb: false, byte } : { cdb: false, byte, bit };
}

export function sanitize(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const paramLength = cdb.readUInt16BE(7);
  cmd.dataOutWanted = paramLength;
  if (rejectReservedBits(cmd, 1, 0x40) || rejectReservedBytes(cmd, 2, 7)) return Completion.DONE;
  const action = cdb[1]! & 0x1f;
  if (action === SanitizeAction.EXIT_FAILURE_MODE) {
    if (paramLength !== 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, PARAMETER_LIST_LENGTH_FIELD);
      return Completion.DONE;
    }
    if (lu.sbc.sanitize === SanitizeState.FAILED) lu.sbc.setSanitize(SanitizeState.IDLE);
    cmd.status = ScsiStatus.GOOD;
    return Completion.DONE;
  }
  let work: () => Promise<void>;
  if (action === SanitizeAction.OVERWRITE) {
    const pass = parseOverwrite(lu, cmd, paramLength);
    if (pass === null) return Completion.DONE;
    if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
    work = () => overwrite(lu, pass);
  } else {
    // BLOCK ERASE and CRYPTOGRAPHIC ERASE take no parameter list.
    if (paramLength !== 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, PARAMETER_LIST_LENGTH_FIELD);
      return Completion.DONE;
    }
    if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
    work = () => deallocate(lu, 0, lu.blockCount);
  }
  const immediate = (cdb[1]! & IMMED) !== 0;
  const sbc = lu.sbc;
  sbc.setSanitize(SanitizeState.IN_PROGRESS);
  cmd.status = ScsiStatus.GOOD;
  const run = async (): Promise<void> => {
    // Let the commands admitted before this one finish (SBC-4 4.11.2: the sanitize
    // operation begins once the command is processed; nothing new is admitted meanwhile).
    while (lu.store.inFlight > 0 || sbc.active > 0) await yieldTurn();
    sbc.active++;
    try {
      await work();
      await new Promise<void>((resolve, reject) => lu.store.flush((err) => (err ? reject(err) : resolve())));
      sbc.setSanitize(SanitizeState.IDLE);
    } catch {
      sbc.setSanitize(SanitizeState.FAILED);
      if (!immediate) setCheckCondition(cmd, SenseReason.SANITIZE_COMMAND_FAILED);
    } finally {
      sbc.active--;
    }
  };
  if (immediate) {
    void run();
    return Completion.DONE;
  }
  void run().finally(() => cmd.finish());
  return Completion.PENDING;
}

interface OverwritePlan {
  readonly count: number;
  readonly invert: boolean;
  /** The initialization pattern repeated to one logical block. */
  readonly block: Buffer;
}

/** Validate the OVERWRITE parameter list; null when the command was completed with an error. */
function parseOverwrite(lu: LogicalUnit, cmd: ScsiCommand, paramLength: number): OverwritePlan | null {
  // The list is a 4-byte header and a pattern of 1..block length bytes (SBC-4 5.30.2.2).
  if (paramLength < 5 || paramLength > lu.blockSize + 4) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, PARAMETER_LIST_LENGTH_FIELD);
    return null;
  }
  if (cmd.dataOutLength < paramLength || cmd.data.length < paramLength) {
    setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
    return null;
  }
  const p = cmd.data;
  if ((p[0]! & 0x60) !== 0) {
    // TEST: vendor-specific test modes, none supported.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, paramField(0, 6));
    return null;
  }
  const count = p[0]! & 0x1f;
  if (count === 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, paramField(0, 4));
    return null;
  }
  if (p[1] !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, paramField(1, 7));
    return null;
  }
  const patternLength = p.readUInt16BE(2);
  if (patternLength === 0 || patternLength > lu.blockSize || patternLength + 4 !== paramLength) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, paramField(2, 7));
    return null;
  }
  const block = Buffer.allocUnsafe(lu.blockSize);
  for (let o = 0; o < block.length; o += patternLength) p.copy(block, o, 4, 4 + Math.min(patternLength, block.length - o));
  return { count, invert: (p[0]! & 0x80) !== 0, block };
}

async function overwrite(lu: LogicalUnit, plan: OverwritePlan): Promise<void> {
  const inverted = Buffer.from(plan.block.map((b) => ~b & 0xff));
  for (let pass = 0; pass < plan.count; pass++) {
    // INVERT = 1: the pattern is inverted between consecutive passes (SBC-4 5.30.2.2);
    // the last pass writes the pattern itself.
    const flip = plan.invert && (plan.count - 1 - pass) % 2 === 1;
    await fillBlocks(lu, 0, lu.blockCount, flip ? inverted : plan.block, false);
  }
}
