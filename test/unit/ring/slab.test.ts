import { describe, expect, it } from 'vitest';
import { Slab } from '../../../src/shared/ring/slab.ts';
import { xorshift32 } from './ring-stream.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Tracks live blocks per minBlock granule to check the allocator independently. */
class Shadow {
  readonly live = new Map<number, number>(); // offset -> block size
  readonly owner: Int32Array; // granule -> offset of the live block covering it, or -1
  total = 0;
  readonly slab: Slab;

  constructor(slab: Slab) {
    this.slab = slab;
    this.owner = new Int32Array(slab.size / slab.minBlock).fill(-1);
  }

  alloc(length: number): number {
    const off = this.slab.alloc(length);
    const bs = this.slab.blockSizeFor(length);
    if (off < 0) {
      expect(off).toBe(-1);
      // A buddy allocator merges fully, so -1 means no aligned run of `bs` bytes is free.
      expect(this.freeAlignedRun(bs)).toBe(-1);
      return off;
    }
    expect(bs).toBeGreaterThanOrEqual(Math.max(length, this.slab.minBlock));
    expect(off % bs).toBe(0); // naturally aligned
    expect(off + bs).toBeLessThanOrEqual(this.slab.size);
    const g0 = off / this.slab.minBlock;
    for (let g = g0; g < g0 + bs / this.slab.minBlock; g++) {
      if (this.owner[g] !== -1) throw new Error(`block ${off}+${bs} overlaps live block at ${this.owner[g]}`);
      this.owner[g] = off;
    }
    this.live.set(off, bs);
    this.total += bs;
    expect(this.slab.inUse).toBe(this.total);
    return off;
  }

  free(off: number): void {
    const bs = this.live.get(off);
    if (bs === undefined) throw new Error(`shadow: ${off} not live`);
    this.slab.free(off);
    this.live.delete(off);
    const g0 = off / this.slab.minBlock;
    for (let g = g0; g < g0 + bs / this.slab.minBlock; g++) this.owner[g] = -1;
    this.total -= bs;
    expect(this.slab.inUse).toBe(this.total);
  }

  /** Offset of a completely free, naturally aligned run of `bs` bytes, or -1. */
  freeAlignedRun(bs: number): number {
    const n = bs / this.slab.minBlock;
    for (let g0 = 0; g0 < this.owner.length; g0 += n) {
      let free = true;
      for (let g = g0; g < g0 + n && free; g++) free = this.owner[g] === -1;
      if (free) return g0 * this.slab.minBlock;
    }
    return -1;
  }
}

