/**
 * Inline I/O: how a session worker may serve a READ or WRITE of a RAM disk or a
 * page-cached file itself, without the hop to the LUN worker that owns the logical unit,
 * and still obey every rule that LUN worker enforces (issue 13: "fewer thread hops for
 * commands the session worker can answer").
 *
 * The LUN worker stays the only owner of the unit's state. What it shares is a promise
 * with a version: a READ or WRITE it completed with GOOD for an I_T nexus carries a
 * *grant*, the unit's epoch at that moment, back on the completion ring. The grant says:
 * "at this epoch nothing stands between this nexus and commands of this kind on this
 * unit": no pending unit attention, no reservation conflict, an accessible port group,
 * the unit ready (and writable, thick, and for a file write-back, for WRITEs), no
 * exclusive command (COMPARE AND WRITE, another node's hold) waiting or running, no
 * ORDERED or HEAD OF QUEUE command and no ACA condition in the task set. Whatever could
 * change one of those answers moves the epoch first (invalidate), so every grant given
 * before it is void at once: the next command goes the long way, and its completion
 * brings a new grant if the answer is yes again.
 *
 * A session worker serving a command raises its own INFLIGHT word, then compares the
 * epoch (Atomics: sequentially consistent), and lowers the word when its copy (a memcpy,
 * or a pread/pwrite on the page cache) is done, always (try/finally). invalidate() moves
 * the epoch, then waits until every INFLIGHT word is zero, however long that takes.
 * Either the session worker sees the new epoch and backs off, or the LUN worker sees it
 * and waits: a copy never overlaps a change that voided its grant (Dekker's pattern).
 * So a COMPARE AND WRITE, a reservation change's fencing (DESIGN.md "Fencing") or a
 * sanitize starts with no inline WRITE still landing. There is no time limit on purpose:
 * a pwrite held up by the kernel (a frozen file system, dirty-page throttling) must not
 * land after a change it was fenced by; the LUN worker's own I/O waits the same way.
 *
 * One table per LUN worker, allocated by the supervisor and kept when the worker is
 * replaced. The supervisor moves every epoch of the table itself (voidAll, which does
 * not wait) when the worker dies or hangs, and before it hands the worker a change from
 * the cluster (another node's reservation change, hold or reset, port group states): a
 * worker that cannot act on the change must leave nothing served under the old state.
 * A dead session worker's INFLIGHT words are cleared (clearWorker). The successor LUN
 * worker invalidates every unit it opens. Int32 words per unit index (the topology's
 * luIndex, below MAX_LU_SLOTS; units above it never grant):
 *
 *   +0 EPOCH       moved by invalidate(); a grant is a copy of it (never 0)
 *   +1 MEMORY_GEN  generation of a RAM disk's memory (bumped when it is replaced)
 *   +2 BLOCK_SHIFT log2(logical block size)
 *   +3 BLOCKS_LO   capacity in logical blocks, low 32 bits
 *   +4 BLOCKS_HI   and high bits
 *   +5 KIND        what the session worker copies from and to (InlineKind)
 *   +6, +7         reserved
 *   +8 + s         INFLIGHT of session worker s: inline commands it is serving now (one
 *                  word per worker, so a dead worker's share can be cleared)
 */
import { MAX_LU_SLOTS } from '../unit-slots.ts';

/** Session workers a table has INFLIGHT words for (config `workers.session` is at most 64). */
export const MAX_SESSION_WORKERS = 64;
const EPOCH = 0;
const MEMORY_GEN = 1;
const BLOCK_SHIFT = 2;
const BLOCKS_LO = 3;
const BLOCKS_HI = 4;
const KIND = 5;
const INFLIGHT = 8;

/**
 * How a unit is served inline: not at all, from RAM (its shared memory), from a buffered
 * file (through a descriptor the session worker opened itself on the same file: the
 * page cache is the same, and no descriptor of the LUN worker's is ever used elsewhere).
 */
export const InlineKind = { NONE: 0, RAM: 1, FILE: 2 } as const;
export type InlineKind = (typeof InlineKind)[keyof typeof InlineKind];
const STRIDE = INFLIGHT + MAX_SESSION_WORKERS;

export const INLINE_GRANTS_BYTES = MAX_LU_SLOTS * STRIDE * 4;

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
    const base = lu * STRIDE;
    this.#move(base);
    while (this.#copying(base)) {
      // spin: a session worker is in the middle of one copy (see the file comment)
    }
  }

  #move(base: number): void {
    // Skip 0: a grant of 0 means "none" on the completion ring.
    if (Atomics.add(this.#w, base + EPOCH, 1) === -1) Atomics.add(this.#w, base + EPOCH, 1);
  }

  #copying(base: number): boolean {
    const w = this.#w;
    for (let s = 0; s < MAX_SESSION_WORKERS; s++) if (Atomics.load(w, base + INFLIGHT + s) !== 0) return true;
    return false;
  }

  /**
   * The supervisor's side: void every grant of the table (its LUN worker died, hung, or
   * gets a cluster change). It does not wait for copies in progress: the supervisor's
   * thread must not block, and the LUN worker waits them out itself before it applies
   * the change (or its successor, before it serves).
   */
  voidAll(): void {
    for (let lu = 0; lu < MAX_LU_SLOTS; lu++) if (Atomics.load(this.#w, lu * STRIDE + EPOCH) !== 0) this.#move(lu * STRIDE);
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

  /** How unit `lu` is served (set when it opens, before the invalidation that first lets grants out; NONE at close). */
  setKind(lu: number, kind: InlineKind): void {
    if (lu >= MAX_LU_SLOTS) return;
    Atomics.store(this.#w, lu * STRIDE + KIND, kind);
  }

  kind(lu: number): number {
    return Atomics.load(this.#w, lu * STRIDE + KIND);
  }

  /** The unit's RAM was (re)allocated: its new generation, sent along with the memory. */
  nextMemoryGeneration(lu: number): number {
    if (lu >= MAX_LU_SLOTS) return 0;
    return Atomics.add(this.#w, lu * STRIDE + MEMORY_GEN, 1) + 1;
  }

  // ---- a session worker's side ----

  /**
   * Session worker `s` enters an inline command on unit `lu` under `grant`: true when the
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
