import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DOORBELL_BYTES, Doorbell } from '../../../src/shared/ring/doorbell.ts';
import { SpscRing } from '../../../src/shared/ring/spsc-ring.ts';
import { ENTRY_BYTES, consume, produce, xorshift32 } from './ring-stream.ts';
import type { ConsumeResult, ProduceResult } from './ring-stream.ts';
import type { RingWorkerData } from './ring-worker.ts';

const HEADER_BYTES = 128;
const HEAD_WORD = 0; // byte 0
const TAIL_WORD = 16; // byte 64

/** A producer and a consumer instance over one SAB, as two threads would hold them. */
function pair(
  capacity: number,
  entryBytes: number,
  head = 0,
  tail = 0,
): { prod: SpscRing; cons: SpscRing; words: Int32Array } {
  const sab = new SharedArrayBuffer(SpscRing.byteLength(capacity, entryBytes));
  const words = new Int32Array(sab, 0, HEADER_BYTES / 4);
  words[HEAD_WORD] = head;
  words[TAIL_WORD] = tail;
  return {
    prod: new SpscRing(sab, capacity, entryBytes),
    cons: new SpscRing(sab, capacity, entryBytes),
    words,
  };
}

function push(ring: SpscRing, value: number): boolean {
  const off = ring.reserve();
  if (off < 0) return false;
  ring.view.setUint32(off, value, true);
  ring.publish();
  return true;
}

function pop(ring: SpscRing): number | undefined {
  const off = ring.peek();
  if (off < 0) return undefined;
  const v = ring.view.getUint32(off, true);
  ring.release();
  return v;
}

describe('SpscRing construction', () => {
  it('sizes the buffer as a 128-byte header plus the entries', () => {
    expect(SpscRing.byteLength(8, 64)).toBe(128 + 512);
    const r = SpscRing.create(8, 64);
    expect(r.sab.byteLength).toBe(640);
    expect(r.capacity).toBe(8);
    expect(r.entryBytes).toBe(64);
    expect(r.bytes.byteOffset).toBe(128);
    expect(r.bytes.byteLength).toBe(512);
    expect(r.view.byteOffset).toBe(128);
    expect(r.freeSlots()).toBe(8);
    expect(r.peek()).toBe(-1);
    expect(r.isEmpty()).toBe(true);
  });

  it.each([0, 1, 3, 6, 12, 1000, -2, -8, 1.5, Number.NaN, 2 ** 21, 2 ** 30])('rejects capacity %s', (cap) => {
    expect(() => SpscRing.create(cap, 32)).toThrow(RangeError);
  });

  it('accepts the capacity bounds 2 and 2^20', () => {
    expect(SpscRing.create(2, 8).capacity).toBe(2);
    expect(SpscRing.create(2 ** 20, 8).capacity).toBe(2 ** 20);
  });

  it.each([0, 4, 12, 33, -8])('rejects entryBytes %s', (eb) => {
    expect(() => SpscRing.create(8, eb)).toThrow(RangeError);
  });

  it('rejects a buffer whose size does not match, and a bad capacity on attach', () => {
    expect(() => new SpscRing(new SharedArrayBuffer(SpscRing.byteLength(8, 32) + 8), 8, 32)).toThrow(
      RangeError,
    );
    expect(() => new SpscRing(new SharedArrayBuffer(SpscRing.byteLength(8, 32)), 8, 64)).toThrow(RangeError);
    // Size matches, but a non-power-of-two capacity would break the index mask.
    expect(() => new SpscRing(new SharedArrayBuffer(SpscRing.byteLength(6, 32)), 6, 32)).toThrow(RangeError);
  });
});

