/**
 * Worker heartbeats: one Int32 per worker in shared memory, bumped by the worker's own
 * event loop every HEARTBEAT_MS. The supervisor reads them: a counter that stops moving
 * means the worker's thread no longer gets back to its event loop (an endless loop, a
 * deadlock on Atomics.wait, a runaway synchronous job), which no exit event would ever
 * report. Such a worker is terminated and replaced like a crashed one (issue 12).
 */

export const HEARTBEAT_MS = 250;

/** Slots per kind of worker: LUN workers, session workers, portal workers. */
export const HEARTBEAT_SLOTS = 256;

export const HeartbeatKind = { lun: 0, session: 1, portal: 2 } as const;
export type HeartbeatKind = (typeof HeartbeatKind)[keyof typeof HeartbeatKind];

export function heartbeatSlot(kind: HeartbeatKind, index: number): number {
  return kind * HEARTBEAT_SLOTS + index;
}

export function createHeartbeats(): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * 3 * HEARTBEAT_SLOTS);
}

/** Start beating slot `slot` from this thread's event loop; returns the stop function. */
export function startHeartbeat(sab: SharedArrayBuffer, slot: number): () => void {
  const beats = new Int32Array(sab);
  Atomics.add(beats, slot, 1);
  const timer = setInterval(() => Atomics.add(beats, slot, 1), HEARTBEAT_MS);
  timer.unref();
  return () => clearInterval(timer);
}

export function readHeartbeat(sab: SharedArrayBuffer, slot: number): number {
  return Atomics.load(new Int32Array(sab), slot);
}
