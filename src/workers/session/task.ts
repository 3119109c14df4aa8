/**
 * A SCSI task as the session worker tracks it, from SCSI Command PDU to SCSI Response.
 * Objects are pooled and reset in place; `tag` (the pool index) names the task on the
 * rings and, with a generation, in Target Transfer Tags.
 */
import type { Slab } from '../../shared/ring/slab.ts';
import type { DataSequences } from './iscsi/data-sequences.ts';

export const TaskState = {
  FREE: 0,
  /** Waiting for solicited/unsolicited Data-Out. */
  RECEIVING: 1,
  /** Waiting for a free ring slot towards its LUN worker. */
  QUEUED: 2,
  /** On the ring or executing in the LUN worker. */
  SUBMITTED: 3,
  /** Response PDUs handed to the socket; freed when they are flushed. */
  RESPONDING: 4,
} as const;

/** Owner of a task's connection-level callbacks (the iSCSI connection). */
export interface TaskOwner {
  onTaskComplete(task: Task): void;
}

export class Task {
  readonly tag: number;
  private readonly pool: TaskPool;
  state: number = TaskState.FREE;
  /** Descriptor kind pushed for this task (DescKind): a SCSI command or a control item. */
  kind = 1;
  /** Bumped at every reuse; part of the TTT so stale Data-Outs never match. */
  generation = 0;
  owner: TaskOwner | null = null;
  itt = 0;
  cmdSN = 0;
  immediate = false;
  readonly lunField = new Uint8Array(8);
  lun = 0;
  lunWorker = 0;
  luIndex = 0;
  readonly cdb = Buffer.alloc(32);
  cdbLength = 0;
  attribute = 0;
  read = false;
  write = false;
  edtl = 0;
  // Data buffer in the session worker's slab (-1: none).
  slabOffset = -1;
  data: Buffer = EMPTY;
  // Data-Out progress (RFC 7143 10.7 / 11.8)
  received = 0;
  /** Bytes of unsolicited data (immediate + Data-Out TTT=0xffffffff) the initiator may send. */
  unsolicitedLimit = 0;
  /** Next buffer offset to solicit with an R2T. */
  nextR2TOffset = 0;
  r2tSN = 0;
  outstandingR2T = 0;
  /** First offset solicited by R2T; bursts are MaxBurstLength long from here. */
  r2tBase = 0;
  /** Still receiving the unsolicited burst (Data-Out with TTT 0xffffffff). */
  unsolicitedOpen = false;
  expectedDataSN = 0;
  /**
   * Received ranges and open data sequences when Data-Out may come out of order
   * (DataPDUInOrder=No or DataSequenceInOrder=No): created on first use, then kept with
   * this pooled task and reset by every write that uses it.
   */
  sequences: DataSequences | null = null;
  /** Data complete but held until every lower CmdSN has arrived (RFC 7143 3.2.2.1). */
  held = false;
  /** Slab bytes this write holds while its data is still due (session cap, data-out.ts). */
  pendingBytes = 0;
  /** When its last Data-Out arrived, or it began waiting for data (ms, Data-Out timeout). */
  lastDataMs = 0;
  // Completion
  status = 0;
  senseLength = 0;
  readonly sense = Buffer.alloc(80);
  dataInLength = 0;
  dataOutWanted = 0;
  /** A READ's or WRITE's inline I/O grant from the LUN worker's completion (0: none; inline-io.ts). */
  grant = 0;
  aborted = false;
  /** The task management function waiting for this task to end, if any. */
  tmf: { waiting: number; settle(): void } | null = null;
  /** Next task in an intrusive queue (ring backpressure). */
  next: Task | null = null;
  /** I_T nexus remembered while the task waits for a ring slot. */
  nexusForQueue = 0;
  /** The channel the task was pushed on (its completion must come back on that ring). */
  channel: object | null = null;

  constructor(tag: number, pool: TaskPool) {
    this.tag = tag;
    this.pool = pool;
  }

