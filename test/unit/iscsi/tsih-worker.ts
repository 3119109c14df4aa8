/**
 * worker_threads side of the TSIH table race test: allocates `count` TSIHs as session
 * worker `worker`, releases every other one, and posts what it still holds. Run natively
 * by Node (type stripping), not through vitest.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TsihTable } from '../../../src/shared/iscsi/tsih-table.ts';

const { sab, worker, count } = workerData as { sab: SharedArrayBuffer; worker: number; count: number };
const table = new TsihTable(sab, worker);
const held: number[] = [];
for (let i = 0; i < count; i++) {
  const t = table.allocate();
  if (t === 0) break;
  if (i % 2 === 1) table.release(t);
  else held.push(t);
}
parentPort!.postMessage(held);
