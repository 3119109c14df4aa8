/**
 * A backing store: the bytes behind a logical unit (file, block device, RAM, nothing).
 *
 * Callbacks instead of promises keep the hot path free of per-I/O allocation: callers
 * pass a callback bound once (ScsiCommand.ioTrampoline). A store may call back
 * synchronously (RAM does); callers must not rely on the call returning first.
 *
 * Alignment: a direct-I/O store (O_DIRECT, file-store.ts) moves data between the medium
 * and the caller's buffer itself only when the buffer address, the length and the
 * position are multiples of `alignment`; anything else is copied through an aligned
 * bounce buffer (direct-io.ts), correct but one copy slower. Command data (session
 * slabs) and the LUN worker's scratch chunks (aligned-pool.ts) are page aligned, so a
 * bounce only happens for transfers that are not whole blocks (an EDTL that ends inside
 * a block) or for a buffer someone forgot to take from the pool: `bounced` counts them,
 * and tests assert the internal paths never need one.
 */
import type { BlockDeviceInfo } from './block-device.ts';

export type IoCallback = (err: NodeJS.ErrnoException | null) => void;

export interface BackingStore {
  /** Size in bytes; a multiple of the logical block size. Grows with grow(). */
  readonly sizeBytes: number;
  /**
   * Requests issued and not yet called back. The LU-wide exclusive gate (COMPARE AND
   * WRITE, WRITE ATOMIC) waits for 0; a synchronous store is always at 0.
   */
  readonly inFlight: number;
  /** O_DIRECT I/O: no host page cache between the LU and the medium (absent: false). */
  readonly direct?: boolean;
  /** Bytes every buffer address, length and position must be a multiple of to avoid a bounce (1: none). */
  readonly alignment: number;
  /** Requests that were copied through a bounce buffer (always 0 on stores without alignment). */
  readonly bounced: number;
  /** What a block device reports about itself (queue attributes, block-device.ts); absent for others. */
  readonly device?: BlockDeviceInfo;
  /**
   * Deallocate [position, +length) so that it reads zeros afterwards (a block device that
   * supports it, block-discard.ts). Absent: the store cannot deallocate; callers write
   * zeros instead.
   */
  readonly discard?: (position: number, length: number, cb: IoCallback) => void;
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
