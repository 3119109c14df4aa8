/**
 * Test helper shared by spsc-ring.test.ts and ring-worker.ts: a deterministic stream of
 * descriptors (sequence number, payload checksum, seeded pseudo-random payload) and the
 * producer / consumer loops that push it through an SpscRing using the Doorbell protocol.
 *
 * Entry layout (ENTRY_BYTES = 32, little-endian):
 *   0  u32 seq
 *   4  u32 FNV-1a of the payload
 *   8  u8[24] payload, a function of (seed, seq) only, so either side can recompute it
 *
 * Two doorbells: `data` wakes the consumer when an entry is published; `space` wakes a
 * producer that found the ring full when the consumer releases an entry.
 */
import type { Doorbell } from '../../../src/shared/ring/doorbell.ts';
import type { SpscRing } from '../../../src/shared/ring/spsc-ring.ts';

export const ENTRY_BYTES = 32;
export const PAYLOAD_OFFSET = 8;
export const PAYLOAD_BYTES = ENTRY_BYTES - PAYLOAD_OFFSET;

/** xorshift32; never returns the same generator state 0. */
export function xorshift32(seed: number): () => number {
  let x = seed | 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

export function fnv1a(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

/** Fill `out[at, at + PAYLOAD_BYTES)` with the payload of descriptor `seq`. */
export function payloadInto(seed: number, seq: number, out: Uint8Array, at: number): void {
  const rnd = xorshift32(Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) ^ Math.imul(seq + 1, 0x9e3779b1));
  for (let i = 0; i < PAYLOAD_BYTES; i += 4) {
    const v = rnd();
    out[at + i] = v;
    out[at + i + 1] = v >>> 8;
    out[at + i + 2] = v >>> 16;
    out[at + i + 3] = v >>> 24;
  }
}

export function writeEntry(ring: SpscRing, off: number, seed: number, seq: number): void {
  payloadInto(seed, seq, ring.bytes, off + PAYLOAD_OFFSET);
  ring.view.setUint32(off, seq, true);
  ring.view.setUint32(off + 4, fnv1a(ring.bytes, off + PAYLOAD_OFFSET, off + ENTRY_BYTES), true);
}

const expectedPayload = new Uint8Array(PAYLOAD_BYTES);

/** null when the entry at `off` is descriptor `seq` intact, else a description of the damage. */
export function checkEntry(ring: SpscRing, off: number, seed: number, seq: number): string | null {
  const gotSeq = ring.view.getUint32(off, true);
  if (gotSeq !== seq) return `expected seq ${seq}, got ${gotSeq}`;
  const sum = ring.view.getUint32(off + 4, true);
  const actual = fnv1a(ring.bytes, off + PAYLOAD_OFFSET, off + ENTRY_BYTES);
  if (sum !== actual) return `seq ${seq}: checksum field ${sum} != payload checksum ${actual}`;
  payloadInto(seed, seq, expectedPayload, 0);
  for (let i = 0; i < PAYLOAD_BYTES; i++) {
    if (ring.bytes[off + PAYLOAD_OFFSET + i] !== expectedPayload[i])
      return `seq ${seq}: payload byte ${i} differs`;
  }
  return null;
}

/** Park on `bell` until `ready()` holds, following prepareSleep / re-check / wait / awake. */
async function park(bell: Doorbell, ready: () => boolean): Promise<boolean> {
  const seen = bell.prepareSleep();
  if (ready()) {
    bell.awake();
    return false;
  }
  const r = bell.wait(seen);
  let parked = false;
  if (typeof r !== 'string') {
    await r;
    parked = true;
  }
  bell.awake();
  return parked;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface ProduceOptions {
  count: number;
  seed: number;
  /** Every `pauseEvery` descriptors, stop for `pauseMs` so the consumer drains and parks. */
  pauseEvery?: number;
  pauseMs?: number;
  /** Use a synchronous Atomics.wait for the pauses (workers only; the main thread must not block). */
  syncPause?: boolean;
}

export interface ProduceResult {
  produced: number;
  /** Times the producer actually slept on the space doorbell. */
  parks: number;
}

export async function produce(
  ring: SpscRing,
  data: Doorbell,
  space: Doorbell,
  opts: ProduceOptions,
): Promise<ProduceResult> {
  let parks = 0;
  for (let seq = 0; seq < opts.count; seq++) {
    let off = ring.reserve();
    while (off < 0) {
      if (await park(space, () => ring.freeSlots() > 0)) parks++;
      off = ring.reserve();
    }
    writeEntry(ring, off, opts.seed, seq);
    ring.publish();
    data.ring();
    if (opts.pauseEvery && seq % opts.pauseEvery === opts.pauseEvery - 1) {
      const ms = opts.pauseMs ?? 1;
      if (opts.syncPause) sleepMs(ms);
      else await new Promise((r) => setTimeout(r, ms));
    }
  }
  return { produced: opts.count, parks };
}

export interface ConsumeResult {
  received: number;
  /** Times the consumer actually slept on the data doorbell. */
  parks: number;
  error: string | null;
}

export async function consume(
  ring: SpscRing,
  data: Doorbell,
  space: Doorbell,
  opts: { count: number; seed: number },
): Promise<ConsumeResult> {
  let received = 0;
  let parks = 0;
  while (received < opts.count) {
    for (let off = ring.peek(); off >= 0; off = ring.peek()) {
      if (received >= opts.count) return { received: received + 1, parks, error: 'descriptor past the end' };
      const err = checkEntry(ring, off, opts.seed, received);
      if (err !== null) return { received, parks, error: err };
      ring.release();
      space.ring();
      received++;
    }
    if (received >= opts.count) break;
    if (await park(data, () => !ring.isEmpty())) parks++;
  }
  return { received, parks, error: null };
}
