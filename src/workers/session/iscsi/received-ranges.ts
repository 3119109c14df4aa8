/**
 * Which bytes of a write have arrived, when Data-Out PDUs may come in any order
 * (DataPDUInOrder=No and/or DataSequenceInOrder=No, RFC 7143 13.18, 13.19).
 *
 * A sorted list of disjoint, non-adjacent byte ranges [start, end), kept in one
 * Uint32Array of (start, end) pairs: adjacent ranges are merged on insert, so data that
 * arrives in order is always a single range and an out-of-order PDU adds at most one.
 * Inserting finds the place by binary search and shifts the tail (memmove) only when a
 * new gap opens; nothing allocates after construction. The capacity bounds how many
 * separate pieces a write may be in at once: a sender that needs more (a hostile one:
 * every other byte) is refused instead of growing memory.
 *
 *   bounds: | s0 | e0 | s1 | e1 | ... | s(n-1) | e(n-1) |   s0 < e0 < s1 < e1 < ...
 */

/** Result of `add`. */
export const AddResult = {
  OK: 0,
  /** Some byte of the range has already arrived (RFC 7143 11.7.6: no overlays). */
  OVERLAP: 1,
  /** The range would open a new gap and the list is full. */
  FULL: 2,
} as const;

export class ReceivedRanges {
  private bounds: Uint32Array;
  /** Number of ranges. */
  count = 0;

  constructor(capacity: number) {
    this.bounds = new Uint32Array(2 * Math.max(1, capacity));
  }

  get capacity(): number {
    return this.bounds.length >>> 1;
  }

  /** Forget everything; grow to `capacity` ranges first if smaller (allocates only then). */
  reset(capacity: number): void {
    if (capacity > this.capacity) this.bounds = new Uint32Array(2 * capacity);
    this.count = 0;
  }

  /** Total bytes received (sum of the ranges). */
  get bytes(): number {
    let n = 0;
    const b = this.bounds;
    for (let i = 0; i < this.count; i++) n += b[2 * i + 1]! - b[2 * i]!;
    return n;
  }

  /** Index of the first range whose end is >= `at` (it touches or follows `at`). */
  private firstEndingAtOrAfter(at: number): number {
    const b = this.bounds;
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[2 * mid + 1]! < at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Record [start, end) as received. An empty range is always OK and changes nothing. */
  add(start: number, end: number): number {
    if (end <= start) return AddResult.OK;
    const b = this.bounds;
    const n = this.count;
    let i = this.firstEndingAtOrAfter(start);
    // Range i ends at or after `start`: it overlaps unless it ends exactly there.
    const leftAdjacent = i < n && b[2 * i + 1] === start;
    if (i < n && !leftAdjacent && b[2 * i]! < end) return AddResult.OVERLAP;
    const j = leftAdjacent ? i + 1 : i; // first range that lies after `start`
    if (j < n && b[2 * j]! < end) return AddResult.OVERLAP;
    const rightAdjacent = j < n && b[2 * j] === end;
    if (leftAdjacent && rightAdjacent) {
      // Fills the gap between ranges i and j: one range, the list shrinks by one.
      b[2 * i + 1] = b[2 * j + 1]!;
      b.copyWithin(2 * j, 2 * j + 2, 2 * n);
      this.count = n - 1;
    } else if (leftAdjacent) {
      b[2 * i + 1] = end;
    } else if (rightAdjacent) {
      b[2 * j] = start;
    } else {
      if (n === this.capacity) return AddResult.FULL;
      i = j;
      b.copyWithin(2 * i + 2, 2 * i, 2 * n);
      b[2 * i] = start;
      b[2 * i + 1] = end;
      this.count = n + 1;
    }
    return AddResult.OK;
  }

  /** True when every byte of [start, end) has been received. */
  covers(start: number, end: number): boolean {
    if (end <= start) return true;
    const i = this.firstEndingAtOrAfter(start + 1); // first range ending after `start`
    return i < this.count && this.bounds[2 * i]! <= start && this.bounds[2 * i + 1]! >= end;
  }

  /** True when no byte of [start, end) has been received. */
  untouched(start: number, end: number): boolean {
    if (end <= start) return true;
    const i = this.firstEndingAtOrAfter(start + 1);
    return i >= this.count || this.bounds[2 * i]! >= end;
  }

  /** End of the received prefix [0, x): 0 when byte 0 has not arrived. */
  prefixEnd(): number {
    return this.count > 0 && this.bounds[0] === 0 ? this.bounds[1]! : 0;
  }
}
