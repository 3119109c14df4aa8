/**
 * ReceivedRanges (out-of-order Data-Out bookkeeping) against a byte-per-byte reference,
 * and the DataSN consistency check of DataSequences.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AddResult, ReceivedRanges } from '../../../src/workers/session/iscsi/received-ranges.ts';
import {
  DataSequences,
  MAX_OPEN_R2T,
  UNSOLICITED,
} from '../../../src/workers/session/iscsi/data-sequences.ts';

/** The ranges as [start, end) pairs, read through the public queries. */
function runsOf(r: ReceivedRanges, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = 0;
  while (at < size) {
    if (r.untouched(at, at + 1)) {
      at++;
      continue;
    }
    let end = at + 1;
    while (end < size && r.covers(at, end + 1)) end++;
    out.push([at, end]);
    at = end;
  }
  return out;
}

describe('ReceivedRanges', () => {
  it('merges adjacent ranges: in-order data is always one range', () => {
    const r = new ReceivedRanges(4);
    for (let i = 0; i < 100; i++) expect(r.add(i * 10, i * 10 + 10)).toBe(AddResult.OK);
    expect(r.count).toBe(1);
    expect(r.prefixEnd()).toBe(1000);
    expect(r.bytes).toBe(1000);
  });

  it('fills a gap from the left, the right and both sides', () => {
    const r = new ReceivedRanges(4);
    expect(r.add(0, 10)).toBe(AddResult.OK);
    expect(r.add(30, 40)).toBe(AddResult.OK);
    expect(r.count).toBe(2);
    expect(r.add(10, 15)).toBe(AddResult.OK); // left-adjacent
    expect(r.add(25, 30)).toBe(AddResult.OK); // right-adjacent
    expect(r.count).toBe(2);
    expect(r.prefixEnd()).toBe(15);
    expect(r.add(15, 25)).toBe(AddResult.OK); // both: the two ranges become one
    expect(r.count).toBe(1);
    expect(r.covers(0, 40)).toBe(true);
    expect(r.covers(0, 41)).toBe(false);
  });

  it.each([
    ['the same range again', 10, 20],
    ['inside a range', 12, 18],
    ['straddling its start', 5, 11],
    ['straddling its end', 19, 25],
    ['covering it', 5, 25],
    ['reaching into the next range', 20, 31],
    ['covering a gap and both neighbours', 15, 35],
  ])('refuses an overlay: %s', (_what, s, e) => {
    const r = new ReceivedRanges(4);
    r.add(10, 20);
    r.add(30, 40);
    expect(r.add(s, e)).toBe(AddResult.OVERLAP);
    expect(runsOf(r, 50)).toEqual([
      [10, 20],
      [30, 40],
    ]);
  });

  it('an empty range is always accepted and changes nothing', () => {
    const r = new ReceivedRanges(1);
    r.add(0, 8);
    expect(r.add(4, 4)).toBe(AddResult.OK);
    expect(r.add(8, 8)).toBe(AddResult.OK);
    expect(r.count).toBe(1);
  });

  it('is bounded: a new separate piece beyond capacity is refused, merging ones still fit', () => {
    const r = new ReceivedRanges(3);
    expect(r.add(0, 1)).toBe(AddResult.OK);
    expect(r.add(2, 3)).toBe(AddResult.OK);
    expect(r.add(4, 5)).toBe(AddResult.OK);
    expect(r.add(6, 7)).toBe(AddResult.FULL);
    expect(r.add(5, 6)).toBe(AddResult.OK); // extends [4,5)
    expect(r.add(1, 2)).toBe(AddResult.OK); // joins [0,1) and [2,3)
    expect(r.count).toBe(2);
    expect(r.add(8, 9)).toBe(AddResult.OK);
    expect(runsOf(r, 10)).toEqual([
      [0, 3],
      [4, 6],
      [8, 9],
    ]);
  });

  it('reset forgets everything and grows only when asked for more', () => {
    const r = new ReceivedRanges(2);
    r.add(0, 4);
    r.add(6, 8);
    r.reset(2);
    expect(r.count).toBe(0);
    expect(r.capacity).toBe(2);
    expect(r.untouched(0, 8)).toBe(true);
    r.reset(5);
    expect(r.capacity).toBe(5);
  });

  it('matches a byte map for random PDU orders, sizes and overlays', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 40 })), { minLength: 1, maxLength: 80 }),
        fc.integer({ min: 1, max: 12 }),
        (size, adds, capacity) => {
          const r = new ReceivedRanges(capacity);
          const ref = new Uint8Array(size);
          for (const [a, len] of adds) {
            const s = a % size;
            const e = Math.min(size, s + len);
            let overlap = false;
            for (let i = s; i < e; i++) if (ref[i]) overlap = true;
            const before = runsOf(r, size);
            const got = r.add(s, e);
            if (overlap) {
              expect(got).toBe(AddResult.OVERLAP);
            } else if (got === AddResult.FULL) {
              // Only when the piece touches nothing and the list is full.
              expect(r.count).toBe(capacity);
              expect(s > 0 && ref[s - 1] === 1).toBe(false);
              expect(e < size && ref[e] === 1).toBe(false);
            } else {
              expect(got).toBe(AddResult.OK);
              for (let i = s; i < e; i++) ref[i] = 1;
            }
            if (got !== AddResult.OK) expect(runsOf(r, size)).toEqual(before);
            let bytes = 0;
            let runs = 0;
            for (let i = 0; i < size; i++) {
              bytes += ref[i]!;
              if (ref[i] && (i === 0 || !ref[i - 1])) runs++;
            }
            expect(r.bytes).toBe(bytes);
            expect(r.count).toBe(runs);
            let prefix = 0;
            while (prefix < size && ref[prefix]) prefix++;
            expect(r.prefixEnd()).toBe(prefix);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('every permutation of n equal PDUs fits in ceil(n/2) ranges', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 64 })
          .chain((n) => fc.shuffledSubarray([...Array(n).keys()], { minLength: n })),
        (order) => {
          const n = order.length;
          const r = new ReceivedRanges(Math.ceil(n / 2));
          for (const i of order) expect(r.add(i * 512, i * 512 + 512)).toBe(AddResult.OK);
          expect(r.count).toBe(1);
          expect(r.covers(0, n * 512)).toBe(true);
        },
      ),
    );
  });
});