describe('SpscRing single thread', () => {
  it('fills to exactly capacity, then reserve() returns -1 until the consumer releases', () => {
    const { prod, cons, words } = pair(8, 16);
    for (let i = 0; i < 8; i++) {
      expect(prod.freeSlots()).toBe(8 - i);
      const off = prod.reserve();
      expect(off).toBe(i * 16);
      // reserve() does not advance: asking again gives the same slot.
      expect(prod.reserve()).toBe(off);
      prod.view.setUint32(off, 100 + i, true);
      prod.publish();
      expect(words[HEAD_WORD]).toBe(i + 1);
    }
    expect(prod.reserve()).toBe(-1);
    expect(prod.reserve()).toBe(-1);
    expect(prod.freeSlots()).toBe(0);
    expect(words[HEAD_WORD]).toBe(8);
    expect(words[TAIL_WORD]).toBe(0);

    // peek() without release() keeps returning the oldest entry.
    expect(cons.peek()).toBe(0);
    expect(cons.peek()).toBe(0);
    expect(prod.reserve()).toBe(-1);
    cons.release();
    expect(words[TAIL_WORD]).toBe(1);
    expect(prod.freeSlots()).toBe(1);
    expect(prod.reserve()).toBe(0); // slot 0 is reused
    prod.view.setUint32(0, 108, true);
    prod.publish();
    expect(prod.reserve()).toBe(-1);

    const got: number[] = [];
    for (let v = pop(cons); v !== undefined; v = pop(cons)) got.push(v);
    expect(got).toEqual([101, 102, 103, 104, 105, 106, 107, 108]);
    expect(cons.isEmpty()).toBe(true);
    expect(prod.freeSlots()).toBe(8);
    expect(words[HEAD_WORD]).toBe(9);
    expect(words[TAIL_WORD]).toBe(9);
  });

  it('writes entries at byte 128 + slot * entryBytes of the SAB', () => {
    const { prod, cons } = pair(4, 8);
    const raw = new Uint8Array(prod.sab);
    for (let i = 0; i < 6; i++) {
      const off = prod.reserve();
      expect(off).toBe((i % 4) * 8);
      prod.bytes[off] = 0xa0 + i;
      prod.publish();
      expect(raw[128 + (i % 4) * 8]).toBe(0xa0 + i);
      expect(cons.bytes[cons.peek()]).toBe(0xa0 + i);
      cons.release();
    }
  });

  it('does not show an entry to the consumer before publish()', () => {
    const { prod, cons } = pair(4, 8);
    const off = prod.reserve();
    prod.view.setUint32(off, 7, true);
    expect(cons.peek()).toBe(-1);
    expect(cons.isEmpty()).toBe(true);
    prod.publish();
    expect(cons.isEmpty()).toBe(false);
    expect(pop(cons)).toBe(7);
    expect(cons.peek()).toBe(-1);
  });

  it('keeps FIFO order through many wraparounds with random batch sizes', () => {
    const { prod, cons, words } = pair(4, 8);
    const rnd = xorshift32(12345);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 20_000; round++) {
      const n = rnd() % 6; // 0..5: sometimes more than capacity
      for (let i = 0; i < n; i++) {
        const full = next - expected === 4;
        const ok = push(prod, next);
        expect(ok).toBe(!full);
        if (ok) next++;
      }
      const m = rnd() % 6;
      for (let i = 0; i < m; i++) {
        const v = pop(cons);
        if (expected === next) {
          expect(v).toBeUndefined();
        } else {
          expect(v).toBe(expected);
          expected++;
        }
      }
    }
    for (let v = pop(cons); v !== undefined; v = pop(cons)) expect(v).toBe(expected++);
    expect(expected).toBe(next);
    expect(next).toBeGreaterThan(20_000); // wrapped the 4-slot ring thousands of times
    expect(words[HEAD_WORD]).toBe(next);
    expect(words[TAIL_WORD]).toBe(next);
  });

  describe.each([
    ['just below 2^31', 0x7ffffff0 | 0],
    ['at 2^31 - 1', 0x7fffffff],
    ['just below 2^32 (negative int32)', 0xfffffff0 | 0],
    ['at -1', -1],
  ])('counters preset %s', (_name, start) => {
    it('starts empty and keeps FIFO order while the counters wrap', () => {
      const { prod, cons, words } = pair(8, 8, start, start);
      expect(cons.peek()).toBe(-1);
      expect(cons.isEmpty()).toBe(true);
      expect(prod.freeSlots()).toBe(8);
      let next = 0;
      let expected = 0;
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 3; i++) {
          const off = prod.reserve();
          expect(off).toBe(((start + next) & 7) * 8);
          prod.view.setUint32(off, next++, true);
          prod.publish();
          expect(words[HEAD_WORD]).toBe((start + next) | 0);
        }
        for (let i = 0; i < 3; i++) {
          expect(cons.peek()).toBe(((start + expected) & 7) * 8);
          expect(pop(cons)).toBe(expected++);
          expect(words[TAIL_WORD]).toBe((start + expected) | 0);
        }
        expect(cons.peek()).toBe(-1);
      }
    });

    it('reports full at capacity exactly across the wrap', () => {
      const { prod, cons, words } = pair(8, 8, start, start);
      for (let i = 0; i < 8; i++) expect(push(prod, i)).toBe(true);
      expect(prod.reserve()).toBe(-1);
      expect(prod.freeSlots()).toBe(0);
      expect(words[HEAD_WORD]).toBe((start + 8) | 0);
      for (let i = 0; i < 8; i++) expect(pop(cons)).toBe(i);
      expect(pop(cons)).toBeUndefined();
      expect(prod.freeSlots()).toBe(8);
    });

    it('attaches to a full ring: the producer sees it full, the consumer sees every entry', () => {
      // Entries were written by an earlier producer: head = tail + capacity.
      const sab = new SharedArrayBuffer(SpscRing.byteLength(8, 8));
      const words = new Int32Array(sab, 0, 32);
      const tail = start;
      words[TAIL_WORD] = tail;
      words[HEAD_WORD] = (tail + 8) | 0;
      const entries = new DataView(sab, HEADER_BYTES);
      for (let i = 0; i < 8; i++) entries.setUint32(((tail + i) & 7) * 8, 500 + i, true);

      const prod = new SpscRing(sab, 8, 8);
      const cons = new SpscRing(sab, 8, 8);
      expect(prod.reserve()).toBe(-1);
      expect(prod.freeSlots()).toBe(0);
      for (let i = 0; i < 8; i++) {
        expect(cons.peek()).toBe(((tail + i) & 7) * 8);
        expect(pop(cons)).toBe(500 + i);
        // Exactly the released slot becomes free again.
        expect(prod.freeSlots()).toBe(i + 1);
      }
      expect(cons.peek()).toBe(-1);
    });
  });
});

