/**
 * Single-producer / single-consumer ring of fixed-size binary descriptors in a
 * SharedArrayBuffer. Wait-free; the roles are fixed when the ring is created: exactly
 * one thread calls the producer methods, exactly one other the consumer methods.
 *
 * Layout:
 *
 *   byte 0    head  (Int32)  next entry the producer will write; written by producer only
 *   byte 64   tail  (Int32)  next entry the consumer will read;  written by consumer only
 *   byte 128  entries[capacity], each `entryBytes` long
 *
 * head and tail are free-running 32-bit counters (they wrap; `(head - tail) | 0` is the
 * fill level as long as capacity < 2^31). They live on separate 64-byte lines so the
 * producer's and consumer's stores do not false-share.
 *
 * Ordering: the producer writes the entry bytes, then Atomics.store(head) ("publish");
 * the consumer Atomics.load(head) before reading entry bytes. Sequentially consistent
 * atomics order the plain byte writes before the index store, so the consumer never
 * sees a published entry half-written. Symmetrically the consumer reads the entry,
 * then Atomics.store(tail) so the producer never overwrites an entry still being read.
 */
const HEAD = 0;
const TAIL = 16;
const HEADER_BYTES = 128;

export class SpscRing {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
  readonly entryBytes: number;
  /** Entry bytes, indexed from 0 = first entry. Callers read/write through these views. */
  readonly bytes: Uint8Array;
  readonly view: DataView;
  private readonly idx: Int32Array;
  private readonly mask: number;
  // Cached counters: each side keeps its own index locally and re-reads the other's
  // only when its cached copy says the ring is full/empty (fewer atomic loads).
  // The producer's stale copy of tail and the consumer's stale copy of head are kept
  // apart and both start at the values read from the header, so that a stale copy
  // only ever under-estimates free space / published entries. (One shared field
  // starting at 0 let a consumer attached to a ring whose counters are non-zero
  // read an empty ring's garbage, and a producer overwrite a full ring's unread
  // entries once head had wrapped negative.)
  private localHead = 0;
  private localTail = 0;
  private cachedTail = 0; // producer side
  private cachedHead = 0; // consumer side

  static byteLength(capacity: number, entryBytes: number): number {
    return HEADER_BYTES + capacity * entryBytes;
  }

  /**
   * Entries published and not yet released in the ring `sab`, read from any thread (the
   * metrics exporter): both indexes are loaded atomically, so the value is one the ring
   * had at some moment between the two loads.
   */
  static fillOf(sab: SharedArrayBuffer): number {
    const idx = new Int32Array(sab, 0, HEADER_BYTES / 4);
    return (Atomics.load(idx, HEAD) - Atomics.load(idx, TAIL)) | 0;
  }

  static create(capacity: number, entryBytes: number): SpscRing {
    SpscRing.check(capacity, entryBytes);
    return new SpscRing(new SharedArrayBuffer(SpscRing.byteLength(capacity, entryBytes)), capacity, entryBytes);
  }

  private static check(capacity: number, entryBytes: number): void {
    if (
      !Number.isInteger(capacity) ||
      capacity < 2 ||
      (capacity & (capacity - 1)) !== 0 ||
      capacity > 1 << 20
    ) {
      throw new RangeError(`ring capacity must be a power of two in [2, 2^20], got ${capacity}`);
    }
    if (!Number.isInteger(entryBytes) || entryBytes <= 0 || entryBytes % 8 !== 0) {
      throw new RangeError('entryBytes must be a positive multiple of 8');
    }
  }

  constructor(sab: SharedArrayBuffer, capacity: number, entryBytes: number) {
    SpscRing.check(capacity, entryBytes);
    if (sab.byteLength !== SpscRing.byteLength(capacity, entryBytes)) {
      throw new RangeError('ring buffer size does not match capacity x entryBytes');
    }
    this.sab = sab;
    this.capacity = capacity;
    this.entryBytes = entryBytes;
    this.mask = capacity - 1;
    this.idx = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.bytes = new Uint8Array(sab, HEADER_BYTES);
    this.view = new DataView(sab, HEADER_BYTES);
    this.localHead = Atomics.load(this.idx, HEAD);
    this.localTail = Atomics.load(this.idx, TAIL);
    this.cachedTail = this.localTail;
    this.cachedHead = this.localHead;
  }

  // ---- producer side ----

  /**
   * Byte offset (into `bytes`/`view`) of the next free entry, or -1 when the ring is
   * full (backpressure). Does not publish: write the entry, then call publish().
   */
  reserve(): number {
    if (((this.localHead - this.cachedTail) | 0) >= this.capacity) {
      this.cachedTail = Atomics.load(this.idx, TAIL);
      if (((this.localHead - this.cachedTail) | 0) >= this.capacity) return -1;
    }
    return (this.localHead & this.mask) * this.entryBytes;
  }

  /** Make the entry returned by the last reserve() visible to the consumer. */
  publish(): void {
    this.localHead = (this.localHead + 1) | 0;
    Atomics.store(this.idx, HEAD, this.localHead);
  }

  /** Entries the producer may still reserve before the ring is full (approximate). */
  freeSlots(): number {
    this.cachedTail = Atomics.load(this.idx, TAIL);
    return this.capacity - ((this.localHead - this.cachedTail) | 0);
  }

  // ---- consumer side ----

  /** Byte offset of the oldest unread entry, or -1 when empty. */
  peek(): number {
    if (this.localTail === this.cachedHead) {
      this.cachedHead = Atomics.load(this.idx, HEAD);
      if (this.localTail === this.cachedHead) return -1;
    }
    return (this.localTail & this.mask) * this.entryBytes;
  }

  /** Release the entry returned by the last peek() back to the producer. */
  release(): void {
    this.localTail = (this.localTail + 1) | 0;
    Atomics.store(this.idx, TAIL, this.localTail);
  }

  /** True when no published entry is waiting (consumer side, fresh read). */
  isEmpty(): boolean {
    return this.localTail === Atomics.load(this.idx, HEAD);
  }
}
