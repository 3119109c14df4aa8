/**
 * Unit attention conditions (SAM-5 5.14, SPC-4 5.14 and 7.5.x), per logical unit and
 * I_T nexus: the first stage of the LUN pipeline (UA → ALUA → reservation → parse →
 * execute, DESIGN.md).
 *
 * Minimal by design; a later issue (target core) extends it with:
 *   - POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29/00) on the first command of each
 *     nexus, and after LUN RESET / target reset;
 *   - I_T NEXUS LOSS OCCURRED and forgetting a nexus when its session ends (today a
 *     nexus is remembered until KNOWN_NEXUS_LIMIT evicts it, oldest first);
 *   - the overflow rule of SAM-5 5.14 (too many queued conditions collapse into one
 *     POWER ON/RESET).
 *
 * Only nexuses that have addressed this LU are known here: `establish(..)` queues for
 * them. A nexus that never sent a command to the LU has no state to invalidate; once
 * POWER ON/RESET is reported on first access (above) that also tells it everything.
 *
 * Interlock: UA_INTLCK_CTRL is 00b (control mode page), so reporting a UA with CHECK
 * CONDITION clears it, and REQUEST SENSE reports (and clears) a pending one.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { Opcode } from '../../../shared/scsi/opcodes.ts';
import type { SenseDetail } from '../../../shared/scsi/sense.ts';
import { setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';

/** Conditions queued per nexus beyond which the oldest is dropped (duplicates never queue). */
const QUEUE_LIMIT = 8;
/** Nexuses remembered per LU; beyond it the least recently added is forgotten. */
const KNOWN_NEXUS_LIMIT = 4096;

/** Per-LU state: nexus → queued conditions, oldest first (empty array: known, nothing pending). */
export class UnitAttentionState {
  readonly pending = new Map<number, SenseDetail[]>();
}

/**
 * Queue `reason` for every nexus known to the LU except `exceptNexus` (the one whose
 * command caused the change, SPC-4 7.5.1: "... for all I_T nexuses other than the one
 * that issued the MODE SELECT").
 */
export function establish(lu: LogicalUnit, reason: SenseDetail, exceptNexus?: number): void {
  for (const [nexus, queue] of lu.ua.pending) {
    if (nexus === exceptNexus || queue.includes(reason)) continue;
    if (queue.length >= QUEUE_LIMIT) queue.shift();
    queue.push(reason);
  }
}

/**
 * Queue `reason` for every nexus known to the LU for which `select(nexus handle)` holds:
 * conditions addressed to I_T nexus identities rather than to "all but one" (SPC-4
 * 5.14.11: REGISTRATIONS PREEMPTED for the preempted registrants, RESERVATIONS RELEASED
 * for the remaining ones); the caller resolves the handle through lu.nexuses.
 */
export function establishFor(lu: LogicalUnit, reason: SenseDetail, select: (nexus: number) => boolean): void {
  for (const [nexus, queue] of lu.ua.pending) {
    if (queue.includes(reason) || !select(nexus)) continue;
    if (queue.length >= QUEUE_LIMIT) queue.shift();
    queue.push(reason);
  }
}

/** Remove and return the oldest pending condition of `nexus`, or undefined. */
export function takeUnitAttention(lu: LogicalUnit, nexus: number): SenseDetail | undefined {
  const queue = lu.ua.pending.get(nexus);
  return queue === undefined || queue.length === 0 ? undefined : queue.shift();
}

/**
 * Called at the top of executeCommand for every command. When a condition is pending
 * for the command's nexus, completes the command with CHECK CONDITION / UNIT ATTENTION,
 * clears that condition and returns true (the caller then calls finish()).
 * INQUIRY, REPORT LUNS and REQUEST SENSE are never failed (SAM-5 5.14); REQUEST SENSE
 * reports the condition as its parameter data instead (unit-status.ts). Every command,
 * exempt or not, makes its nexus known to the LU. Hot path: one Map lookup and one
 * array length test when nothing is pending.
 */
export function checkAndReport(lu: LogicalUnit, cmd: ScsiCommand): boolean {
  const pending = lu.ua.pending;
  const queue = pending.get(cmd.nexus);
  if (queue === undefined) {
    // First command of this nexus at this LU: remember it (allocates once per nexus).
    if (pending.size >= KNOWN_NEXUS_LIMIT) pending.delete(pending.keys().next().value!);
    pending.set(cmd.nexus, []);
    return false;
  }
  if (queue.length === 0) return false;
  const op = cmd.cdb[0]!;
  if (op === Opcode.INQUIRY || op === Opcode.REPORT_LUNS || op === Opcode.REQUEST_SENSE) return false;
  setCheckCondition(cmd, queue.shift()!);
  return true;
}
