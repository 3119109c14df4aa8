/**
 * Counters of the READs a session worker answered itself (direct reads, shared/ring/
 * direct-grants.ts): the LUN worker never sees them, so its counters (lun-counters.ts)
 * would miss them. One buffer per session worker, written by that worker only (plain
 * Float64 increments, as in lun-counters.ts and for the same reasons); the exporter adds
 * them to the unit's own counters, so a unit's reads, bytes and read latency cover both
 * ways a READ can go.
 *
 * Layout (Float64): a slot per (LUN worker, unit index below MAX_LU_SLOTS), at
 * (lunWorker * MAX_LU_SLOTS + luIndex) * STRIDE:
 *   +0 READS   +1 READ_BYTES   +2 LATENCY_SUM_MS   +3 ... histogram (LATENCY_BUCKETS)
 */
import { LATENCY_BUCKETS, latencyBucket } from './latency.ts';
import { MAX_LU_SLOTS } from '../ring/direct-grants.ts';

const READS = 0;
const READ_BYTES = 1;
const LATENCY_SUM_MS = 2;
const HISTOGRAM = 3;
const STRIDE = HISTOGRAM + LATENCY_BUCKETS;

export function directReadCountersBytes(lunWorkers: number): number {
  return Math.max(1, lunWorkers) * MAX_LU_SLOTS * STRIDE * 8;
}

/** The writer: one per session worker, on its thread only. */
export class DirectReadCounters {
  readonly #f: Float64Array;
  readonly #slots: number;

  constructor(sab: SharedArrayBuffer) {
    this.#f = new Float64Array(sab);
    this.#slots = Math.floor(this.#f.length / STRIDE);
  }

  /** One direct read of `bytes` bytes that took `ms`. Hot path: four stores, no allocation. */
  count(lunWorker: number, luIndex: number, bytes: number, ms: number): void {
    const slot = lunWorker * MAX_LU_SLOTS + luIndex;
    if (luIndex >= MAX_LU_SLOTS || slot >= this.#slots) return;
    const f = this.#f;
    const b = slot * STRIDE;
    f[b + READS]!++;
    f[b + READ_BYTES]! += bytes;
    f[b + LATENCY_SUM_MS]! += ms;
    f[b + HISTOGRAM + latencyBucket(ms)]!++;
  }
}

/** One unit's direct reads as the exporter adds them. */
export interface DirectReadSnapshot {
  reads: number;
  readBytes: number;
  latencySumMs: number;
  buckets: Float64Array;
}

/** The reader side (the supervisor). */
export class DirectReadCountersView {
  readonly #f: Float64Array;

  constructor(sab: SharedArrayBuffer) {
    this.#f = new Float64Array(sab);
  }

  unit(lunWorker: number, luIndex: number): DirectReadSnapshot | undefined {
    if (luIndex < 0 || luIndex >= MAX_LU_SLOTS) return undefined;
    const b = (lunWorker * MAX_LU_SLOTS + luIndex) * STRIDE;
    if (b + STRIDE > this.#f.length) return undefined;
    const f = this.#f;
    return { reads: f[b + READS]!, readBytes: f[b + READ_BYTES]!, latencySumMs: f[b + LATENCY_SUM_MS]!, buckets: f.subarray(b + HISTOGRAM, b + STRIDE) };
  }
}
