/**
 * Inline I/O on RAM disks and page-cached files: how a session worker may serve a READ or WRITE of a RAM disk
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
 * A session worker serving a command announces itself in its INFLIGHT word, then
 * compares the epoch (Atomics: sequentially consistent), and leaves INFLIGHT when its
 * copy is done. invalidate() moves the epoch, then waits until every INFLIGHT word is
 * zero. Either the session
 * worker sees the new epoch and backs off, or the LUN worker sees it and waits: a copy
 * never overlaps a change that invalidated its grant (Dekker's pattern; the copy is a
 * memcpy of at most one command's data, microseconds). So a COMPARE AND WRITE, a
 * reservation change's fencing (DESIGN.md "Fencing") or a sanitize starts with no
 * inline WRITE still landing.
 *
 * One table per LUN worker, allocated by the supervisor and kept when the worker is
 * replaced. The supervisor voids every grant of the table itself when the worker dies or
 * hangs, and before it hands the worker a cluster change (another node's reservation
 * change, hold or reset, a port group state): a worker that cannot act on the change
 * must not leave session workers serving under the old state. The successor invalidates
 * every unit it opens. Int32 words per unit index (the topology's luIndex, below
 * MAX_LU_SLOTS; units above it never grant):
 *
 *   +0 EPOCH       moved by invalidate(); a grant is a copy of it (never 0)
 *   +1 MEMORY_GEN  generation of the unit's RAM (bumped when the memory is replaced)
 *   +2 BLOCK_SHIFT log2(logical block size)
 *   +3 BLOCKS_LO   capacity in logical blocks, low 32 bits
 *   +4 BLOCKS_HI   and high bits
 *   +5 KIND        what the session worker copies from and to (InlineKind)
 *   +6 FD          FILE: the store's descriptor (pread/pwrite on the page cache)
 *   +7             reserved
 *   +8 + s         INFLIGHT of session worker s: inline commands it is copying now (one
 *                  word per worker, so a dead worker's share can be cleared)
 */
export const MAX_LU_SLOTS = 1024;
/** Session workers a table has INFLIGHT words for (config `workers.session` is at most 64). */
export const MAX_SESSION_WORKERS = 64;
const EPOCH = 0;
const MEMORY_GEN = 1;
const BLOCK_SHIFT = 2;
const BLOCKS_LO = 3;
const BLOCKS_HI = 4;
const KIND = 5;
const FD = 6;
const INFLIGHT = 8;

/** How a unit is served inline: not at all, from RAM (its shared memory), from a buffered file. */
export const InlineKind = { NONE: 0, RAM: 1, FILE: 2 } as const;
export type InlineKind = (typeof InlineKind)[keyof typeof InlineKind];
const STRIDE = INFLIGHT + MAX_SESSION_WORKERS;

export const INLINE_GRANTS_BYTES = MAX_LU_SLOTS * STRIDE * 4;

/**
 * How long invalidate() waits for a copy before it goes on anyway. A session worker is
 * inside for one memcpy; one that died in the middle of one leaves its word raised until
 * the supervisor clears it (clearWorker), and then there is no copy left to wait for.
 * The bound only keeps the LUN worker alive through that window; a live session worker
 * descheduled for this long in the middle of a memcpy is not a case it is meant for.
 */
const DRAIN_LIMIT_MS = 1000;

export class InlineGrants {
  readonly sab: SharedArrayBuffer;
  readonly #w: Int32Array;

  constructor(sab?: SharedArrayBuffer) {
    this.sab = sab ?? new SharedArrayBuffer(INLINE_GRANTS_BYTES);
    this.#w = new Int32Array(this.sab);
  }

  // ---- the LUN worker's side ----

  /**
   * Void every grant of unit `lu`, and return once no inline command that checked an older
   * epoch is still copying. Call it before a change becomes visible to commands.
   */
  invalidate(lu: number): void {
    if (lu >= MAX_LU_SLOTS) return;
    const w = this.#w;
    const base = lu * STRIDE;
    // Skip 0: a grant of 0 means "none" on the completion ring.
    if (Atomics.add(w, base + EPOCH, 1) === -1) Atomics.add(w, base + EPOCH, 1);
    if (!this.#copying(base)) return;
    const deadline = performance.now() + DRAIN_LIMIT_MS;
    while (this.#copying(base) && performance.now() < deadline) {
      // spin: a session worker is in the middle of one copy
    }
  }

  #copying(base: number): boolean {
    const w = this.#w;
    for (let s = 0; s < MAX_SESSION_WORKERS; s++) if (Atomics.load(w, base + INFLIGHT + s) !== 0) return true;
    return false;
  }

  /** The supervisor's side: void every grant of the table (its LUN worker died, hung, or gets a cluster change). */
  voidAll(): void {
    for (let lu = 0; lu < MAX_LU_SLOTS; lu++) if (Atomics.load(this.#w, lu * STRIDE + EPOCH) !== 0) this.invalidate(lu);
  }

  /** Session worker `s` is gone: none of its copies is in progress any more. */
  clearWorker(s: number): void {
    if (s >= MAX_SESSION_WORKERS) return;
    for (let lu = 0; lu < MAX_LU_SLOTS; lu++) Atomics.store(this.#w, lu * STRIDE + INFLIGHT + s, 0);
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

  /**
   * How unit `lu` is served (set when it opens, before the invalidation that first lets
   * grants out; NONE at close, after the last one). A descriptor is published only
   * while grants can be valid, and a close invalidates first: a session worker never
   * uses one after the store closed it.
   */
  setKind(lu: number, kind: InlineKind, fd = -1): void {
    if (lu >= MAX_LU_SLOTS) return;
    Atomics.store(this.#w, lu * STRIDE + FD, fd);
    Atomics.store(this.#w, lu * STRIDE + KIND, kind);
  }

  kind(lu: number): number {
    return Atomics.load(this.#w, lu * STRIDE + KIND);
  }

  fd(lu: number): number {
    return Atomics.load(this.#w, lu * STRIDE + FD);
  }

  /** The unit's RAM was (re)allocated: its new generation, sent along with the memory. */
  nextMemoryGeneration(lu: number): number {
    if (lu >= MAX_LU_SLOTS) return 0;
    return Atomics.add(this.#w, lu * STRIDE + MEMORY_GEN, 1) + 1;
  }

  // ---- a session worker's side ----

  /**
   * Session worker `s` enters a inline command on unit `lu` under `grant`: true when the
   * grant still holds (then end() must follow the copy), false when it is void (nothing
   * to undo).
   */
  begin(lu: number, grant: number, s: number): boolean {
    const w = this.#w;
    const base = lu * STRIDE;
    Atomics.add(w, base + INFLIGHT + s, 1);
    if (Atomics.load(w, base + EPOCH) === grant) return true;
    Atomics.sub(w, base + INFLIGHT + s, 1);
    return false;
  }

  end(lu: number, s: number): void {
    Atomics.sub(this.#w, lu * STRIDE + INFLIGHT + s, 1);
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
