/**
 * SANITIZE (SBC-4 5.30): validates the command and hands the sanitize operation to the
 * LU (sanitize-operation.ts, which also explains how the operation outlives the command).
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
 *     SBC-4 allows block erase on a fully provisioned LU too (the physical blocks are set
 *     to a vendor-specific value; reads of mapped LBAs may then fail), but there it would
 *     be an overwrite with zeros under another name, and initiators take BLOCK ERASE to
 *     mean LBPME = 1 and every LBA deallocated or anchored afterwards: libiscsi's
 *     conformance test fails a BLOCK ERASE on an LU with LBPME = 0 and then requires GET
 *     LBA STATUS to report no mapped LBA, which a fully provisioned LU (LBPME = 0, every
 *     LBA mapped, SBC-4 4.7.2) cannot do. OVERWRITE serves fully provisioned LUs.
 *   CRYPTOGRAPHIC ERASE (03h), thin LUs only: spindle stores no ciphertext, so there is
 *     no key to change; the same end state (user data irrecoverable through the LU) is
 *     reached by deallocating every block. WACEREQ = 01b: reads succeed after it.
 *   EXIT FAILURE MODE (1Fh): leaves the failed state of a sanitize that failed, if it was
 *     requested with AUSE = 1 (SBC-4 4.11.3).
 *
 * Restricted completion mode (SBC-4 4.11.3, 5.30.1): after a sanitize requested with
 * AUSE = 0 has failed, only another sanitize that completes without error leaves the
 * failed state. EXIT FAILURE MODE, and a SANITIZE with AUSE = 1, are then terminated with
 * ILLEGAL REQUEST, INVALID FIELD IN CDB.
 *
 * IMMED = 1 returns status once the CDB and the parameter list are validated; IMMED = 0
 * returns it when the operation has completed (GOOD, or MEDIUM ERROR, SANITIZE COMMAND
 * FAILED). REQUEST SENSE polls the progress either way (spc/unit-status.ts).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { SanitizeAction } from '../../../shared/scsi/opcodes.ts';
import type { FieldPointer } from '../../../shared/scsi/sense.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { rejectWriteProtected } from './common.ts';
import type { SanitizePlan } from './sanitize-operation.ts';
import { SanitizeState } from './state.ts';

const IMMED = 0x80;
const AUSE = 0x20;
const PARAMETER_LIST_LENGTH_FIELD = Object.freeze(cdbField(7, 7));
const SERVICE_ACTION_FIELD = Object.freeze(cdbField(1, 4));
const AUSE_FIELD = Object.freeze(cdbField(1, 5));

function paramField(byte: number, bit?: number): FieldPointer {
  return bit === undefined ? { cdb: false, byte } : { cdb: false, byte, bit };
}

export function sanitize(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const paramLength = cdb.readUInt16BE(7);
  cmd.dataOutWanted = paramLength;
  if (rejectReservedBits(cmd, 1, 0x40) || rejectReservedBytes(cmd, 2, 7)) return Completion.DONE;
  const action = cdb[1]! & 0x1f;
  const ause = (cdb[1]! & AUSE) !== 0;
  const sbc = lu.sbc;
  const restricted = sbc.sanitize === SanitizeState.FAILED && sbc.sanitizeOp !== null && !sbc.sanitizeOp.plan.ause;
  if (action === SanitizeAction.EXIT_FAILURE_MODE) {
    if (paramLength !== 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, PARAMETER_LIST_LENGTH_FIELD);
      return Completion.DONE;
    }
    if (restricted) {
      // SBC-4 5.30.1: a failure in the restricted completion mode cannot be exited.
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, SERVICE_ACTION_FIELD);
      return Completion.DONE;
    }
    cmd.status = ScsiStatus.GOOD;
    if (sbc.sanitize !== SanitizeState.FAILED) return Completion.DONE;
    sbc.exitSanitizeFailure().then(
      () => cmd.finish(),
      () => {
        setCheckCondition(cmd, SenseReason.INTERNAL_TARGET_FAILURE);
        cmd.finish();
      },
    );
    return Completion.PENDING;
  }
  if (restricted && ause) {
    // SBC-4 4.11.3: the restricted completion mode cannot be left for the unrestricted one.
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, AUSE_FIELD);
    return Completion.DONE;
  }
  let plan: SanitizePlan;
  if (action === SanitizeAction.OVERWRITE) {
    const p = parseOverwrite(lu, cmd, paramLength, ause);
    if (p === null) return Completion.DONE;
    plan = p;
  } else {
    // BLOCK ERASE and CRYPTOGRAPHIC ERASE take no parameter list.
    if (paramLength !== 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, PARAMETER_LIST_LENGTH_FIELD);
      return Completion.DONE;
    }
    plan = { action, ause, count: 1, invert: false, block: null };
  }
  if (rejectWriteProtected(lu, cmd)) return Completion.DONE;
  cmd.status = ScsiStatus.GOOD;
  if ((cdb[1]! & IMMED) !== 0) {
    sbc.startSanitize(plan, null);
    return Completion.DONE;
  }
  sbc.startSanitize(plan, cmd);
  return Completion.PENDING;
}

/** Validate the OVERWRITE parameter list; null when the command was completed with an error. */
function parseOverwrite(lu: LogicalUnit, cmd: ScsiCommand, paramLength: number, ause: boolean): SanitizePlan | null {
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
  return { action: SanitizeAction.OVERWRITE, ause, count, invert: (p[0]! & 0x80) !== 0, block };
}