  /** Called by the PDU writer once the PDU carrying this task's last bytes is flushed. */
  releaseAfterFlush(): void {
    this.pool.release(this);
  }

  get ttt(): number {
    return ((this.generation & 0x7fff) << 16) | this.tag;
  }

  /**
   * The task's name on the rings: pool index and generation, like the TTT. A completion
   * whose tag does not match a task submitted under this very name (a stale one for an
   * earlier use of the object, or a duplicate) is refused (lun-channel.ts).
   */
  get ringTag(): number {
    return this.ttt;
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Pool of tasks plus the slab they draw data buffers from. Grows on demand up to
 * `maxTasks`; never shrinks (the steady state allocates nothing).
 */
export class TaskPool {
  private readonly tasks: Task[] = [];
  private readonly free: Task[] = [];
  readonly slab: Slab;
  private readonly maxTasks: number;
  /** Cached Buffer views of slab blocks, keyed by offset, replaced when the length differs. */
  private readonly viewCache: (Buffer | undefined)[];
  private readonly slabBuf: Buffer;

  constructor(slab: Slab, maxTasks = 65536) {
    this.slab = slab;
    this.maxTasks = maxTasks;
    this.slabBuf = Buffer.from(slab.sab);
    this.viewCache = new Array(slab.size / slab.minBlock);
  }

  get inUse(): number {
    return this.tasks.length - this.free.length;
  }

  /** Call `fn` for every task in use (not on the I/O path: worker recovery, stats). */
  forEachInUse(fn: (t: Task) => void): void {
    for (const t of this.tasks) if (t.state !== TaskState.FREE) fn(t);
  }

  /** The task a ring tag names (its index part); the caller checks the generation. */
  byTag(tag: number): Task | undefined {
    return this.tasks[tag & 0xffff];
  }

  /** A fresh task, or null when the pool is at its limit. */
  acquire(): Task | null {
    let t = this.free.pop();
    if (!t) {
      if (this.tasks.length >= this.maxTasks) return null;
      t = new Task(this.tasks.length, this); // pool growth: allocates once per new high-water mark
      this.tasks.push(t);
    }
    t.generation = (t.generation + 1) & 0x7fff;
    t.state = TaskState.RECEIVING;
    t.kind = 1;
    t.owner = null;
    t.slabOffset = -1;
    t.data = EMPTY;
    t.received = 0;
    t.unsolicitedLimit = 0;
    t.nextR2TOffset = 0;
    t.r2tSN = 0;
    t.outstandingR2T = 0;
    t.r2tBase = 0;
    t.unsolicitedOpen = false;
    t.expectedDataSN = 0;
    if (t.sequences !== null) t.sequences.clear();
    t.held = false;
    t.pendingBytes = 0;
    t.status = 0;
    t.senseLength = 0;
    t.dataInLength = 0;
    t.dataOutWanted = 0;
    t.aborted = false;
    t.tmf = null;
    t.immediate = false;
    t.next = null;
    t.channel = null;
    return t;
  }

  /**
   * Give the task a data buffer of `length` bytes from the slab. False when the slab
   * has no block free right now.
   */
  attachBuffer(t: Task, length: number): boolean {
    if (length === 0) return true;
    const off = this.slab.alloc(length);
    if (off < 0) return false;
    t.slabOffset = off;
    const granule = off / this.slab.minBlock;
    let v = this.viewCache[granule];
    if (v === undefined || v.length !== length) {
      // A view per (block, length): repeated I/O sizes reuse it, so steady state allocates nothing.
      v = this.slabBuf.subarray(off, off + length);
      this.viewCache[granule] = v;
    }
    t.data = v;
    return true;
  }

  release(t: Task): void {
    if (t.state === TaskState.FREE) return;
    if (t.slabOffset >= 0) {
      this.slab.free(t.slabOffset);
      t.slabOffset = -1;
    }
    t.data = EMPTY;
    t.owner = null;
    t.state = TaskState.FREE;
    this.free.push(t);
  }
}
