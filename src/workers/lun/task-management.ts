/**
 * Task management functions as the logical unit carries them out (SAM-5 7). The session
 * worker deals with its own tasks first (those still receiving data end there); every
 * function that aborts commands already at the LU reaches it here too, through a TMF
 * descriptor on the ring, queued behind the commands it may abort.
 *
 *   ABORT TASK        the issuer's one command (`refersTo` names it)     SAM-5 7.2
 *   ABORT TASK SET    the issuer's commands on the LU                    SAM-5 7.3
 *   CLEAR TASK SET    every command on the LU                            SAM-5 7.6
 *   LOGICAL UNIT RESET, target resets: every command, plus the LU state a reset clears
 *
 * Aborted commands (SAM-5 5.6) are not interrupted mid-I/O (a backing-store write that
 * started completes); dormant ones (task-set.ts) complete at once without running. A
 * SANITIZE command waiting for its sanitize operation ends at once and the operation
 * carries on (SBC-4 4.11.2; sbc/sanitize-operation.ts). How an aborted command of
 * *another* nexus ends depends on TAS in the control mode page (SPC-4 7.5.8,
 * spc/mode-pages.ts, lu.taskAbortedStatus):
 *   TAS = 0  no status at all: its completion is COMPLETION_ABORTED and its session
 *            worker drops it; CLEAR TASK SET then establishes COMMANDS CLEARED BY
 *            ANOTHER INITIATOR for that nexus (SAM-5 7.6).
 *   TAS = 1  a normal completion with status TASK ABORTED (SAM-5 5.3.1, 5.6), no UA.
 * The issuer's own aborted commands never get a status (its session worker also drops
 * them). The TMF is acknowledged only once every affected enabled command has finished,
 * so when the initiator gets "function complete" none of the aborted writes can still
 * land.
 */
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import { SenseReason } from '../../shared/scsi/sense.ts';
import { TmfFunction } from '../../shared/iscsi/pdu.ts';
import type { LogicalUnit } from './logical-unit.ts';
import { establish, establishForNexus } from './ua/unit-attention.ts';
import { prLogicalUnitReset } from './pr/engine.ts';

/** A command that can be marked aborted (the LUN worker's pooled command objects). */
export interface AbortableCommand extends ScsiCommand {
  aborted: boolean;
  /** With `aborted`: complete with TASK ABORTED status instead of none (TAS = 1). */
  abortedWithStatus: boolean;
}

/**
 * Apply `fn` (an RFC 7143 TMF code) issued by `nexus` to `lu`; `done` runs once the
 * affected commands have finished, with an error if state the function clears could not
 * be cleared (a cluster node that cannot reach Redis: the function is not complete).
 */
