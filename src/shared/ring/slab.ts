/**
 * Payload slab: a SharedArrayBuffer from which a session worker carves the data
 * buffers of its commands. The LUN worker reads from and writes into the same memory,
 * so READ data goes backing store -> slab -> socket and WRITE data socket chunk ->
 * slab -> backing store, with no copy between threads.
 *
 * Ownership: only the owning session worker allocates and frees (single thread, so no
 * lock); the LUN worker only touches the bytes of a buffer while it holds the command.
 *
 * Allocator: a binary buddy system over `size` bytes with a `minBlock` granule.
 * alloc/free are O(levels) and allocation-free: free lists are intrusive stacks in
 * preallocated Int32Arrays, block state in a Uint8Array indexed by block number.
 */
export class Slab {
  readonly sab: SharedArrayBuffer;
  readonly size: number;
  readonly minBlock: number;
  private readonly levels: number; // level 0 = whole slab, level levels-1 = minBlock
  private readonly minShift: number;
  // Per level: a stack of free block indexes (index within that level).
  private readonly freeStacks: Int32Array[];
  private readonly freeTop: Int32Array;
  // Position of each block in its level's free stack (-1 when not free), per level.
  private readonly freePos: Int32Array[];
  // Level each allocated block (by minBlock granule of its offset) was allocated at; -1 free.
  private readonly allocLevel: Int8Array;
  private bytesInUse = 0;

  constructor(size: number, minBlock = 4096, sab?: SharedArrayBuffer) {
    if (
      !Number.isInteger(size) ||
      !Number.isInteger(minBlock) ||
      size <= 0 ||
      minBlock <= 0 ||
      size > 2 ** 31 || // offsets and block sizes are handled with 32-bit >>> / &
      (size & (size - 1)) !== 0 ||
      (minBlock & (minBlock - 1)) !== 0 ||
      minBlock > size
    ) {
      throw new RangeError('slab size and minBlock must be powers of two, minBlock <= size');
    }
    this.sab = sab ?? new SharedArrayBuffer(size);
    this.size = size;
    this.minBlock = minBlock;
    this.minShift = Math.log2(minBlock);
    this.levels = Math.log2(size / minBlock) + 1;
    this.freeStacks = [];
    this.freePos = [];
    this.freeTop = new Int32Array(this.levels);
    for (let l = 0; l < this.levels; l++) {
      this.freeStacks.push(new Int32Array(1 << l));
      this.freePos.push(new Int32Array(1 << l).fill(-1));
    }
    this.allocLevel = new Int8Array(size / minBlock).fill(-1);
    this.pushFree(0, 0);
  }

  /** Bytes currently allocated (rounded up to blocks). */
  get inUse(): number {
    return this.bytesInUse;
  }

  /** Largest request alloc() can ever satisfy. */
  get maxAlloc(): number {
    return this.size;
  }

  /** Offset of a block of at least `length` bytes, or -1 when none is free now. */
  alloc(length: number): number {
    const want = this.levelFor(length);
    if (want < 0) return -1;
    let l = want;
    while (l >= 0 && this.freeTop[l] === 0) l--;
    if (l < 0) return -1;
    let block = this.popFree(l);
    // Split down to the wanted level, keeping the left half and freeing the right.
    while (l < want) {
      l++;
      block <<= 1;
      this.pushFree(l, block + 1);
    }
    const offset = block * (this.size >>> want);
    this.allocLevel[offset >>> this.minShift] = want;
    this.bytesInUse += this.size >>> want;
    return offset;
  }

  /** Return a block obtained from alloc(). */
  free(offset: number): void {
    // Only the exact start of a live block is accepted: an offset past the end read
    // allocLevel[] as undefined (and freed a whole slab's worth of accounting), and a
    // misaligned offset inside a live block's first granule freed it at a fractional
    // block index, corrupting the free lists.
    if (
      !Number.isInteger(offset) ||
      offset < 0 ||
      offset >= this.size ||
      (offset & (this.minBlock - 1)) !== 0
    ) {
      throw new Error(`slab: bad offset ${offset}`);
    }
    const granule = offset >>> this.minShift;
    let l = this.allocLevel[granule]!;
    if (l < 0) throw new Error(`slab: double free or bad offset ${offset}`);
    this.allocLevel[granule] = -1;
    this.bytesInUse -= this.size >>> l;
    let block = offset / (this.size >>> l);
    // Merge with the buddy while it is free.
    while (l > 0) {
      const buddy = block ^ 1;
      if (this.freePos[l]![buddy]! < 0) break;
      this.removeFree(l, buddy);
      block >>= 1;
      l--;
    }
    this.pushFree(l, block);
  }

  /** Size of the block that alloc(length) hands out. */
  blockSizeFor(length: number): number {
    const l = this.levelFor(length);
    return l < 0 ? -1 : this.size >>> l;
  }

  private levelFor(length: number): number {
    if (length > this.size) return -1;
    let l = this.levels - 1;
    let blockSize = this.minBlock;
    while (blockSize < length) {
      blockSize *= 2;
      l--;
    }
    return l;
  }

  private pushFree(level: number, block: number): void {
    const top = this.freeTop[level]!;
    this.freeStacks[level]![top] = block;
    this.freePos[level]![block] = top;
    this.freeTop[level] = top + 1;
  }

  private popFree(level: number): number {
    const top = this.freeTop[level]! - 1;
    const block = this.freeStacks[level]![top]!;
    this.freeTop[level] = top;
    this.freePos[level]![block] = -1;
    return block;
  }

  private removeFree(level: number, block: number): void {
    const pos = this.freePos[level]![block]!;
    const top = this.freeTop[level]! - 1;
    const moved = this.freeStacks[level]![top]!;
    this.freeStacks[level]![pos] = moved;
    this.freePos[level]![moved] = pos;
    this.freeTop[level] = top;
    this.freePos[level]![block] = -1;
  }
}
