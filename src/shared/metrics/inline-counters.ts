/**
 * Counters of the READs and WRITEs a session worker served itself from a RAM disk
 * (shared/ring/inline-grants.ts): the LUN worker never sees them, so its counters
 * (lun-counters.ts) would miss them. One buffer per session worker, written by that
 * worker only (plain Float64 increments, as in lun-counters.ts and for the same
 * reasons); the exporter adds them to the unit's own counters, so a unit's commands,
 * bytes and latencies cover both ways a READ or WRITE can go.
 *
 * Layout (Float64): a slot per (LUN worker, unit index below MAX_LU_SLOTS), at
 * (lunWorker * MAX_LU_SLOTS + luIndex) * STRIDE, and in it per direction (read, then
 * write, DIRECTION_STRIDE apart):
 *   +0 COMMANDS   +1 BYTES   +2 LATENCY_SUM_MS   +3 ... histogram (LATENCY_BUCKETS)
 */
import { LATENCY_BUCKETS, latencyBucket } from './latency.ts';
import { MAX_LU_SLOTS, unitKey } from '../unit-slots.ts';

const COMMANDS = 0;
const BYTES = 1;
const LATENCY_SUM_MS = 2;
const HISTOGRAM = 3;
const DIRECTION_STRIDE = HISTOGRAM + LATENCY_BUCKETS;
const STRIDE = 2 * DIRECTION_STRIDE;

/** Which way a inline command moved data. */
export const Direction = { READ: 0, WRITE: 1 } as const;
export type Direction = (typeof Direction)[keyof typeof Direction];

export function inlineCountersBytes(lunWorkers: number): number {
  return Math.max(1, lunWorkers) * MAX_LU_SLOTS * STRIDE * 8;
}

/** The writer: one per session worker, on its thread only. */
export class InlineCounters {
  readonly #f: Float64Array;
  readonly #slots: number;

  constructor(sab: SharedArrayBuffer) {
    this.#f = new Float64Array(sab);
    this.#slots = Math.floor(this.#f.length / STRIDE);
  }

  /** One inline command moving `bytes` bytes that took `ms`. Hot path: four stores, no allocation. */
  count(lunWorker: number, luIndex: number, direction: Direction, bytes: number, ms: number): void {
    const slot = unitKey(lunWorker, luIndex);
    if (luIndex >= MAX_LU_SLOTS || slot >= this.#slots) return;
    const f = this.#f;
    const b = slot * STRIDE + direction * DIRECTION_STRIDE;
    f[b + COMMANDS]!++;
    f[b + BYTES]! += bytes;
    f[b + LATENCY_SUM_MS]! += ms;
    f[b + HISTOGRAM + latencyBucket(ms)]!++;
  }
}

/** One unit's inline commands of one direction, as the exporter adds them. */
export interface InlineSnapshot {
  commands: number;
  bytes: number;
  latencySumMs: number;
  buckets: Float64Array;
}

/** The reader side (the supervisor). */
export class InlineCountersView {
  readonly #f: Float64Array;

  constructor(sab: SharedArrayBuffer) {
    this.#f = new Float64Array(sab);
  }

  unit(lunWorker: number, luIndex: number, direction: Direction): InlineSnapshot | undefined {
    if (luIndex < 0 || luIndex >= MAX_LU_SLOTS) return undefined;
    const b = unitKey(lunWorker, luIndex) * STRIDE + direction * DIRECTION_STRIDE;
    if (b + DIRECTION_STRIDE > this.#f.length) return undefined;
    const f = this.#f;
    return {
      commands: f[b + COMMANDS]!,
      bytes: f[b + BYTES]!,
      latencySumMs: f[b + LATENCY_SUM_MS]!,
      buckets: f.subarray(b + HISTOGRAM, b + DIRECTION_STRIDE),
    };
  }
}
