/**
 * A RAM backing store: one zero-filled Buffer of the configured size. I/O is a memcpy and
 * every callback runs synchronously, before the call returns (allowed by BackingStore).
 */
import type { BackingStore, IoCallback } from './store.ts';

export class RamStore implements BackingStore {
  sizeBytes: number;
  /** Memory copies need no alignment. */
  readonly alignment = 1;
  readonly bounced = 0;
  #mem: Buffer | null;

  constructor(sizeBytes: number) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)
      throw new RangeError(`invalid RAM store size ${sizeBytes}`);
    this.sizeBytes = sizeBytes;
    // Buffer.alloc zero-fills: a fresh RAM disk reads as zeros.
    this.#mem = Buffer.alloc(sizeBytes);
  }

  read(dst: Buffer, dstOffset: number, length: number, position: number, cb: IoCallback): void {
    const mem = this.#mem;
    if (mem === null) return cb(closedError());
    if (position < 0 || length < 0 || dstOffset + length > dst.length) return cb(rangeError());
    const end = position + length;
    const inside = end <= this.sizeBytes ? end : this.sizeBytes;
    let copied = 0;
    if (position < inside) copied = mem.copy(dst, dstOffset, position, inside);
    // Past the end reads zeros (BackingStore.read contract).
    if (copied < length) dst.fill(0, dstOffset + copied, dstOffset + length);
    cb(null);
  }

  write(
    src: Buffer,
    srcOffset: number,
    length: number,
    position: number,
    _durable: boolean,
    cb: IoCallback,
  ): void {
    const mem = this.#mem;
    if (mem === null) return cb(closedError());
    if (position < 0 || length < 0 || srcOffset + length > src.length || position + length > this.sizeBytes) {
      return cb(rangeError());
    }
    // RAM is as durable as it gets: `durable` needs nothing more.
    src.copy(mem, position, srcOffset, srcOffset + length);
    cb(null);
  }

  flush(cb: IoCallback): void {
    cb(this.#mem === null ? closedError() : null);
  }

  /** Every callback runs before the call returns: nothing is ever in flight. */
  get inFlight(): number {
    return 0;
  }

  /**
   * One new zero-filled buffer and a copy: I/O is synchronous, so nothing can be in
   * flight against the old one. Not a hot path (an operator's resize).
   */
  grow(sizeBytes: number): Promise<void> {
    const mem = this.#mem;
    if (mem === null) return Promise.reject(closedError());
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < this.sizeBytes)
      return Promise.reject(new RangeError(`cannot resize a ${this.sizeBytes}-byte RAM store to ${sizeBytes}`));
    if (sizeBytes === this.sizeBytes) return Promise.resolve();
    const next = Buffer.alloc(sizeBytes);
    mem.copy(next, 0, 0, this.sizeBytes);
    this.#mem = next;
    this.sizeBytes = sizeBytes;
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#mem = null;
    return Promise.resolve();
  }
}

function rangeError(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new RangeError('I/O outside the RAM store');
  err.code = 'ERANGE';
  return err;
}

function closedError(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('RAM store is closed');
  err.code = 'EBADF';
  return err;
}
