/**
 * worker_threads side of the cross-thread SpscRing tests: attaches to the ring and the
 * two doorbells by their SharedArrayBuffers and runs one end of the stream, then posts
 * its result. Run natively by Node (type stripping), not through vitest.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Doorbell } from '../../../src/shared/ring/doorbell.ts';
import { SpscRing } from '../../../src/shared/ring/spsc-ring.ts';
import { ENTRY_BYTES, consume, produce } from './ring-stream.ts';

export interface RingWorkerData {
  role: 'produce' | 'consume';
  ring: SharedArrayBuffer;
  capacity: number;
  data: SharedArrayBuffer;
  space: SharedArrayBuffer;
  count: number;
  seed: number;
  pauseEvery?: number;
  pauseMs?: number;
}

const d = workerData as RingWorkerData;
const ring = new SpscRing(d.ring, d.capacity, ENTRY_BYTES);
const data = new Doorbell(d.data);
const space = new Doorbell(d.space);

// A pending Atomics.waitAsync does not keep a thread's event loop alive: without a ref'd
// handle the worker would exit (code 13, unsettled top-level await) while parked.
const keepAlive = setInterval(() => {}, 1 << 30);

if (d.role === 'produce') {
  const r = await produce(ring, data, space, {
    count: d.count,
    seed: d.seed,
    pauseEvery: d.pauseEvery,
    pauseMs: d.pauseMs,
    syncPause: true,
  });
  parentPort?.postMessage({ role: 'produce', ...r });
} else {
  const r = await consume(ring, data, space, { count: d.count, seed: d.seed });
  parentPort?.postMessage({ role: 'consume', ...r });
}
clearInterval(keepAlive);
