/**
 * The task set of one logical unit (SAM-5 8): the commands the device server has
 * accepted and not yet completed, across all I_T nexuses. TST is 000b in the control
 * mode page (SPC-4 7.5.8): one task set per LU, shared by every nexus.
 *
 * Task attributes (SAM-5 8.6) decide when a command in the set becomes *enabled*
 * (may run). A command that may not run yet is *dormant*: it stays in a FIFO here (the
 * LUN worker's pooled command object, nothing is copied) and runs the whole pipeline
 * (UA → ALUA → reservation → execute) once enabled, so it observes the LU as it is
 * when it runs, not as it was when it arrived.
 *
 *   SIMPLE (and untagged, RFC 7143 11.3.1 treats it as SIMPLE): enabled once no HEAD OF
 *     QUEUE command is in the set and every older ORDERED command has completed
 *     (SAM-5 8.6.2). SIMPLE commands run concurrently with each other.
 *   ORDERED: enabled once every older command (of every nexus) and every HEAD OF QUEUE
 *     command has completed; every newer SIMPLE or ORDERED command waits for it
 *     (SAM-5 8.6.3).
 *   HEAD OF QUEUE: enabled at once, without waiting for anything (SAM-5 8.6.4); newer
 *     SIMPLE and ORDERED commands wait until it has completed.
 *   ACA: only while an ACA condition exists (SAM-5 8.6.5); otherwise terminated with
 *     CHECK CONDITION, ILLEGAL REQUEST, INVALID MESSAGE ERROR.
 *
 * Auto contingent allegiance (SAM-5 5.9), with QErr = 00b and TST = 000b (control mode
 * page): a command whose CDB has NACA = 1 and that completes with CHECK CONDITION
 * establishes an ACA condition for its I_T nexus, the faulted nexus (5.9.2). While it
 * exists:
 *   - commands already enabled complete as usual; dormant ones are blocked (they stay
 *     dormant, 5.9.2 table 31, QErr = 00b) until it is cleared;
 *   - the faulted nexus may have one command with the ACA attribute in the set, which
 *     runs at once (its recovery command); every other new command, from any nexus
 *     (TST = 000b: one task set), is terminated with ACA ACTIVE status (5.9.3);
 *   - it is cleared (5.9.5) by CLEAR ACA from the faulted nexus, which also aborts the
 *     ACA command (SAM-5 7.3), by a logical unit or target reset, by the loss of the
 *     faulted nexus (task-management.ts, nexus-events.ts), and when the ACA command
 *     itself completes with CHECK CONDITION (a new ACA follows if its NACA is 1).
 *
 *   arrival ──admit──┬─ full ────────────────> TASK SET FULL / BUSY (SAM-5 5.3.2)
 *                    ├─ may run ─> active ──finish──> remove ──> pump (enable dormant)
 *                    └─ must wait ─> dormant FIFO ─────────────────────┘
 *
 * Hot path: a SIMPLE command while no ORDERED or HEAD OF QUEUE command is in the set
 * costs one branch in admit() (`simpleLimit` folds "no ORDERED/HOQ" and the queue
 * depth into one bound) plus the Set insertion that existed before, and no allocation.
 *
 * Queue depth (SAM-5 5.3.2, config `queueDepth`): a command arriving while the set
 * holds `depth` commands completes with TASK SET FULL when its nexus has commands in the
 * set, with BUSY otherwise. The rejected command never enters the set, so a pending
 * unit attention is not consumed by it.
 *
 * Aborts (task-management.ts): enabled commands are marked and complete as usual (their
 * I/O is not interrupted); dormant ones are taken out of the FIFO and completed at once
 * without running. whenNone() looks at enabled commands only: a dormant command has not
 * touched the LU, and when it is enabled later it meets the new state in the pipeline
 * (this is what PREEMPT AND ABORT relies on, pr/engine.ts).
 */
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import { cdbLengthOf } from '../../shared/scsi/cdb.ts';
import { CTL_NACA } from './spc/handler.ts';
import { ScsiStatus, TaskAttribute } from '../../shared/scsi/command.ts';
import { SenseReason, setCheckCondition } from '../../shared/scsi/sense.ts';
import type { LogicalUnit } from './logical-unit.ts';

