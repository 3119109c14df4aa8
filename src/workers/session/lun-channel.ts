/**
 * The session worker's end of the data plane towards one LUN worker: a command ring it
 * produces into and a completion ring it consumes from, plus the LUN worker's doorbell.
 * When the command ring is full, tasks wait in an intrusive FIFO (no allocation) and
 * are pushed as completions free slots; in-flight tasks never exceed the ring capacity,
 * so the completion ring (same capacity) can never overflow.
 */
import { SpscRing } from '../../shared/ring/spsc-ring.ts';
import { Doorbell } from '../../shared/ring/doorbell.ts';
import { Cmd, Cpl, DescFlags, DescKind, CMD_DESC_BYTES, CPL_DESC_BYTES } from '../../shared/ring/descriptors.ts';
import type { LunChannelInit } from '../../shared/wire/worker-data.ts';
import { TaskState, type Task, type TaskPool } from './task.ts';

export class LunChannel {
  private readonly cmd: SpscRing;
  private readonly cpl: SpscRing;
  private readonly peer: Doorbell;
  private readonly pool: TaskPool;
  private inflight = 0;
  private readonly capacity: number;
  private waitHead: Task | null = null;
  private waitTail: Task | null = null;
  private pushedSinceRing = false;
  /** Completions refused because they matched no task in flight (see drain). */
  staleCompletions = 0;
  /** Called for each refused completion (the worker logs it). */
  onStale: (tag: number) => void = () => {};

  constructor(init: LunChannelInit, pool: TaskPool) {
    this.cmd = new SpscRing(init.cmdRing, init.capacity, CMD_DESC_BYTES);
    this.cpl = new SpscRing(init.cplRing, init.capacity, CPL_DESC_BYTES);
    this.peer = new Doorbell(init.peerDoorbell);
    this.capacity = init.capacity;
    this.pool = pool;
  }

  /**
   * The LUN worker at the other end died (issue 12): nothing more goes on this ring, and
   * what is submitted waits in the queue until a replacement channel adopts it.
   */
  down = false;

  /** Queue a fully received task for execution. */
  submit(t: Task, nexus: number): void {
    t.state = TaskState.QUEUED;
    t.next = null;
    if (!this.down && this.waitHead === null && this.inflight < this.capacity && this.push(t, nexus)) return;
    // Backpressure: remember the nexus on the task through its lunField-free slot.
    t.nexusForQueue = nexus;
    if (this.waitTail) this.waitTail.next = t;
    else this.waitHead = t;
    this.waitTail = t;
  }

  private push(t: Task, nexus: number): boolean {
    const o = this.cmd.reserve();
    if (o < 0) return false;
    const v = this.cmd.view;
    const b = this.cmd.bytes;
    v.setUint8(o + Cmd.KIND, t.kind);
    v.setUint8(o + Cmd.ATTRIBUTE, t.attribute);
    v.setUint8(o + Cmd.CDB_LENGTH, t.cdbLength);
    v.setUint8(o + Cmd.FLAGS, (t.read ? DescFlags.DATA_IN : 0) | (t.write ? DescFlags.DATA_OUT : 0));
    v.setUint32(o + Cmd.TAG, t.ringTag, true);
    v.setUint32(o + Cmd.NEXUS, nexus, true);
    v.setUint32(o + Cmd.LU_INDEX, t.luIndex, true);
    v.setUint32(o + Cmd.SLAB_OFFSET, t.slabOffset < 0 ? 0 : t.slabOffset, true);
    v.setUint32(o + Cmd.EXPECTED_LENGTH, t.data.length, true);
    v.setUint32(o + Cmd.DATA_OUT_LENGTH, t.write ? t.received : 0, true);
    v.setUint32(o + Cmd.LUN, t.lun, true);
    b.set(t.cdb, o + Cmd.CDB);
    this.cmd.publish();
    t.state = TaskState.SUBMITTED;
    t.channel = this;
    this.inflight++;
    this.pushedSinceRing = true;
    return true;
  }

