/**
 * Per logical unit counters of one LUN worker, in a SharedArrayBuffer the worker writes
 * and the supervisor's exporter reads on scrape (supervisor/metrics/exporter.ts).
 *
 * Layout (Float64 elements; one buffer per LUN worker, allocated by the supervisor):
 *
 *   [0]                reserved (liveness is the supervisor's heartbeat, shared/ring/heartbeat.ts)
 *   [1]  INFLIGHT      commands the worker holds (gauge, published on a timer)
 *   [2]  UNITS         logical units open (gauge)
 *   [3..7]             reserved
 *   [8 + i * LU_STRIDE ...]  the slot of unit index i (supervisor/topology.ts luIndex),
 *                            for i < MAX_LU_SLOTS:
 *        +0  ARRIVED      commands taken off the rings for this unit
 *        +1  COMPLETED    commands completed (ARRIVED - COMPLETED = queue depth)
 *        +2  READS        READ(6/10/12/16) completed
 *        +3  WRITES       WRITE(6/10/12/16) completed
 *        +4  OTHERS       every other command completed
 *        +5  READ_BYTES   bytes read with GOOD status
 *        +6  WRITE_BYTES  bytes written with GOOD status
 *        +7  CHECK_CONDITION, +8 TASK_SET_FULL, +9 BUSY, +10 RESERVATION_CONFLICT,
 *        +11 ABORTED (ended by task management without status)
 *        +12..14  latency sums in ms: read, write, other
 *        +15 ...  three histograms (read, write, other) of LATENCY_BUCKETS counts each,
 *                 not cumulative (the exporter sums them into Prometheus `le` buckets)
 *
 * Why Float64 and plain increments: every slot has exactly one writer (the LUN worker
 * owning the unit), so no read-modify-write can race and Atomics would buy nothing but
 * cost. A double counts exactly up to 2^53 (8 PiB of bytes), and a JIT-compiled `f[i]++`
 * on a Float64Array allocates nothing. The reader may see a value one event old, which
 * a scrape tolerates. ECMAScript allows 8-byte non-atomic accesses to tear; the 64-bit
 * hosts Node 26 runs on do aligned 8-byte loads and stores in one instruction, and a torn
 * read could only misreport one scrape, never corrupt the counter.
 *
 * Unit indexes are never reused while spindle runs, so a slot always belongs to one
 * device; a unit index beyond MAX_LU_SLOTS (more than 1024 devices added to one worker
 * over a run) is simply not counted.
 */
import { LATENCY_BUCKETS, latencyBucket } from './latency.ts';
import { MAX_LU_SLOTS } from '../unit-slots.ts';
import { Direction, type InlineCountersView } from './inline-counters.ts';

export const LunWorkerField = { INFLIGHT: 1, UNITS: 2 } as const;

/** Offsets inside one unit's slot. */
export const LuField = {
  ARRIVED: 0,
  COMPLETED: 1,
  READS: 2,
  WRITES: 3,
  OTHERS: 4,
  READ_BYTES: 5,
  WRITE_BYTES: 6,
  CHECK_CONDITION: 7,
  TASK_SET_FULL: 8,
  BUSY: 9,
  RESERVATION_CONFLICT: 10,
  ABORTED: 11,
  /** + OpClass: latency sum in milliseconds. */
  LATENCY_SUM_MS: 12,
  /** + OpClass * LATENCY_BUCKETS + bucket. */
  HISTOGRAM: 15,
} as const;

/** Which histogram a command is counted in. */
export const OpClass = { READ: 0, WRITE: 1, OTHER: 2 } as const;
export const OP_CLASS_NAMES = ['read', 'write', 'other'] as const;

export const LUN_HEADER = 8;
export const LU_STRIDE = LuField.HISTOGRAM + 3 * LATENCY_BUCKETS;

/** Bytes of one LUN worker's counter buffer. */
export const LUN_COUNTERS_BYTES = (LUN_HEADER + MAX_LU_SLOTS * LU_STRIDE) * 8;