describe('DataSequences', () => {
  it('DataSN consistency: 0..n-1 in any order passes, gaps, shifts and repeats of a count fail', () => {
    const d = new DataSequences(8);
    const check = (sns: number[]): boolean => {
      d.reset(8);
      d.open(UNSOLICITED, 0, 1 << 20);
      for (const sn of sns) d.countPdu(UNSOLICITED, sn);
      return d.dataSNsConsistent(UNSOLICITED);
    };
    expect(check([0])).toBe(true);
    expect(check([2, 0, 3, 1])).toBe(true);
    expect(check([1])).toBe(false); // starts at 1
    expect(check([0, 0])).toBe(false); // repeat
    expect(check([0, 27])).toBe(false); // gap
    expect(check([0xffffffff])).toBe(false); // -1
    expect(check([1, 2, 3])).toBe(false); // shifted by one
    expect(check([])).toBe(false);
  });

  it('R2T sequences: found by offset, oldest first, slots reused after close', () => {
    const d = new DataSequences(8);
    const slots: number[] = [];
    for (let i = 0; i < MAX_OPEN_R2T; i++) slots.push(d.openR2TSequence(i * 100, i * 100 + 100));
    expect(d.openR2T).toBe(MAX_OPEN_R2T);
    expect(() => d.openR2TSequence(5000, 5100)).toThrow();
    expect(d.solicitedAt(250)).toBe(slots[2]);
    expect(d.solicitedAt(100 * MAX_OPEN_R2T)).toBe(-1);
    expect(d.oldestR2T(slots[0]!)).toBe(true);
    expect(d.oldestR2T(slots[1]!)).toBe(false);
    d.close(slots[0]!);
    d.close(slots[0]!); // twice: counted once
    expect(d.openR2T).toBe(MAX_OPEN_R2T - 1);
    expect(d.oldestR2T(slots[1]!)).toBe(true);
    expect(d.solicitedAt(50)).toBe(-1);
    expect(d.openR2TSequence(9000, 9100)).toBe(slots[0]);
  });
});
