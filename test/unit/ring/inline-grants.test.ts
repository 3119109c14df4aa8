/**
 * The inline grant table (shared/ring/inline-grants.ts): a grant holds until the
 * epoch moves; a reader inside its copy holds up invalidate(); geometry round-trips.
 */
import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { InlineGrants, MAX_SESSION_WORKERS } from '../../../src/shared/ring/inline-grants.ts';
import { MAX_LU_SLOTS } from '../../../src/shared/unit-slots.ts';

describe('InlineGrants', () => {
  it('grants nothing before the first invalidation, then exactly the current epoch', () => {
    const g = new InlineGrants();
    expect(g.epoch(3)).toBe(0);
    g.invalidate(3);
    const e = g.epoch(3);
    expect(e).not.toBe(0);
    expect(g.begin(3, e, 0)).toBe(true);
    g.end(3, 0);
    g.invalidate(3);
    expect(g.begin(3, e, 0), 'a grant of the previous epoch').toBe(false);
    expect(g.begin(3, g.epoch(3), 1)).toBe(true);
    g.end(3, 1);
    // Other units are untouched.
    expect(g.epoch(4)).toBe(0);
  });

  it('never hands out 0 when the epoch wraps', () => {
    const g = new InlineGrants();
    new Int32Array(g.sab)[5 * (8 + MAX_SESSION_WORKERS)] = -1;
    g.invalidate(5);
    expect(g.epoch(5)).toBe(1);
  });

  it('units beyond the table neither grant nor fail', () => {
    const g = new InlineGrants();
    g.invalidate(MAX_LU_SLOTS);
    expect(g.epoch(MAX_LU_SLOTS)).toBe(0);
    expect(g.nextMemoryGeneration(MAX_LU_SLOTS)).toBe(0);
  });

  it('keeps geometry above 2^32 blocks and counts memory generations', () => {
    const g = new InlineGrants();
    g.setGeometry(7, 12, 2 ** 40 + 5);
    expect(g.blocks(7)).toBe(2 ** 40 + 5);
    expect(g.blockShift(7)).toBe(12);
    expect(g.nextMemoryGeneration(7)).toBe(1);
    expect(g.nextMemoryGeneration(7)).toBe(2);
    expect(g.memoryGeneration(7)).toBe(2);
  });

  it('invalidate() waits for a session worker in another thread to leave its copy', async () => {
    const g = new InlineGrants();
    g.invalidate(0);
    const grant = g.epoch(0);
    const flag = new Int32Array(new SharedArrayBuffer(4));
    // Session worker 5 enters under the grant (its INFLIGHT word, +8 + 5), says so, stays
    // 50 ms, then leaves.
    const reader = new Worker(
      `const { workerData } = require('node:worker_threads');
       const w = new Int32Array(workerData.table);
       Atomics.add(w, 13, 1);
       if (Atomics.load(w, 0) !== workerData.grant) throw new Error('grant void');
       Atomics.store(workerData.flag, 0, 1);
       const until = Date.now() + 50;
       while (Date.now() < until) {}
       Atomics.sub(w, 13, 1);`,
      { eval: true, workerData: { table: g.sab, grant, flag } },
    );
    while (Atomics.load(flag, 0) === 0) await new Promise((r) => setTimeout(r, 1));
    const t0 = performance.now();
    g.invalidate(0);
    const waited = performance.now() - t0;
    await new Promise((r) => reader.once('exit', r));
    expect(waited).toBeGreaterThan(20);
    expect(g.begin(0, grant, 0)).toBe(false);
  });

  it("a dead session worker's raised word is cleared, and voidAll() voids every unit", () => {
    const g = new InlineGrants();
    for (const lu of [0, 9]) g.invalidate(lu);
    const grants = [g.epoch(0), g.epoch(9)];
    // Session worker 2 died between begin() and end().
    expect(g.begin(9, grants[1]!, 2)).toBe(true);
    g.clearWorker(2);
    const t0 = performance.now();
    g.voidAll();
    expect(performance.now() - t0, 'no copy left to wait for').toBeLessThan(100);
    expect(g.begin(0, grants[0]!, 0)).toBe(false);
    expect(g.begin(9, grants[1]!, 0)).toBe(false);
    expect(g.epoch(1), 'a slot never used stays without grants').toBe(0);
  });
});