/** Opcode -> OpClass (SBC-4 5.15-5.18 READ, 5.40-5.43 WRITE); everything else OTHER. */
const OP_CLASS = new Uint8Array(256).fill(OpClass.OTHER);
for (const op of [0x08, 0x28, 0xa8, 0x88]) OP_CLASS[op] = OpClass.READ;
for (const op of [0x0a, 0x2a, 0xaa, 0x8a]) OP_CLASS[op] = OpClass.WRITE;

/** SAM-5 5.3 status codes counted on their own. */
const CHECK_CONDITION = 0x02;
const BUSY = 0x08;
const RESERVATION_CONFLICT = 0x18;
const TASK_SET_FULL = 0x28;

/**
 * What the counters read from a command (the LUN worker's pooled task has these fields;
 * shared/ cannot name the worker's class).
 */
export interface CountedCommand {
  readonly cdb: Uint8Array;
  readonly status: number;
  readonly dataInLength: number;
  readonly dataOutWanted: number;
  readonly expectedLength: number;
  readonly dataOutLength: number;
  readonly aborted: boolean;
  /** Unit index the command was counted against at arrival (-1: none). */
  metricLu: number;
  /** performance.now() at arrival. */
  startMs: number;
}

/** The writer side: one per LUN worker, on that worker's thread only. */
export class LunCounters {
  readonly sab: SharedArrayBuffer;
  readonly #f: Float64Array;

  /** `sab` from the supervisor; without one (tests, tools) the counters are private. */
  constructor(sab?: SharedArrayBuffer) {
    this.sab = sab ?? new SharedArrayBuffer(LUN_COUNTERS_BYTES);
    this.#f = new Float64Array(this.sab);
  }

  /** A command for unit `luIndex` came off a ring. Hot path: three stores. */
  arrive(cmd: CountedCommand, luIndex: number, nowMs: number): void {
    cmd.startMs = nowMs;
    if (luIndex >= MAX_LU_SLOTS) {
      cmd.metricLu = -1;
      return;
    }
    cmd.metricLu = luIndex;
    this.#f[LUN_HEADER + luIndex * LU_STRIDE + LuField.ARRIVED]!++;
  }

  /**
   * The command's completion is on the ring: count it, its bytes, its status and its
   * latency. Hot path: a handful of increments and one bucket scan, no allocation.
   */
  complete(cmd: CountedCommand, nowMs: number): void {
    const lu = cmd.metricLu;
    if (lu < 0) return;
    cmd.metricLu = -1;
    const f = this.#f;
    const base = LUN_HEADER + lu * LU_STRIDE;
    f[base + LuField.COMPLETED]!++;
    const cls = OP_CLASS[cmd.cdb[0]!]!;
    const status = cmd.status;
    if (cmd.aborted) f[base + LuField.ABORTED]!++;
    else if (status === CHECK_CONDITION) f[base + LuField.CHECK_CONDITION]!++;
    else if (status === TASK_SET_FULL) f[base + LuField.TASK_SET_FULL]!++;
    else if (status === BUSY) f[base + LuField.BUSY]!++;
    else if (status === RESERVATION_CONFLICT) f[base + LuField.RESERVATION_CONFLICT]!++;
    if (cls === OpClass.READ) {
      f[base + LuField.READS]!++;
      if (status === 0 && !cmd.aborted) f[base + LuField.READ_BYTES]! += Math.min(cmd.dataInLength, cmd.expectedLength);
    } else if (cls === OpClass.WRITE) {
      f[base + LuField.WRITES]!++;
      if (status === 0 && !cmd.aborted) f[base + LuField.WRITE_BYTES]! += Math.min(cmd.dataOutWanted, cmd.dataOutLength);
    } else {
      f[base + LuField.OTHERS]!++;
    }
    const ms = nowMs - cmd.startMs;
    f[base + LuField.LATENCY_SUM_MS + cls]! += ms;
    f[base + LuField.HISTOGRAM + cls * LATENCY_BUCKETS + latencyBucket(ms)]!++;
  }

