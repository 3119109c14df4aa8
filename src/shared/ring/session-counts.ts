/**
 * Sessions per target, node-wide (iscsi.maxSessionsPerTarget), counted in shared memory
 * by the session workers themselves: one Int32 per (session worker, target slot). A
 * worker adds to its own row and checks the column's sum, so no lock and no message is
 * needed at login; and when a session worker dies its row is simply zeroed (its sessions
 * died with it) before its replacement starts (issue 12).
 *
 * Two workers reserving the last place at once may both see the sum over the limit and
 * both back off: a login is refused that could have fit, never the other way round.
 */

/** Target slots per run (supervisor/topology.ts assigns them). */
export const MAX_TARGET_SLOTS = 4096;
/** Session workers at most (config workers.session). */
export const MAX_SESSION_WORKERS = 64;

export class SessionCounts {
  readonly sab: SharedArrayBuffer;
  readonly #counts: Int32Array;
  readonly #row: number;

  static createBuffer(): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * MAX_TARGET_SLOTS * MAX_SESSION_WORKERS);
  }

  /** `worker`: the session worker counting through this object. */
  constructor(sab: SharedArrayBuffer, worker: number) {
    this.sab = sab;
    this.#counts = new Int32Array(sab);
    this.#row = worker * MAX_TARGET_SLOTS;
  }

  /** Count one more session of target `slot` unless that makes more than `max`. */
  reserve(slot: number, max: number): boolean {
    const c = this.#counts;
    Atomics.add(c, this.#row + slot, 1);
    let sum = 0;
    for (let w = 0; w < MAX_SESSION_WORKERS; w++) sum += Atomics.load(c, w * MAX_TARGET_SLOTS + slot);
    if (sum <= max) return true;
    Atomics.sub(c, this.#row + slot, 1);
    return false;
  }

  release(slot: number): void {
    Atomics.sub(this.#counts, this.#row + slot, 1);
  }

  /** Sessions of target `slot` on the whole node. */
  total(slot: number): number {
    let sum = 0;
    for (let w = 0; w < MAX_SESSION_WORKERS; w++) sum += Atomics.load(this.#counts, w * MAX_TARGET_SLOTS + slot);
    return sum;
  }

  /** Session worker `worker` is gone: its sessions no longer count (the supervisor). */
  static clearWorker(sab: SharedArrayBuffer, worker: number): void {
    new Int32Array(sab).fill(0, worker * MAX_TARGET_SLOTS, (worker + 1) * MAX_TARGET_SLOTS);
  }
}
