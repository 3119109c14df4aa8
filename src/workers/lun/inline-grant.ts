/**
 * The LUN worker's half of inline I/O on RAM disks and files (shared/ring/inline-grants.ts): the
 * grant a completing command carries back, and the catch-all that voids grants.
 */
import { ScsiStatus, type ScsiCommand } from '../../shared/scsi/command.ts';
import type { LogicalUnit } from './logical-unit.ts';

const OTHER = 0;
const READ = 1;
const WRITE = 2;
/** Commands that change no state when they end GOOD: the catch-all leaves grants alone. */
const NEUTRAL = 3;
/** READ(6/10/12/16) (SBC-4 5.15-5.18) and WRITE(6/10/12/16) (SBC-4 5.40-5.43). */
const KIND = new Uint8Array(256);
for (const op of [0x08, 0x28, 0xa8, 0x88]) KIND[op] = READ;
for (const op of [0x0a, 0x2a, 0xaa, 0x8a]) KIND[op] = WRITE;
// TEST UNIT READY, INQUIRY, MODE SENSE(6/10), READ CAPACITY(10), SERVICE ACTION IN(16)
// (READ CAPACITY(16), GET LBA STATUS), SYNCHRONIZE CACHE(10/16), VERIFY(10/12/16),
// PERSISTENT RESERVE IN, MAINTENANCE IN (REPORT TARGET PORT GROUPS, REPORT SUPPORTED
// OPERATION CODES): they report or flush, and multipath checkers and fsync-heavy hosts
// send them all the time. (REQUEST SENSE is not here: it clears a unit attention.)
for (const op of [0x00, 0x12, 0x1a, 0x5a, 0x25, 0x9e, 0x35, 0x91, 0x2f, 0xaf, 0x8f, 0x5e, 0xa3]) KIND[op] = NEUTRAL;

/**
 * `cmd` completes on `lu`, a unit with inline I/O, its status not on the ring yet: the
 * grant its completion carries (0: none). The session worker keeps it for the command's
 * direction: a READ's grant covers READs, a WRITE's covers WRITEs.
 *  - A READ or WRITE that ended GOOD passed every check for its I_T nexus (unit
 *    attention, port group access, reservations, readiness, write protection); with the
 *    gate open and no ORDERED, HEAD OF QUEUE or ACA in the task set, later SIMPLE
 *    commands of the same kind from that nexus would pass them too, until the epoch
 *    moves; and the epoch must be the one the command was checked at (read-write.ts
 *    notes it). A thin unit's WRITE also maps blocks (sbc/state.ts), which only this
 *    worker may do: thin units grant no WRITEs. A file's WRITEs are granted only with
 *    the write cache enabled: a write-through or FUA WRITE waits for the medium on the
 *    LUN worker (and the session worker serves no FUA WRITE).
 *  - Any other command (but those that only report or flush, NEUTRAL), and any command
 *    that did not end GOOD, may have changed what the next READ or WRITE meets (a reservation, a unit attention, mode pages such as SWP,
 *    an ACA condition). The state changes invalidate themselves where they happen; this
 *    catch-all voids the grants again before such a status reaches the initiator, so
 *    nothing a change hook might miss outlives the command that made it.
 */
export function completionGrant(lu: LogicalUnit, cmd: ScsiCommand & { readonly aborted: boolean }): number {
  const d = lu.inline!;
  const kind = KIND[cmd.cdb[0]!]!;
  if (cmd.status !== ScsiStatus.GOOD || cmd.aborted || kind === OTHER) {
    lu.invalidateInline();
    return 0;
  }
  if (kind === NEUTRAL) return 0;
  const sbc = lu.sbc;
  if (sbc.gate !== null || sbc.notReady !== null || !lu.taskSet.quiet) return 0;
  if (kind === WRITE && (lu.readOnly || sbc.map !== null || (d.file && !lu.writeCacheEnabled))) return 0;
  // Checked at one epoch, granted at the same: a file store's I/O may have gone to the
  // thread pool, and whatever changed meanwhile moved the epoch.
  const epoch = d.grants.epoch(d.index);
  return cmd.inlineEpoch === epoch ? epoch : 0;
}
