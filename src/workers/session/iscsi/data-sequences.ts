/**
 * Per-task bookkeeping for writes whose Data-Out PDUs may arrive out of order
 * (DataPDUInOrder=No and/or DataSequenceInOrder=No, RFC 7143 13.18, 13.19): the bytes
 * received so far (ReceivedRanges) and the data sequences still open.
 *
 * A data sequence (RFC 7143 13.19) is the unsolicited burst (slot 0) or the Data-Out
 * PDUs answering one R2T (slots 1..). Each open sequence keeps its offset range, where
 * its next PDU must start when PDUs are in order, and what it has seen of DataSN: the
 * PDU count, the highest DataSN and their sum, so a sequence whose PDUs came in any
 * order can be checked when its last PDU (F bit) arrives: n PDUs numbered 0..n-1 have
 * highest DataSN n-1 and sum n(n-1)/2 (RFC 7143 11.7.5).
 *
 * One tracker belongs to one pooled Task object, created the first time that task
 * carries such a write and reused by every later command on it (growing only when a
 * session needs more room): nothing is allocated per command.
 */
import { ReceivedRanges } from './received-ranges.ts';

/** Most R2Ts a task keeps outstanding when data may come out of order (13.17 is an upper bound). */
export const MAX_OPEN_R2T = 16;
/** Bounds for the number of separate received pieces one write may be in at once. */
export const MIN_RANGES = 64;
export const MAX_RANGES = 1024;

/** Slot of the unsolicited sequence. */
export const UNSOLICITED = 0;

export class DataSequences {
  readonly ranges: ReceivedRanges;
  /** Slot in use (1) or free (0); slot 0 is the unsolicited burst. */
  private readonly used = new Uint8Array(MAX_OPEN_R2T + 1);
  readonly start = new Uint32Array(MAX_OPEN_R2T + 1);
  readonly end = new Uint32Array(MAX_OPEN_R2T + 1);
  /** Next offset when PDUs are in order within the sequence (DataPDUInOrder=Yes). */
  readonly next = new Uint32Array(MAX_OPEN_R2T + 1);
  readonly pdus = new Uint32Array(MAX_OPEN_R2T + 1);
  readonly maxDataSN = new Uint32Array(MAX_OPEN_R2T + 1);
  readonly sumDataSN = new Float64Array(MAX_OPEN_R2T + 1);
  /** Open solicited sequences (outstanding R2Ts). */
  openR2T = 0;

  constructor(rangeCapacity: number) {
    this.ranges = new ReceivedRanges(rangeCapacity);
  }

  /** A new write: nothing received, nothing open. */
  reset(rangeCapacity: number): void {
    this.ranges.reset(rangeCapacity);
    this.clear();
  }

  /** Nothing open (the task object is being reused): no Data-Out can match a stale sequence. */
  clear(): void {
    this.ranges.count = 0;
    this.used.fill(0);
    this.openR2T = 0;
  }

  /** Open sequence `slot` over [start, end). */
  open(slot: number, start: number, end: number): void {
    this.used[slot] = 1;
    this.start[slot] = start;
    this.end[slot] = end;
    this.next[slot] = start;
    this.pdus[slot] = 0;
    this.maxDataSN[slot] = 0;
    this.sumDataSN[slot] = 0;
    if (slot !== UNSOLICITED) this.openR2T++;
  }

  /** Open a new R2T sequence in a free slot; its slot number (there is always one: see MAX_OPEN_R2T). */
  openR2TSequence(start: number, end: number): number {
    for (let i = 1; i <= MAX_OPEN_R2T; i++) {
      if (this.used[i] === 0) {
        this.open(i, start, end);
        return i;
      }
    }
    throw new Error('no free R2T sequence slot'); // callers keep openR2T below MAX_OPEN_R2T
  }

  close(slot: number): void {
    if (this.used[slot] === 0) return;
    this.used[slot] = 0;
    if (slot !== UNSOLICITED) this.openR2T--;
  }

  isOpen(slot: number): boolean {
    return this.used[slot] === 1;
  }

  /** The open R2T sequence whose range holds `offset`, or -1. */
  solicitedAt(offset: number): number {
    for (let i = 1; i <= MAX_OPEN_R2T; i++) {
      if (this.used[i] === 1 && offset >= this.start[i]! && offset < this.end[i]!) return i;
    }
    return -1;
  }

  /** True when no open R2T sequence starts below `slot`'s (it is the oldest one). */
  oldestR2T(slot: number): boolean {
    const s = this.start[slot]!;
    for (let i = 1; i <= MAX_OPEN_R2T; i++) if (this.used[i] === 1 && this.start[i]! < s) return false;
    return true;
  }

  /** Count one Data-Out PDU of `slot` with this DataSN. */
  countPdu(slot: number, dataSN: number): void {
    this.pdus[slot]!++;
    if (dataSN > this.maxDataSN[slot]!) this.maxDataSN[slot] = dataSN;
    this.sumDataSN[slot]! += dataSN;
  }

  /** The PDUs counted for `slot` were numbered 0..n-1 (in any order) as far as count, maximum and sum tell. */
  dataSNsConsistent(slot: number): boolean {
    const n = this.pdus[slot]!;
    return n > 0 && this.maxDataSN[slot] === n - 1 && this.sumDataSN[slot] === (n * (n - 1)) / 2;
  }
}