function shuffle<T>(a: T[], rnd: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rnd() % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe('Slab construction', () => {
  it('uses the given SharedArrayBuffer or makes one of `size` bytes', () => {
    const sab = new SharedArrayBuffer(64 * KiB);
    const s = new Slab(64 * KiB, 4 * KiB, sab);
    expect(s.sab).toBe(sab);
    expect(new Slab(64 * KiB).sab.byteLength).toBe(64 * KiB);
    expect(new Slab(64 * KiB).minBlock).toBe(4096);
    expect(s.maxAlloc).toBe(64 * KiB);
    expect(s.inUse).toBe(0);
  });

  it.each([
    [3 * KiB, KiB],
    [64 * KiB, 3 * KiB],
    [4 * KiB, 8 * KiB],
    [0, 4 * KiB],
    [64 * KiB, 0],
    [2 ** 32, 4 * KiB],
    [-64 * KiB, 4 * KiB],
  ])('rejects size %s / minBlock %s', (size, minBlock) => {
    expect(() => new Slab(size, minBlock, new SharedArrayBuffer(16))).toThrow(RangeError);
  });

  it('accepts a single-block slab (minBlock == size)', () => {
    const s = new Slab(4 * KiB, 4 * KiB);
    expect(s.alloc(1)).toBe(0);
    expect(s.alloc(1)).toBe(-1);
    s.free(0);
    expect(s.alloc(4 * KiB)).toBe(0);
  });
});

describe('Slab sizing', () => {
  const s = new Slab(1 * MiB, 4 * KiB);

  it.each([
    [0, 4 * KiB],
    [1, 4 * KiB],
    [4 * KiB - 1, 4 * KiB],
    [4 * KiB, 4 * KiB],
    [4 * KiB + 1, 8 * KiB],
    [12 * KiB, 16 * KiB],
    [64 * KiB - 1, 64 * KiB],
    [64 * KiB, 64 * KiB],
    [512 * KiB + 1, 1 * MiB],
    [1 * MiB, 1 * MiB],
  ])('blockSizeFor(%s) = %s', (len, bs) => {
    expect(s.blockSizeFor(len)).toBe(bs);
  });

  it('refuses lengths larger than the slab', () => {
    const t = new Slab(1 * MiB, 4 * KiB);
    expect(t.blockSizeFor(1 * MiB + 1)).toBe(-1);
    expect(t.alloc(1 * MiB + 1)).toBe(-1);
    expect(t.alloc(2 * MiB)).toBe(-1);
    expect(t.inUse).toBe(0);
    expect(t.alloc(1 * MiB)).toBe(0); // nothing was taken by the refused requests
  });

  it('accounts inUse in whole blocks', () => {
    const t = new Slab(1 * MiB, 4 * KiB);
    const a = t.alloc(1);
    expect(t.inUse).toBe(4 * KiB);
    const b = t.alloc(5000);
    expect(t.inUse).toBe(12 * KiB);
    expect(b % (8 * KiB)).toBe(0);
    const c = t.alloc(100 * KiB);
    expect(t.inUse).toBe(12 * KiB + 128 * KiB);
    expect(c % (128 * KiB)).toBe(0);
    t.free(b);
    expect(t.inUse).toBe(4 * KiB + 128 * KiB);
    t.free(a);
    t.free(c);
    expect(t.inUse).toBe(0);
  });
});

describe('Slab exhaustion and merging', () => {
  it('hands out every minBlock exactly once, then -1', () => {
    const t = new Slab(256 * KiB, 4 * KiB);
    const offs = new Set<number>();
    for (let i = 0; i < 64; i++) {
      const o = t.alloc(4 * KiB);
      expect(o).toBeGreaterThanOrEqual(0);
      expect(o % (4 * KiB)).toBe(0);
      offs.add(o);
    }
    expect(offs.size).toBe(64);
    expect([...offs].sort((x, y) => x - y)).toEqual(Array.from({ length: 64 }, (_, i) => i * 4 * KiB));
    expect(t.inUse).toBe(256 * KiB);
    expect(t.alloc(1)).toBe(-1);
    expect(t.alloc(0)).toBe(-1);
    expect(t.inUse).toBe(256 * KiB);
  });

  it('merges buddies back so the whole slab can be allocated after freeing everything (random order)', () => {
    const rnd = xorshift32(0xbadc0de);
    for (let trial = 0; trial < 50; trial++) {
      const t = new Slab(256 * KiB, 4 * KiB);
      const offs: number[] = [];
      for (let o = t.alloc(4 * KiB); o >= 0; o = t.alloc(4 * KiB)) offs.push(o);
      expect(offs.length).toBe(64);
      expect(t.alloc(256 * KiB)).toBe(-1);
      for (const o of shuffle(offs, rnd)) t.free(o);
      expect(t.inUse).toBe(0);
      expect(t.alloc(256 * KiB)).toBe(0);
      expect(t.alloc(1)).toBe(-1);
    }
  });

  it('does not merge while a buddy is still allocated', () => {
    const t = new Slab(64 * KiB, 4 * KiB);
    const q = [t.alloc(16 * KiB), t.alloc(16 * KiB), t.alloc(16 * KiB), t.alloc(16 * KiB)];
    expect([...q].sort((x, y) => x - y)).toEqual([0, 16 * KiB, 32 * KiB, 48 * KiB]);
    expect(t.alloc(1)).toBe(-1);
    t.free(q[0]!);
    t.free(q[2]!);
    expect(t.alloc(32 * KiB)).toBe(-1); // two free quarters, but not buddies of each other's pair
    t.free(q[1]!);
    const half = t.alloc(32 * KiB);
    expect(half).toBe(Math.min(q[0]!, q[1]!));
    expect(half % (32 * KiB)).toBe(0);
    expect(t.alloc(16 * KiB)).toBe(q[2]);
    expect(t.alloc(1)).toBe(-1);
  });

  it('throws on double free and on offsets that are not the start of a live block', () => {
    const t = new Slab(64 * KiB, 4 * KiB);
    const a = t.alloc(16 * KiB);
    const b = t.alloc(4 * KiB);
    t.free(a);
    expect(() => t.free(a)).toThrow(/double free|bad offset/);
    expect(() => t.free(b + 8 * KiB)).toThrow(); // never allocated
    expect(() => t.free(b + 1)).toThrow(); // inside a live block's first granule
    expect(() => t.free(64 * KiB)).toThrow(); // past the end
    expect(() => t.free(1 << 30)).toThrow();
    expect(() => t.free(-4 * KiB)).toThrow();
    expect(() => t.free(Number.NaN)).toThrow();
    // None of the rejected calls disturbed the state.
    expect(t.inUse).toBe(4 * KiB);
    t.free(b);
    expect(t.inUse).toBe(0);
    expect(t.alloc(64 * KiB)).toBe(0);
  });

  it.each([
    ['1 MiB / 4 KiB', 1 * MiB, 4 * KiB, 0x1234],
    ['64 KiB / 64 B', 64 * KiB, 64, 0x9876],
  ])(
    'survives seeded random alloc/free sequences (%s) without overlap or leaks',
    (_n, size, minBlock, seed) => {
      const rnd = xorshift32(seed);
      const t = new Slab(size, minBlock);
      const sh = new Shadow(t);
      let failed = 0;
      for (let step = 0; step < 6000; step++) {
        const liveOffs = [...sh.live.keys()];
        if (liveOffs.length > 0 && rnd() % 100 < 45) {
          sh.free(liveOffs[rnd() % liveOffs.length]!);
        } else {
          // Mostly small requests, sometimes up to a quarter / the whole slab.
          const r = rnd() % 100;
          const max = r < 70 ? minBlock * 4 : r < 97 ? size / 4 : size;
          if (sh.alloc(rnd() % (max + 1)) < 0) failed++;
        }
      }
      expect(failed).toBeGreaterThan(0); // the sequence did run into exhaustion
      for (const o of shuffle([...sh.live.keys()], rnd)) sh.free(o);
      expect(t.inUse).toBe(0);
      expect(t.alloc(size)).toBe(0);
    },
  );
});