/** Default task set capacity per LU (config `queueDepth`). */
export const DEFAULT_QUEUE_DEPTH = 128;

/**
 * Runs an enabled command through the pipeline: executeCommand (execute.ts), which
 * LogicalUnit passes when it creates its task set; tests pass a recording runner.
 */
export type TaskRunner = (lu: LogicalUnit, cmd: ScsiCommand) => void;

export class TaskSet {
  /** Commands the set holds at most (enabled + dormant); SAM-5 5.3.2. */
  depth: number;
  private readonly lu: LogicalUnit;
  /** Runs the dormant commands this set enables (see TaskRunner). */
  private readonly runner: TaskRunner;
  /** Enabled commands. A Set keeps insertion order and O(1) removal. */
  private readonly active = new Set<ScsiCommand>();
  /** Dormant commands, oldest first, from `head` on (slots before it are consumed). */
  private dormant: (ScsiCommand | undefined)[] = [];
  private head = 0;
  /** ORDERED commands in the set (enabled or dormant). */
  private ordered = 0;
  /** An ORDERED command is enabled (at most one is, SAM-5 8.6.3). */
  private orderedEnabled = false;
  /** HEAD OF QUEUE commands in the set (always enabled). */
  private headOfQueue = 0;
  /**
   * A SIMPLE command may start at once while active.size < simpleLimit: `depth` while no
   * ORDERED or HEAD OF QUEUE command is in the set (then nothing is dormant either) and
   * no ACA condition exists, 0 otherwise (relimit). Keeps the hot path to one comparison.
   */
  private simpleLimit: number;
  /** Re-entrancy guard: an enabled command that finishes synchronously calls remove(). */
  private pumping = false;
  private waiters: { pred: (cmd: ScsiCommand) => boolean; done: () => void }[] = [];
  /** barrier() waits: the enabled commands each still waits for. */
  private barriers: { pending: Set<ScsiCommand>; done: () => void }[] = [];
  /** The faulted I_T nexus while an ACA condition exists (SAM-5 5.9), else -1. */
  acaNexus = -1;
  /** The faulted nexus's command with the ACA attribute in the set, if any (at most one). */
  acaTask: ScsiCommand | null = null;

  constructor(lu: LogicalUnit, runner: TaskRunner, depth = DEFAULT_QUEUE_DEPTH) {
    this.lu = lu;
    this.runner = runner;
    this.depth = depth;
    this.simpleLimit = depth;
  }

  /** Commands in the set: enabled and dormant. */
  get size(): number {
    return this.active.size + this.dormant.length - this.head;
  }

  /** Dormant commands (waiting for their task attribute's condition). */
  get dormantCount(): number {
    return this.dormant.length - this.head;
  }

  /**
   * A command arrived for this LU. Returns true when it is enabled now (the caller then
   * runs it); false when it was queued dormant (it runs later, from remove()) or
   * rejected (already completed with finish()).
   */
  admit(cmd: ScsiCommand): boolean {
    // Hot path: SIMPLE/untagged, no ORDERED or HEAD OF QUEUE outstanding, room left.
    if (cmd.attribute <= TaskAttribute.SIMPLE && this.active.size < this.simpleLimit) {
      this.active.add(cmd);
      return true;
    }
    return this.admitSlow(cmd);
  }

