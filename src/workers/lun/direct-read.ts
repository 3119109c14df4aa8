/**
 * The LUN worker's half of direct reads (shared/ring/direct-grants.ts): the grant a
 * completing command carries back, and the catch-all that voids grants.
 */
import { ScsiStatus, type ScsiCommand } from '../../shared/scsi/command.ts';
import type { LogicalUnit } from './logical-unit.ts';

/** READ(6/10/12/16) (SBC-4 5.15-5.18). */
const READ = new Uint8Array(256);
for (const op of [0x08, 0x28, 0xa8, 0x88]) READ[op] = 1;
/** READ and WRITE(6/10/12/16) (SBC-4 5.40-5.43): the commands that change no unit state. */
const PLAIN = new Uint8Array(READ);
for (const op of [0x0a, 0x2a, 0xaa, 0x8a]) PLAIN[op] = 1;

/**
 * `cmd` completes on `lu`, a unit with direct reads, its status not on the ring yet:
 * the grant its completion carries (0: none).
 *  - A READ that ended GOOD passed every check for its I_T nexus (unit attention, port
 *    group access, reservations, readiness); with the gate open and no ORDERED, HEAD OF
 *    QUEUE or ACA in the task set, later SIMPLE READs of that nexus would pass them too,
 *    until the epoch moves. RAM I/O completes within the command's own turn, so nothing
 *    changed between the checks and now.
 *  - Any other command, and any command that did not end GOOD, may have changed what the
 *    next READ meets (a reservation, a unit attention, mode pages, an ACA condition).
 *    The state changes invalidate themselves where they happen; this catch-all voids the
 *    grants again before such a status reaches the initiator, so nothing a change hook
 *    might miss outlives the command that made it.
 */
export function completionGrant(lu: LogicalUnit, cmd: ScsiCommand & { readonly aborted: boolean }): number {
  const d = lu.direct!;
  const op = cmd.cdb[0]!;
  if (cmd.status !== ScsiStatus.GOOD || cmd.aborted || PLAIN[op] === 0) {
    lu.invalidateDirect();
    return 0;
  }
  if (READ[op] === 0 || lu.sbc.gate !== null || lu.sbc.notReady !== null || !lu.taskSet.quiet) return 0;
  return d.grants.epoch(d.index);
}
