/**
 * Direct I/O on RAM disks: how a session worker may serve a READ or WRITE of a RAM disk
 * itself, without the hop to the LUN worker that owns the logical unit, and still obey
 * every rule that LUN worker enforces (issue 13: "fewer thread hops for commands the
 * session worker can answer").
 *
 * The LUN worker stays the only owner of the unit's state. What it shares is a promise
 * with a version: a READ or WRITE it completed with GOOD for an I_T nexus carries a
 * *grant*, the unit's epoch at that moment, back on the completion ring. The grant says:
 * "at this epoch nothing stands between this nexus and commands of this kind on this
 * unit": no pending unit attention, no reservation conflict, an accessible port group,
 * the unit ready (and writable, and not thin, for WRITEs), no exclusive command (COMPARE
 * AND WRITE, another node's hold) waiting or running, no ORDERED or HEAD OF QUEUE command
 * and no ACA condition in the task set. Whatever could change one of those answers moves
 * the epoch first (invalidate), so every grant given before it is void at once: the next
 * command goes the long way, and its completion brings a new grant if the answer is yes
 * again.
 *
 * A session worker serving a command announces itself in INFLIGHT, then compares the
 * epoch (Atomics: sequentially consistent), and leaves INFLIGHT when its copy is done.
 * invalidate() moves the epoch, then waits until INFLIGHT is zero. Either the session
 * worker sees the new epoch and backs off, or the LUN worker sees it and waits: a copy
 * never overlaps a change that invalidated its grant (Dekker's pattern; the copy is a
 * memcpy of at most one command's data, microseconds). So a COMPARE AND WRITE, a
 * reservation change's fencing (DESIGN.md "Fencing") or a sanitize starts with no
 * direct WRITE still landing.
 *
 * One table per LUN worker, allocated by the supervisor and kept when the worker is
 * replaced (its successor invalidates every unit it opens). Int32 words per unit index
 * (the topology's luIndex, below MAX_LU_SLOTS; units above it never grant):
 *
 *   +0 EPOCH       moved by invalidate(); a grant is a copy of it (never 0)
 *   +1 INFLIGHT    direct commands copying now (all session workers)
 *   +2 MEMORY_GEN  generation of the unit's RAM (bumped when the memory is replaced)
 *   +3 BLOCK_SHIFT log2(logical block size)
 *   +4 BLOCKS_LO   capacity in logical blocks, low 32 bits
 *   +5 BLOCKS_HI   and high bits
 *   +6, +7        reserved
 */
export const MAX_LU_SLOTS = 1024;
const STRIDE = 8;
const EPOCH = 0;
const INFLIGHT = 1;
const MEMORY_GEN = 2;
const BLOCK_SHIFT = 3;
const BLOCKS_LO = 4;
const BLOCKS_HI = 5;

export const DIRECT_GRANTS_BYTES = MAX_LU_SLOTS * STRIDE * 4;

/**
 * How long invalidate() waits for readers before it goes on anyway. A reader is inside
 * for one memcpy; only a session worker that died in the middle of one (its thread
 * terminated) could leave INFLIGHT raised, and then there is no copy left to wait for.
 */
const DRAIN_LIMIT_MS = 100;

export class DirectGrants {
  readonly sab: SharedArrayBuffer;
  readonly #w: Int32Array;

  constructor(sab?: SharedArrayBuffer) {
    this.sab = sab ?? new SharedArrayBuffer(DIRECT_GRANTS_BYTES);
    this.#w = new Int32Array(this.sab);
  }

  // ---- the LUN worker's side ----

  /**
   * Void every grant of unit `lu`, and return once no direct command that checked an older
   * epoch is still copying. Call it before a change becomes visible to commands.
   */
  invalidate(lu: number): void {
    if (lu >= MAX_LU_SLOTS) return;
    const w = this.#w;
    const base = lu * STRIDE;
    // Skip 0: a grant of 0 means "none" on the completion ring.
    if (Atomics.add(w, base + EPOCH, 1) === -1) Atomics.add(w, base + EPOCH, 1);
    if (Atomics.load(w, base + INFLIGHT) === 0) return;
    const deadline = performance.now() + DRAIN_LIMIT_MS;
    while (Atomics.load(w, base + INFLIGHT) !== 0 && performance.now() < deadline) {
      // spin: the reader is in the middle of one copy
    }
  }

  /** The grant a READ or WRITE completing now earns (never 0). */
  epoch(lu: number): number {
    return lu < MAX_LU_SLOTS ? Atomics.load(this.#w, lu * STRIDE + EPOCH) : 0;
  }

  /** The unit's geometry, published before the invalidate() that makes it current. */
  setGeometry(lu: number, blockShift: number, blocks: number): void {
    if (lu >= MAX_LU_SLOTS) return;
    const base = lu * STRIDE;
    Atomics.store(this.#w, base + BLOCK_SHIFT, blockShift);
    Atomics.store(this.#w, base + BLOCKS_LO, blocks % 0x1_0000_0000 | 0);
    Atomics.store(this.#w, base + BLOCKS_HI, Math.floor(blocks / 0x1_0000_0000));
  }

  /** The unit's RAM was (re)allocated: its new generation, sent along with the memory. */
  nextMemoryGeneration(lu: number): number {
    if (lu >= MAX_LU_SLOTS) return 0;
    return Atomics.add(this.#w, lu * STRIDE + MEMORY_GEN, 1) + 1;
  }

  // ---- a session worker's side ----

  /**
   * Enter a direct command on unit `lu` under `grant`: true when the grant still holds (then
   * end() must follow the copy), false when it is void (nothing to undo).
   */
  begin(lu: number, grant: number): boolean {
    const w = this.#w;
    const base = lu * STRIDE;
    Atomics.add(w, base + INFLIGHT, 1);
    if (Atomics.load(w, base + EPOCH) === grant) return true;
    Atomics.sub(w, base + INFLIGHT, 1);
    return false;
  }

  end(lu: number): void {
    Atomics.sub(this.#w, lu * STRIDE + INFLIGHT, 1);
  }

  memoryGeneration(lu: number): number {
    return Atomics.load(this.#w, lu * STRIDE + MEMORY_GEN);
  }

  blockShift(lu: number): number {
    return Atomics.load(this.#w, lu * STRIDE + BLOCK_SHIFT);
  }

  blocks(lu: number): number {
    const base = lu * STRIDE;
    return (Atomics.load(this.#w, base + BLOCKS_LO) >>> 0) + Atomics.load(this.#w, base + BLOCKS_HI) * 0x1_0000_0000;
  }
}
