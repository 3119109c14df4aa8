/**
 * Task management functions as the logical unit carries them out (SAM-5 7), for the
 * functions whose effect reaches beyond the issuing session: the session worker has
 * already dealt with its own tasks, this handles every nexus's commands on the LU and
 * the LU state a reset clears.
 *
 * Aborted commands of other nexuses are not interrupted mid-I/O (a backing-store write
 * that started completes), but their completions are sent as COMPLETION_ABORTED so no
 * status reaches the initiator (TAS = 0 in the control mode page, SAM-5 7.2). The TMF is
 * acknowledged only once every affected command has finished, so when the initiator gets
 * "function complete" none of the aborted writes can still land.
 */
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import { SenseReason } from '../../shared/scsi/sense.ts';
import { TmfFunction } from '../../shared/iscsi/pdu.ts';
import type { LogicalUnit } from './logical-unit.ts';
import { establish } from './ua/unit-attention.ts';
import { prLogicalUnitReset } from './pr/engine.ts';

/** A command that can be marked aborted (the LUN worker's pooled command objects). */
export interface AbortableCommand extends ScsiCommand {
  aborted: boolean;
}

/**
 * Apply `fn` (an RFC 7143 TMF code) issued by `nexus` to `lu`; `done` runs once the
 * affected commands have finished.
 */
export function applyTaskManagement(lu: LogicalUnit, fn: number, nexus: number, done: () => void): void {
  switch (fn) {
    case TmfFunction.LOGICAL_UNIT_RESET:
    case TmfFunction.TARGET_WARM_RESET:
    case TmfFunction.TARGET_COLD_RESET: {
      // SAM-5 6.3.3 / 6.3.2: the LU aborts every task in its task set, and a unit
      // attention is established for every I_T nexus (issuer included): BUS DEVICE
      // RESET FUNCTION OCCURRED after a LOGICAL UNIT RESET, the generic POWER ON,
      // RESET, OR BUS DEVICE RESET OCCURRED after a target reset.
      abortAll(lu, () => true);
      establish(
        lu,
        fn === TmfFunction.LOGICAL_UNIT_RESET
          ? SenseReason.BUS_DEVICE_RESET_FUNCTION_OCCURRED
          : SenseReason.POWER_ON_RESET_OR_BUS_DEVICE_RESET,
      );
      // State a reset clears: PREVENT ALLOW MEDIUM REMOVAL (SBC-4 5.14: cleared by a
      // LUN reset). Persistent reservations survive (SPC-4 5.14.2).
      lu.sbc.preventing.clear();
      // SPC-2 reservations do not survive a reset (SAM-5 6.3.2; pr/engine.ts).
      void prLogicalUnitReset(lu);
      lu.taskSet.whenNone(() => true, done);
      return;
    }
    case TmfFunction.CLEAR_TASK_SET: {
      // SAM-5 7.6: with one task set for all nexuses (TST = 000b) every task is
      // aborted; the other nexuses whose tasks were cleared learn it from COMMANDS
      // CLEARED BY ANOTHER INITIATOR (SPC-4 5.14 / SAM-5 7.6, TAS = 0).
      const others = new Set<number>();
      abortAll(lu, (c) => {
        if (c.nexus !== nexus) others.add(c.nexus);
        return true;
      });
      for (const n of others) establishOne(lu, n);
      lu.taskSet.whenNone(() => true, done);
      return;
    }
    default:
      // ABORT TASK / ABORT TASK SET touch only the issuer's own tasks, which its session
      // worker already tracks; nothing to do at the LU.
      done();
  }
}

function abortAll(lu: LogicalUnit, pick: (c: ScsiCommand) => boolean): void {
  lu.taskSet.forEach((c) => {
    if (pick(c)) (c as AbortableCommand).aborted = true;
  });
}

function establishOne(lu: LogicalUnit, nexus: number): void {
  const q = lu.ua.pending.get(nexus);
  const r = SenseReason.COMMANDS_CLEARED_BY_ANOTHER_INITIATOR;
  if (q === undefined) lu.ua.pending.set(nexus, [r]);
  else if (!q.includes(r)) q.push(r);
}
