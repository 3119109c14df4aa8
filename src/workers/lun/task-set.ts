/**
 * The task set of one logical unit (SAM-5 8.x): the commands the device server has
 * accepted and not yet completed, across all I_T nexuses.
 *
 * Today every command starts executing on arrival (all are treated as SIMPLE); the set
 * exists so that functions which must not complete while certain commands are still
 * running can wait for them: PREEMPT AND ABORT (SPC-4 5.14.11.2.5: the preempted
 * nexuses' commands are aborted, and none of their writes may land after the PREEMPT
 * AND ABORT completes), LOGICAL UNIT RESET, ABORT TASK SET. Task attributes, queue depth
 * and ACA build on this (target-core issue).
 */
import type { ScsiCommand } from '../../shared/scsi/command.ts';

export class TaskSet {
  /** Commands executing now. A Set keeps insertion order and O(1) removal. */
  private readonly active = new Set<ScsiCommand>();
  private waiters: { pred: (cmd: ScsiCommand) => boolean; done: () => void }[] = [];

  get size(): number {
    return this.active.size;
  }

  /** The command was accepted (called before it executes). */
  add(cmd: ScsiCommand): void {
    this.active.add(cmd);
  }

  /** The command completed (called when it finishes, before its completion is sent). */
  remove(cmd: ScsiCommand): void {
    if (!this.active.delete(cmd) || this.waiters.length === 0) return;
    this.settle();
  }

  /** Visit the active commands (for reports and aborts). */
  forEach(fn: (cmd: ScsiCommand) => void): void {
    for (const c of this.active) fn(c);
  }

  /**
   * Call `done` once no active command matches `pred` (immediately if none does now).
   * Commands that arrive later are not waited for.
   */
  whenNone(pred: (cmd: ScsiCommand) => boolean, done: () => void): void {
    for (const c of this.active) {
      if (pred(c)) {
        this.waiters.push({ pred, done });
        return;
      }
    }
    done();
  }

  private settle(): void {
    const still: typeof this.waiters = [];
    const ready: (() => void)[] = [];
    for (const w of this.waiters) {
      let busy = false;
      for (const c of this.active) {
        if (w.pred(c)) {
          busy = true;
          break;
        }
      }
      if (busy) still.push(w);
      else ready.push(w.done);
    }
    this.waiters = still;
    for (const d of ready) d();
  }
}