describe('Doorbell (single thread)', () => {
  it('lays out seq at byte 0 and sleeping at byte 64', () => {
    const bell = new Doorbell();
    expect(bell.sab.byteLength).toBe(DOORBELL_BYTES);
    const w = new Int32Array(bell.sab);
    expect(bell.prepareSleep()).toBe(0);
    expect(w[16]).toBe(1);
    bell.ring();
    expect(w[0]).toBe(1);
    bell.awake();
    expect(w[16]).toBe(0);
  });

  it('ring() is a no-op while the consumer is awake', () => {
    const bell = new Doorbell();
    const s0 = bell.prepareSleep();
    bell.awake();
    bell.ring();
    bell.ring();
    expect(bell.prepareSleep()).toBe(s0);
    bell.awake();
  });

  it('wait() returns not-equal at once when rung between prepareSleep and wait', () => {
    const bell = new Doorbell();
    const s = bell.prepareSleep();
    bell.ring();
    expect(bell.wait(s)).toBe('not-equal');
    bell.awake();
  });

  it('wait() parks and is woken by ring()', async () => {
    const bell = new Doorbell();
    const s = bell.prepareSleep();
    const r = bell.wait(s);
    expect(typeof r).toBe('object');
    setTimeout(() => bell.ring(), 5);
    expect(await deadline(Promise.resolve(r), 2_000, 'doorbell wait')).toBe('ok');
    bell.awake();
  });

  it('works over a SharedArrayBuffer handed to a second instance', async () => {
    const consumer = new Doorbell();
    const producer = new Doorbell(consumer.sab);
    const s = consumer.prepareSleep();
    const r = consumer.wait(s);
    producer.ring();
    expect(await deadline(Promise.resolve(r), 2_000, 'doorbell wait')).toBe('ok');
    consumer.awake();
  });
});

