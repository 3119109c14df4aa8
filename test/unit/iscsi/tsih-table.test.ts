/**
 * The node-wide TSIH table: unique non-zero values, holders counted per worker, moves
 * between workers by compare-and-exchange, and no duplicates when workers allocate
 * concurrently from real threads.
 */
import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { TSIH_VALUES, TsihTable } from '../../../src/shared/iscsi/tsih-table.ts';

describe('TsihTable', () => {
  it('allocates distinct non-zero TSIHs until all 65535 are used, then 0', () => {
    const sab = TsihTable.createBuffer();
    const a = new TsihTable(sab, 0);
    const b = new TsihTable(sab, 5);
    const seen = new Set<number>();
    for (let i = 0; i < TSIH_VALUES - 1; i++) {
      const t = (i % 2 === 0 ? a : b).allocate();
      expect(t).toBeGreaterThan(0);
      expect(t).toBeLessThan(TSIH_VALUES);
      expect(seen.has(t)).toBe(false);
      seen.add(t);
    }
    expect(a.allocate()).toBe(0);
    expect(b.allocate()).toBe(0);
    // Freed values come back.
    const some = [...seen].find((t) => a.owner(t) === 0)!;
    a.release(some);
    expect(a.owner(some)).toBe(-1);
    expect(b.allocate()).toBe(some);
    expect(b.owner(some)).toBe(5);
  });

  it('a TSIH held twice on one worker is freed with its last holder', () => {
    const t0 = new TsihTable(TsihTable.createBuffer(), 2);
    const t = t0.allocate();
    expect(t0.adopt(t, 2)).toBe(true); // a second connection of the same session
    t0.release(t);
    expect(t0.owner(t)).toBe(2);
    t0.release(t);
    expect(t0.owner(t)).toBe(-1);
    expect(t0.adopt(t, 2)).toBe(false); // not held here any more
  });

  it('moves to another worker only from its current owner; the old owner cannot free it', () => {
    const sab = TsihTable.createBuffer();
    const w0 = new TsihTable(sab, 0);
    const w1 = new TsihTable(sab, 1);
    const w2 = new TsihTable(sab, 2);
    const t = w0.allocate();
    expect(w2.adopt(t, 1)).toBe(false); // worker 1 does not hold it
    expect(w1.adopt(t, 0)).toBe(true);
    expect(w1.owner(t)).toBe(1);
    w0.release(t); // the old connection closes after the move
    expect(w0.owner(t)).toBe(1);
    expect(w0.adopt(t, 0)).toBe(false);
    w1.release(t);
    expect(w1.owner(t)).toBe(-1);
    expect(w1.adopt(t, 0)).toBe(false); // free: nobody to take it from
  });

  it('moving back before the old holder closed keeps the value until the last holder', () => {
    const sab = TsihTable.createBuffer();
    const w0 = new TsihTable(sab, 0);
    const w1 = new TsihTable(sab, 1);
    const t = w0.allocate(); // connection A on worker 0
    expect(w1.adopt(t, 0)).toBe(true); // B on worker 1 reinstates
    expect(w0.adopt(t, 1)).toBe(true); // C on worker 0 reinstates before A has closed
    w0.release(t); // A closes
    expect(w0.owner(t)).toBe(0); // C still holds it
    w1.release(t); // B closes: not its to free
    expect(w0.owner(t)).toBe(0);
    w0.release(t); // C closes
    expect(w0.owner(t)).toBe(-1);
  });

  it('out-of-range values are never owned or adopted', () => {
    const w = new TsihTable(TsihTable.createBuffer(), 0);
    expect(w.owner(0)).toBe(-1);
    expect(w.owner(TSIH_VALUES)).toBe(-1);
    expect(w.adopt(0, 0)).toBe(false);
    expect(w.adopt(TSIH_VALUES, 1)).toBe(false);
  });

  it('four threads allocating at once never get the same TSIH', async () => {
    const sab = TsihTable.createBuffer();
    const runs = [0, 1, 2, 3].map(
      (worker) =>
        new Promise<number[]>((resolve, reject) => {
          const w = new Worker(new URL('./tsih-worker.ts', import.meta.url), {
            workerData: { sab, worker, count: 30000 },
          });
          w.once('message', resolve);
          w.once('error', reject);
        }),
    );
    const held = (await Promise.all(runs)).flat();
    expect(new Set(held).size).toBe(held.length);
    const probe = new TsihTable(sab, 9);
    for (const t of held) expect(probe.owner(t)).toBeGreaterThanOrEqual(0);
    // 4 x 30000 allocations of which half were released: 60000 held, all distinct.
    expect(held.length).toBe(60000);
  });
});