  private admitSlow(cmd: ScsiCommand): boolean {
    const attr = cmd.attribute;
    if (this.acaNexus >= 0) {
      // SAM-5 5.9.3: during ACA only the faulted nexus's one ACA command is processed;
      // every other new command ends with ACA ACTIVE (TST = 000b: for every nexus).
      if (cmd.nexus === this.acaNexus && attr === TaskAttribute.ACA && this.acaTask === null) {
        this.acaTask = cmd;
        this.active.add(cmd);
        return true;
      }
      reject(cmd, ScsiStatus.ACA_ACTIVE);
      cmd.finish();
      return false;
    }
    if (attr === TaskAttribute.ACA) {
      // SAM-5 8.6.5: the ACA attribute without an ACA condition.
      reject(cmd, ScsiStatus.CHECK_CONDITION);
      setCheckCondition(cmd, SenseReason.INVALID_MESSAGE_ERROR);
      cmd.finish();
      return false;
    }
    if (this.size >= this.depth) {
      // SAM-5 5.3.2: TASK SET FULL when the nexus has commands in the set, else BUSY.
      reject(cmd, this.holdsNexus(cmd.nexus) ? ScsiStatus.TASK_SET_FULL : ScsiStatus.BUSY);
      cmd.finish();
      return false;
    }
    if (attr === TaskAttribute.HEAD_OF_QUEUE) {
      this.headOfQueue++;
      this.relimit();
      this.active.add(cmd);
      return true;
    }
    if (attr === TaskAttribute.ORDERED) {
      this.ordered++;
      this.relimit();
      if (this.size === 0) {
        this.orderedEnabled = true;
        this.active.add(cmd);
        return true;
      }
      this.dormant.push(cmd);
      return false;
    }
    // SIMPLE, untagged, or a reserved ATTR value (5-7), served as SIMPLE like untagged.
    if (this.ordered === 0 && this.headOfQueue === 0) {
      this.active.add(cmd); // only reached when the depth bound failed above: not full
      return true;
    }
    this.dormant.push(cmd);
    return false;
  }

  /** Whether any command of `nexus` is in the set (slow path only). */
  private holdsNexus(nexus: number): boolean {
    for (const c of this.active) if (c.nexus === nexus) return true;
    for (let i = this.head; i < this.dormant.length; i++) if (this.dormant[i]!.nexus === nexus) return true;
    return false;
  }

  /**
   * The command completed (LunTask.finish, after its completion is published). Enables
   * dormant commands that may now run and settles whenNone() waiters.
   */
  remove(cmd: ScsiCommand): void {
    if (!this.active.delete(cmd)) return;
    const attr = cmd.attribute;
    if (attr === TaskAttribute.ORDERED || attr === TaskAttribute.HEAD_OF_QUEUE) this.retire(attr);
    if (cmd.status === ScsiStatus.CHECK_CONDITION) this.checkCondition(cmd);
    else if (cmd === this.acaTask) this.acaTask = null;
    if (this.barriers.length !== 0) this.passBarriers(cmd);
    if (this.head < this.dormant.length) this.pump();
    if (this.waiters.length !== 0) this.settle();
  }

  private retire(attr: number): void {
    if (attr === TaskAttribute.ORDERED) {
      this.ordered--;
      this.orderedEnabled = false;
    } else {
      this.headOfQueue--;
    }
    this.relimit();
  }

  /** The hot path is open only with no ORDERED or HEAD OF QUEUE command and no ACA. */
  private relimit(): void {
    const quiet = this.quiet;
    this.simpleLimit = quiet ? this.depth : 0;
    // A SIMPLE READ must now wait its turn: no session worker may read around it.
    if (!quiet) this.lu.invalidateInline();
  }

  /** No ORDERED or HEAD OF QUEUE command in the set and no ACA condition (inline-grant.ts). */
  get quiet(): boolean {
    return this.ordered === 0 && this.headOfQueue === 0 && this.acaNexus < 0;
  }

  /**
   * A command of the set completed with CHECK CONDITION (slow path): the ACA rules of
   * SAM-5 5.9.2 / 5.9.5 (file comment). An aborted command is not reported with its
   * status, so it establishes nothing.
   */
  private checkCondition(cmd: ScsiCommand): void {
    if ((cmd as { aborted?: boolean }).aborted === true) return;
    if (cmd === this.acaTask) {
      // SAM-5 5.9.5: the ACA command ending in CHECK CONDITION clears the condition.
      this.acaTask = null;
      this.acaNexus = -1;
      this.relimit();
    }
    const control = cmd.cdb[cdbLengthOf(cmd.cdb[0]!) - 1]!;
    if ((control & CTL_NACA) !== 0) {
      this.acaNexus = cmd.nexus;
      this.relimit();
    }
  }

  /**
   * Clear the ACA condition (SAM-5 5.9.5): blocked commands become eligible again. The
   * caller aborts the ACA command first when the clearing function says so (CLEAR ACA).
   */
  clearAca(): void {
    if (this.acaNexus < 0) return;
    this.acaNexus = -1;
    this.acaTask = null;
    this.relimit();
    if (this.head < this.dormant.length) this.pump();
  }