// ---------------------------------------------------------------------------
// Cross-thread: a real worker on the other end of the ring.

interface WorkerRun<T> {
  worker: Worker;
  result: Promise<T>;
  /** Rejects if the worker fails; never resolves otherwise (race it against the main side). */
  failure: Promise<never>;
}

function startWorker<T>(data: RingWorkerData): WorkerRun<T> {
  const worker = new Worker(new URL('./ring-worker.ts', import.meta.url), { workerData: data });
  const result = new Promise<T>((resolve, reject) => {
    worker.once('message', (m: T) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`ring worker exited with code ${code} before reporting`)));
  });
  const failure = new Promise<never>((_, reject) => {
    result.catch(reject);
  });
  return { worker, result, failure };
}

function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no completion within ${ms} ms (lost wake-up?)`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function setup(capacity: number): { ring: SpscRing; data: Doorbell; space: Doorbell } {
  return { ring: SpscRing.create(capacity, ENTRY_BYTES), data: new Doorbell(), space: new Doorbell() };
}

describe('SpscRing across threads', () => {
  it('worker produces 200k descriptors, main consumes them all in order and intact', async () => {
    const count = 200_000;
    const seed = 0xc0ffee;
    const { ring, data, space } = setup(256);
    const w = startWorker<ProduceResult>({
      role: 'produce',
      ring: ring.sab,
      capacity: ring.capacity,
      data: data.sab,
      space: space.sab,
      count,
      seed,
      // A few short pauses guarantee the consumer drains the ring and really parks.
      pauseEvery: 40_000,
      pauseMs: 20,
    });
    try {
      const got: ConsumeResult = await deadline(
        Promise.race([consume(ring, data, space, { count, seed }), w.failure]),
        15_000,
        'consumer',
      );
      expect(got.error).toBeNull();
      expect(got.received).toBe(count);
      expect(got.parks).toBeGreaterThan(0);
      const prod = await deadline(w.result, 5_000, 'producer');
      expect(prod.produced).toBe(count);
      expect(ring.isEmpty()).toBe(true); // nothing beyond the last descriptor
      expect(ring.peek()).toBe(-1);
    } finally {
      await w.worker.terminate();
    }
  }, 30_000);

  it('main produces 200k descriptors into a small ring, worker consumes them in order and intact', async () => {
    const count = 200_000;
    const seed = 0x5eed;
    // A tiny ring forces the producer to hit "full" and park on the space doorbell.
    const { ring, data, space } = setup(16);
    const w = startWorker<ConsumeResult & { role: string }>({
      role: 'consume',
      ring: ring.sab,
      capacity: ring.capacity,
      data: data.sab,
      space: space.sab,
      count,
      seed,
    });
    try {
      const prod = await deadline(
        Promise.race([
          produce(ring, data, space, { count, seed, pauseEvery: 50_000, pauseMs: 20 }),
          w.failure,
        ]),
        15_000,
        'producer',
      );
      expect(prod.produced).toBe(count);
      const got = await deadline(w.result, 5_000, 'consumer worker');
      expect(got.role).toBe('consume');
      expect(got.error).toBeNull();
      expect(got.received).toBe(count);
      expect(got.parks).toBeGreaterThan(0);
      expect(ring.freeSlots()).toBe(16);
    } finally {
      await w.worker.terminate();
    }
  }, 30_000);
});