export function applyTaskManagement(
  lu: LogicalUnit,
  fn: number,
  nexus: number,
  done: (failed?: unknown) => void,
  refersTo: (cmd: ScsiCommand) => boolean = () => false,
): void {
  switch (fn) {
    case TmfFunction.ABORT_TASK:
    case TmfFunction.ABORT_TASK_SET: {
      // SAM-5 7.2 / 7.3: only the issuer's commands; they end without status. Dormant
      // ones end at once, which also matters while an ACA condition blocks them.
      const one = fn === TmfFunction.ABORT_TASK;
      const pick = (c: ScsiCommand): boolean => c.nexus === nexus && (!one || refersTo(c));
      abortAll(lu, nexus, pick);
      lu.taskSet.whenNone(pick, done);
      return;
    }
    case TmfFunction.LOGICAL_UNIT_RESET:
    case TmfFunction.TARGET_WARM_RESET:
    case TmfFunction.TARGET_COLD_RESET: {
      // SAM-5 6.3.3 / 6.3.2: the LU aborts every task in its task set, and a unit
      // attention is established for every I_T nexus (issuer included): BUS DEVICE
      // RESET FUNCTION OCCURRED after a LOGICAL UNIT RESET, the generic POWER ON,
      // RESET, OR BUS DEVICE RESET OCCURRED after a target reset.
      abortAll(lu, nexus, () => true);
      // SAM-5 5.9.5: a reset clears the ACA condition (its commands were just aborted).
      lu.taskSet.clearAca();
      establish(
        lu,
        fn === TmfFunction.LOGICAL_UNIT_RESET
          ? SenseReason.BUS_DEVICE_RESET_FUNCTION_OCCURRED
          : SenseReason.POWER_ON_RESET_OR_BUS_DEVICE_RESET,
      );
      // State a reset clears: PREVENT ALLOW MEDIUM REMOVAL (SBC-4 5.14: cleared by a
      // LUN reset). Persistent reservations survive (SPC-4 5.14.2).
      lu.sbc.preventing.clear();
      // SPC-2 reservations do not survive a reset (SAM-5 6.3.2; pr/engine.ts). The
      // function is complete only once the release is: in a cluster that is a change in
      // Redis that every node has adopted, so no host is refused (or admitted) through
      // another node under the reservation after "function complete".
      if (lu.pr?.spc2Active !== true) {
        lu.taskSet.whenNone(() => true, done);
        return;
      }
      const released = prLogicalUnitReset(lu);
      lu.taskSet.whenNone(
        () => true,
        () => released.then(() => done(), (err: unknown) => done(err ?? new Error('reservation release failed'))),
      );
      return;
    }
    case TmfFunction.CLEAR_TASK_SET: {
      // SAM-5 7.6: with one task set for all nexuses (TST = 000b) every task is
      // aborted; with TAS = 0 the other nexuses whose tasks were cleared learn it from
      // COMMANDS CLEARED BY ANOTHER INITIATOR (SAM-5 7.6), with TAS = 1 from the
      // TASK ABORTED status of each command.
      const others = new Set<number>();
      abortAll(lu, nexus, (c) => {
        if (c.nexus !== nexus) others.add(c.nexus);
        return true;
      });
      if (!lu.taskAbortedStatus) {
        for (const n of others) establishForNexus(lu, n, SenseReason.COMMANDS_CLEARED_BY_ANOTHER_INITIATOR);
      }
      lu.taskSet.whenNone(() => true, done);
      return;
    }
    case TmfFunction.CLEAR_ACA: {
      // SAM-5 7.3: from the faulted I_T nexus, CLEAR ACA aborts the command with the ACA
      // attribute (as ABORT TASK would) and clears the ACA condition, so the blocked
      // commands resume. From any other nexus, or without ACA, it changes nothing.
      const ts = lu.taskSet;
      if (ts.acaNexus !== nexus) {
        done();
        return;
      }
      const aca = ts.acaTask;
      if (aca !== null) abortAll(lu, nexus, (c) => c === aca);
      ts.clearAca();
      ts.whenNone((c) => c === aca, done);
      return;
    }
    default:
      done();
  }
}

/** Abort the commands `pick` selects; `issuer` is the nexus of the TMF (see file comment). */
function abortAll(lu: LogicalUnit, issuer: number, pick: (c: ScsiCommand) => boolean): void {
  const tas = lu.taskAbortedStatus;
  let waiting: ScsiCommand | null = null;
  lu.taskSet.abort(pick, (c) => {
    const a = c as AbortableCommand;
    a.aborted = true;
    a.abortedWithStatus = tas && c.nexus !== issuer;
    if (lu.sbc.sanitizeOp?.waiter === c) waiting = c;
  });
  // Outside the task set's iteration: finishing it removes it from the set.
  if (waiting !== null) lu.sbc.releaseSanitizeWaiter(waiting);
}

/**
 * I_T nexus loss (SAM-5 6.3.4, nexus-events.ts): the lost nexus's commands are aborted
 * (they will never be answered) and an ACA condition it faulted is cleared (5.9.5).
 */
export function abortNexusCommands(lu: LogicalUnit, nexus: number): void {
  abortAll(lu, nexus, (c) => c.nexus === nexus);
  if (lu.taskSet.acaNexus === nexus) lu.taskSet.clearAca();
}