  /**
   * Enable dormant commands in arrival order while their attribute allows (see the file
   * comment). Runs them synchronously; one that finishes at once re-enters remove(),
   * which returns to this loop instead of recursing.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // During ACA dormant commands are blocked (SAM-5 5.9.2, QErr = 00b).
      while (this.head < this.dormant.length && this.headOfQueue === 0 && this.acaNexus < 0) {
        const c = this.dormant[this.head]!;
        if (c.attribute === TaskAttribute.ORDERED) {
          if (this.active.size !== 0) break; // older commands still running
          this.orderedEnabled = true;
        } else if (this.orderedEnabled) {
          break; // SIMPLE behind the running ORDERED command
        }
        this.shiftDormant();
        this.active.add(c);
        this.runner(this.lu, c);
      }
    } finally {
      this.pumping = false;
    }
  }

  private shiftDormant(): void {
    this.dormant[this.head++] = undefined;
    if (this.head === this.dormant.length) {
      this.dormant.length = 0;
      this.head = 0;
    }
  }

  /** Visit every command in the set, enabled then dormant. */
  forEach(fn: (cmd: ScsiCommand) => void): void {
    for (const c of this.active) fn(c);
    for (let i = this.head; i < this.dormant.length; i++) fn(this.dormant[i]!);
  }

  /**
   * Abort the commands `pick` selects (SAM-5 5.6): `mark` flags each one (how its
   * completion is reported); enabled ones then complete on their own, dormant ones are
   * completed here without running.
   */
  abort(pick: (cmd: ScsiCommand) => boolean, mark: (cmd: ScsiCommand) => void): void {
    for (const c of this.active) if (pick(c)) mark(c);
    if (this.head === this.dormant.length) return;
    const keep: ScsiCommand[] = [];
    const drop: ScsiCommand[] = [];
    for (let i = this.head; i < this.dormant.length; i++) {
      const c = this.dormant[i]!;
      if (pick(c)) drop.push(c);
      else keep.push(c);
    }
    if (drop.length === 0) return;
    this.dormant = keep;
    this.head = 0;
    for (const c of drop) {
      if (c.attribute === TaskAttribute.ORDERED) {
        this.ordered--;
        this.relimit();
      }
    }
    for (const c of drop) {
      mark(c);
      reject(c, ScsiStatus.GOOD);
      c.finish();
    }
    // What remains may be runnable now (an ORDERED that only waited for aborted ones).
    if (this.head < this.dormant.length) this.pump();
  }

  /**
   * Call `done` once no *enabled* command matches `pred` (immediately if none does
   * now). Commands that arrive later, and dormant ones, are not waited for.
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

  /**
   * Resolves once every command enabled now (except `except`) has finished. Commands
   * enabled later, and those `skip` names, are not waited for: they run the pipeline after whatever change the
   * caller made and see it. Fencing uses it (pr/engine.ts): after a reservation change no
   * command admitted under the old state may still write. Tracked by removal, not by
   * matching, so a pooled command object reused for a newer command is never mistaken
   * for the one waited for.
   */
  barrier(skip: (cmd: ScsiCommand) => boolean): Promise<void> {
    const pending = new Set<ScsiCommand>();
    for (const c of this.active) if (!skip(c)) pending.add(c);
    if (pending.size === 0) return Promise.resolve();
    return new Promise((done) => this.barriers.push({ pending, done }));
  }

  private passBarriers(cmd: ScsiCommand): void {
    let left = 0;
    for (const b of this.barriers) {
      b.pending.delete(cmd);
      if (b.pending.size === 0) b.done();
      else left++;
    }
    if (left !== this.barriers.length) this.barriers = this.barriers.filter((b) => b.pending.size !== 0);
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

/** Complete `cmd` with `status` and nothing else (it never ran). */
function reject(cmd: ScsiCommand, status: number): void {
  cmd.status = status;
  cmd.senseLength = 0;
  cmd.dataInLength = 0;
  cmd.dataOutWanted = 0;
  cmd.onIo = null;
}