  /** Gauges (a timer, off the command path). */
  publish(inflight: number, units: number): void {
    const f = this.#f;
    f[LunWorkerField.INFLIGHT] = inflight;
    f[LunWorkerField.UNITS] = units;
  }
}

/** One unit's counters as the exporter reads them. */
export interface LuSnapshot {
  arrived: number;
  completed: number;
  reads: number;
  /** Of `reads`, those a session worker served itself (inline-counters.ts). */
  inlineReads: number;
  /** Of `writes`, those a session worker served itself. */
  inlineWrites: number;
  writes: number;
  others: number;
  readBytes: number;
  writeBytes: number;
  checkCondition: number;
  taskSetFull: number;
  busy: number;
  reservationConflict: number;
  aborted: number;
  /** Per OpClass: latency sum (seconds) and bucket counts (not cumulative). */
  latency: { sumS: number; buckets: number[] }[];
}

/** The reader side (the supervisor's exporter and admin API). */
export class LunCountersView {
  readonly #f: Float64Array;
  /** The session workers' inline reads and writes of this LUN worker's units (inline-counters.ts). */
  readonly #inline: readonly InlineCountersView[];
  readonly #lunWorker: number;

  constructor(sab: SharedArrayBuffer, inline: readonly InlineCountersView[] = [], lunWorker = 0) {
    this.#f = new Float64Array(sab);
    this.#inline = inline;
    this.#lunWorker = lunWorker;
  }

  get inflight(): number {
    return this.#f[LunWorkerField.INFLIGHT]!;
  }

  get units(): number {
    return this.#f[LunWorkerField.UNITS]!;
  }

  lu(luIndex: number): LuSnapshot | undefined {
    if (!Number.isInteger(luIndex) || luIndex < 0 || luIndex >= MAX_LU_SLOTS) return undefined;
    const f = this.#f;
    const b = LUN_HEADER + luIndex * LU_STRIDE;
    const latency = [OpClass.READ, OpClass.WRITE, OpClass.OTHER].map((cls) => {
      const h = b + LuField.HISTOGRAM + cls * LATENCY_BUCKETS;
      return { sumS: f[b + LuField.LATENCY_SUM_MS + cls]! / 1000, buckets: Array.from(f.subarray(h, h + LATENCY_BUCKETS)) };
    });
    const snap: LuSnapshot = {
      arrived: f[b + LuField.ARRIVED]!,
      completed: f[b + LuField.COMPLETED]!,
      reads: f[b + LuField.READS]!,
      inlineReads: 0,
      inlineWrites: 0,
      writes: f[b + LuField.WRITES]!,
      others: f[b + LuField.OTHERS]!,
      readBytes: f[b + LuField.READ_BYTES]!,
      writeBytes: f[b + LuField.WRITE_BYTES]!,
      checkCondition: f[b + LuField.CHECK_CONDITION]!,
      taskSetFull: f[b + LuField.TASK_SET_FULL]!,
      busy: f[b + LuField.BUSY]!,
      reservationConflict: f[b + LuField.RESERVATION_CONFLICT]!,
      aborted: f[b + LuField.ABORTED]!,
      latency,
    };
    // READs and WRITEs the session workers served themselves are the unit's commands too.
    for (const v of this.#inline) {
      for (const dir of [Direction.READ, Direction.WRITE]) {
        const d = v.unit(this.#lunWorker, luIndex, dir);
        if (d === undefined || d.commands === 0) continue;
        snap.arrived += d.commands;
        snap.completed += d.commands;
        if (dir === Direction.READ) {
          snap.reads += d.commands;
          snap.inlineReads += d.commands;
          snap.readBytes += d.bytes;
        } else {
          snap.writes += d.commands;
          snap.inlineWrites += d.commands;
          snap.writeBytes += d.bytes;
        }
        const h = latency[dir === Direction.READ ? OpClass.READ : OpClass.WRITE]!;
        h.sumS += d.latencySumMs / 1000;
        for (let i = 0; i < LATENCY_BUCKETS; i++) h.buckets[i]! += d.buckets[i]!;
      }
    }
    return snap;
  }
}
