/**
 * The target core entry point of a LUN worker: parse, then execute, one SCSI command
 * for one logical unit.
 *
 * Table driven: the opcode registry (opcode-registry.ts) lists every command once
 * (opcode, service action, CDB usage data, executor, and the policy every stage below
 * applies). Dispatch, REPORT SUPPORTED OPERATION CODES and the stages' lookup tables are
 * generated from it, so what is reported, served and admitted cannot drift apart. Each
 * LU carries the compiled command set of its device type (lu.commands: a disk's, a
 * CD-ROM's); the stages read only that.
 *
 * Contract: executeCommand calls cmd.finish() exactly once per command, synchronously
 * for commands without I/O, from the I/O continuation otherwise, also on I/O errors.
 *
 * Pipeline (DESIGN.md): submitCommand admits a command into the LU's task set
 * (task-set.ts: task attributes, queue depth); once the command is enabled,
 * executeCommand checks unit attentions, ALUA state and reservations, then parses and
 * executes. The task set runs the commands it enables later through executeCommand too
 * (LogicalUnit hands it over when it creates the task set).
 */
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import { ScsiStatus } from '../../shared/scsi/command.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../shared/scsi/sense.ts';
import type { LogicalUnit } from './logical-unit.ts';
import { checkAndReport } from './ua/unit-attention.ts';
import { checkAluaAccess } from './alua/access.ts';
import { checkReservationConflict } from './pr/conflict.ts';
import { CTL_LINK, Completion } from './spc/handler.ts';

const OPCODE_FIELD = Object.freeze(cdbField(0, 7));
const SERVICE_ACTION_FIELD = Object.freeze(cdbField(1, 4));

/**
 * A command arrived for `lu`: enter it into the task set (task-set.ts) and run it now if
 * its task attribute allows, else later, when the commands it waits for have finished
 * (the LUN worker's finish() removes them). Calls cmd.finish() exactly once, also when
 * the task set rejects it (TASK SET FULL, BUSY, ACA attribute). Hot path: one branch.
 */
export function submitCommand(lu: LogicalUnit, cmd: ScsiCommand): void {
  if (lu.taskSet.admit(cmd)) executeCommand(lu, cmd);
}

/** Execute `cmd` against `lu`; calls cmd.finish() exactly once (see the file comment). */
export function executeCommand(lu: LogicalUnit, cmd: ScsiCommand): void {
  cmd.status = ScsiStatus.GOOD;
  cmd.senseLength = 0;
  cmd.dataInLength = 0;
  cmd.dataOutWanted = 0;
  cmd.onIo = null;
  cmd.inlineEpoch = 0;
  const set = lu.commands;
  // Pipeline stage 1 (DESIGN.md): a pending unit attention for this I_T nexus
  // (ua/unit-attention.ts; the registry's `unitAttention` flag exempts INQUIRY, REPORT
  // LUNS and REQUEST SENSE).
  if (checkAndReport(lu, cmd, set.uaHandling)) {
    cmd.finish();
    return;
  }
  // Pipeline stage 2: the ALUA state of the target port the command came through
  // (alua/access.ts, SPC-4 5.16.2.4). One integer test while every group is active.
  if (checkAluaAccess(lu, cmd, set.aluaAdmitted)) {
    cmd.finish();
    return;
  }
  // Pipeline stage 3: reservations (pr/conflict.ts,
  // SPC-4 5.14.1 / SBC-4 4.17). Returns at once when the LU has no reservation.
  if (checkReservationConflict(lu, cmd, set.prAccess, set.spc2Access)) {
    cmd.finish();
    return;
  }
  // An LU-wide exclusive command (the registry's `exclusive` rows: COMPARE AND WRITE,
  // WRITE ATOMIC, ORWRITE; SBC-4 5.3) is waiting or running, here or (cluster) on another
  // node: queue behind it, in arrival order (sbc/state.ts).
  if (lu.sbc.gate !== null) {
    lu.sbc.defer(cmd, executeCommand);
    return;
  }
  const cdb = cmd.cdb;
  const op = cdb[0]!;
  let desc = set.direct[op];
  if (desc === undefined) {
    const bySa = set.bySa[op];
    if (bySa === undefined) {
      // An operation code this device server does not implement.
      setCheckCondition(cmd, SenseReason.INVALID_COMMAND_OPERATION_CODE, OPCODE_FIELD);
      cmd.finish();
      return;
    }
    desc = bySa[cdb[1]! & 0x1f];
    if (desc === undefined) {
      // SPC-4 4.2.2.2: an unsupported service action is an invalid field in the CDB.
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, SERVICE_ACTION_FIELD);
      cmd.finish();
      return;
    }
  }
  if (desc.supported !== undefined && !desc.supported(lu)) {
    if (desc.serviceAction === undefined)
      setCheckCondition(cmd, SenseReason.INVALID_COMMAND_OPERATION_CODE, OPCODE_FIELD);
    else setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, SERVICE_ACTION_FIELD);
    cmd.finish();
    return;
  }
  // Medium absent (ejected) or a sanitize in progress or failed: NOT READY (SBC-4 4.34,
  // 4.11) for every command the registry's `notReady` flag does not admit (sbc/state.ts).
  if (lu.sbc.notReady !== null && lu.sbc.rejectNotReady(cmd, set.notReadyServed)) {
    cmd.finish();
    return;
  }
  // CONTROL byte (SAM-5 5.2, table 21): LINK = 1 requests linked commands, obsolete
  // since SAM-4. NACA = 1 is accepted: a CHECK CONDITION then establishes an ACA
  // condition (SAM-5 5.9, task-set.ts).
  const control = desc.usage.length - 1;
  if ((cdb[control]! & CTL_LINK) !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(control, 0));
    cmd.finish();
    return;
  }
  let completion: Completion;
  try {
    completion = desc.handler(lu, cmd);
  } catch (err) {
    // A bug. If the executor issued I/O (onIo set) its continuation still owns finish();
    // otherwise complete the command here so the initiator is not left waiting.
    lu.env.reportInternalError(err, cmd);
    if (cmd.onIo !== null) return;
    completion = Completion.DONE;
    setCheckCondition(cmd, SenseReason.INTERNAL_TARGET_FAILURE);
  }
  if (completion === Completion.DONE) cmd.finish();
}