  /**
   * The LUN worker died: every task it held ends here, as if it had completed it with
   * `status` and `sense` (`aborted` for the control descriptors, whose owners only wait
   * for an acknowledgement). Tasks still queued stay queued for the replacement (adopt).
   */
  failInFlight(status: number, sense: Buffer): number {
    this.down = true;
    let n = 0;
    this.pool.forEachInUse((t) => {
      if (t.channel !== this || t.state !== TaskState.SUBMITTED) return;
      t.channel = null;
      t.status = status;
      t.senseLength = sense.length;
      sense.copy(t.sense);
      t.dataInLength = 0;
      t.dataOutWanted = 0;
      t.grant = 0;
      t.state = TaskState.RESPONDING;
      n++;
      if (t.owner) t.owner.onTaskComplete(t);
      else this.pool.release(t);
    });
    this.inflight = 0;
    return n;
  }

  /** Take over the tasks `old` (a channel to a dead LUN worker) still had queued, and push them. */
  adopt(old: LunChannel): void {
    let t = old.waitHead;
    old.waitHead = null;
    old.waitTail = null;
    while (t !== null) {
      const next = t.next;
      this.submit(t, t.nexusForQueue);
      t = next;
    }
  }

  /** Wake the LUN worker if this batch pushed anything (one notify per batch); true if it did push. */
  flushDoorbell(): boolean {
    if (!this.pushedSinceRing) return false;
    this.pushedSinceRing = false;
    this.peer.ring();
    return true;
  }

  /** Drain completions; returns how many were handled. */
  drain(): number {
    let n = 0;
    const v = this.cpl.view;
    const b = this.cpl.bytes;
    for (let o = this.cpl.peek(); o >= 0; o = this.cpl.peek()) {
      const tag = v.getUint32(o + Cpl.TAG, true);
      const t = this.pool.byTag(tag);
      if (t !== undefined && t.state === TaskState.SUBMITTED && t.ringTag === tag && t.channel === this) {
        // Aborted at the LU by a task management function (possibly another nexus's
        // LOGICAL UNIT RESET): no status goes to the initiator (SAM-5 7.2, TAS = 0).
        if (v.getUint8(o + Cpl.KIND) === DescKind.COMPLETION_ABORTED) t.aborted = true;
        t.status = v.getUint8(o + Cpl.STATUS);
        const sl = v.getUint16(o + Cpl.SENSE_LENGTH, true);
        t.senseLength = sl;
        if (sl > 0) t.sense.set(b.subarray(o + Cpl.SENSE, o + Cpl.SENSE + sl));
        t.dataInLength = v.getUint32(o + Cpl.DATA_IN_LENGTH, true);
        t.dataOutWanted = v.getUint32(o + Cpl.DATA_OUT_WANTED, true);
        t.grant = v.getInt32(o + Cpl.GRANT, true);
        t.state = TaskState.RESPONDING;
        this.cpl.release();
        this.inflight--;
        n++;
        t.channel = null;
        if (t.owner) t.owner.onTaskComplete(t);
        else this.pool.release(t); // its connection is gone: nothing to answer
      } else {
        // A completion for no task in flight on this ring under that name: a duplicate,
        // or a stale one for an earlier use of the pooled task. Applying it would complete
        // whatever now occupies the object; it is counted, reported and dropped. It
        // answers no descriptor we pushed, so the in-flight count is not touched.
        this.cpl.release();
        n++;
        this.staleCompletions++;
        this.onStale(tag);
      }
    }
    // Completions freed ring slots: move waiting tasks onto the ring.
    while (!this.down && this.waitHead && this.inflight < this.capacity) {
      const t = this.waitHead;
      if (!this.push(t, t.nexusForQueue)) break;
      this.waitHead = t.next;
      if (this.waitHead === null) this.waitTail = null;
      t.next = null;
    }
    return n;
  }

  get pending(): number {
    return this.inflight;
  }
}
