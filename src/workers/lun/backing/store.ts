/**
 * A backing store: the bytes behind a logical unit (file, block device or RAM).
 *
 * Callbacks instead of promises keep the hot path free of per-I/O allocation: callers
 * pass a callback bound once (ScsiCommand.ioTrampoline). A store may call back
 * synchronously (RAM does); callers must not rely on the call returning first.
 */
export type IoCallback = (err: NodeJS.ErrnoException | null) => void;

export interface BackingStore {
  /** Size in bytes; a multiple of the logical block size. Grows with grow(). */
  readonly sizeBytes: number;
  /**
   * Requests issued and not yet called back. The LU-wide exclusive gate (COMPARE AND
   * WRITE, WRITE ATOMIC) waits for 0; a synchronous store is always at 0.
   */
  readonly inFlight: number;
  /** Read `length` bytes at `position` into dst[dstOffset ...]. Short reads past EOF read zeros. */
  read(dst: Buffer, dstOffset: number, length: number, position: number, cb: IoCallback): void;
  /**
   * Write src[srcOffset, +length) at `position`. When `durable` is true (FUA, or the
   * device is write-through) the data is on stable storage before cb runs.
   */
  write(src: Buffer, srcOffset: number, length: number, position: number, durable: boolean, cb: IoCallback): void;
  /** Make every completed write durable (SYNCHRONIZE CACHE). */
  flush(cb: IoCallback): void;
  /**
   * Grow the store to `sizeBytes` (a runtime resize, configuration reload). Never
   * shrinks: the bytes initiators wrote stay where they are; the new range reads zeros.
   */
  grow(sizeBytes: number): Promise<void>;
  /** Flush and release resources. */
  close(): Promise<void>;
}
