/**
 * A command as the LUN worker holds it: one pooled object per in-flight command, reset in
 * place, carrying the descriptor's fields and the LU's execution state. finish() writes
 * the completion descriptor onto the ring the command came from.
 */
import { ScsiCommandFields, ScsiStatus, type ScsiCommand } from '../../shared/scsi/command.ts';
import { Cpl, CPL_SENSE_MAX, DescKind } from '../../shared/ring/descriptors.ts';
import type { LogicalUnit } from './logical-unit.ts';
import type { SessionLink } from './session-link.ts';
import { completionGrant } from './inline-grant.ts';

/** What a task needs from the worker that pools it. */
export interface TaskHome {
  /** The task's completion is on its link's ring: return it to the pool, wake the peer. */
  completed(task: LunTask, link: SessionLink): void;
}

export const EMPTY = Buffer.alloc(0);

export class LunTask extends ScsiCommandFields implements ScsiCommand {
  readonly ioTrampoline: (err: NodeJS.ErrnoException | null) => void;
  readonly home: TaskHome;
  link: SessionLink | null = null;
  /** The LU executing this command (its task set holds it until finish). */
  lu: LogicalUnit | null = null;
  tag = 0;
  /** Aborted by a task management function: complete without status... */
  aborted = false;
  /** ...or, with TAS = 1 and another nexus's TMF, with TASK ABORTED (task-management.ts). */
  abortedWithStatus = false;
  busy = false;
  /** Unit index the metrics counted this command against (-1: none; shared/metrics/lun-counters.ts). */
  metricLu = -1;
  /** performance.now() when the command came off the ring (latency histograms). */
  startMs = 0;

  constructor(home: TaskHome) {
    super();
    this.home = home;
    this.ioTrampoline = (err) => {
      const k = this.onIo;
      this.onIo = null;
      if (k) k(this, err);
    };
  }

  finish(): void {
    const link = this.link;
    if (link === null) throw new Error('finish() of a task that is not in flight');
    if (link.dead) {
      // Its session worker died: nobody reads this ring; leave the task set quietly.
      this.leaveTaskSet();
      this.home.completed(this, link);
      return;
    }
    const o = link.cpl.reserve();
    if (o < 0) {
      // Cannot happen: a session worker never has more commands in flight with us than
      // the ring holds, and the completion ring is as large as the command ring.
      throw new Error('completion ring full');
    }
    const v = link.cpl.view;
    if (this.aborted) {
      if (this.abortedWithStatus) {
        // SPC-4 7.5.8 TAS = 1: TASK ABORTED, no sense, no data (SAM-5 5.3.1).
        this.status = ScsiStatus.TASK_ABORTED;
        this.senseLength = 0;
        this.dataInLength = 0;
        this.dataOutWanted = 0;
        v.setUint8(o + Cpl.KIND, DescKind.COMPLETION);
      } else {
        v.setUint8(o + Cpl.KIND, DescKind.COMPLETION_ABORTED);
      }
    } else {
      v.setUint8(o + Cpl.KIND, DescKind.COMPLETION);
    }
    v.setUint8(o + Cpl.STATUS, this.status);
    const sl = Math.min(this.senseLength, CPL_SENSE_MAX);
    v.setUint16(o + Cpl.SENSE_LENGTH, sl, true);
    v.setUint32(o + Cpl.TAG, this.tag, true);
    // Lengths can exceed 32 bits (a READ(16) of > 4 GiB); clamping keeps the residual
    // "more than EDTL" rather than wrapping to a small number.
    v.setUint32(o + Cpl.DATA_IN_LENGTH, Math.min(this.dataInLength, 0xffffffff), true);
    v.setUint32(o + Cpl.DATA_OUT_WANTED, Math.min(this.dataOutWanted, 0xffffffff), true);
    if (sl > 0) link.cpl.bytes.set(this.sense.subarray(0, sl), o + Cpl.SENSE);
    const lu = this.lu;
    v.setInt32(o + Cpl.GRANT, lu !== null && lu.inline !== null ? completionGrant(lu, this) : 0, true);
    link.cpl.publish();
    // Leave the task set only now, after the completion is on the ring: remove() may
    // enable dormant commands (and answer waiting TMFs), whose completions then follow.
    this.leaveTaskSet();
    this.home.completed(this, link);
  }

  private leaveTaskSet(): void {
    const lu = this.lu;
    if (lu !== null) {
      this.lu = null;
      lu.taskSet.remove(this);
    }
  }

  /** Back to the pool's idle state. */
  reset(): void {
    this.busy = false;
    this.aborted = false;
    this.abortedWithStatus = false;
    this.link = null;
    this.data = EMPTY;
    this.onIo = null;
  }
}
