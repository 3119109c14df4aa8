/**
 * A RAM backing store: one zero-filled SharedArrayBuffer of the configured size. I/O is a
 * memcpy and every callback runs synchronously, before the call returns (allowed by
 * BackingStore).
 *
 * Shared memory, not a worker-private Buffer, so the contents outlive the LUN worker: the
 * supervisor keeps a reference (`onMemory`) and hands it to the worker that replaces a
 * crashed one (issue 12: "RAM devices' contents survive").
 */
import type { BackingStore, IoCallback } from './store.ts';

export class RamStore implements BackingStore {
  sizeBytes: number;
  /** Memory copies need no alignment. */
  readonly alignment = 1;
  readonly bounced = 0;
  #mem: Buffer | null;
  #sab: SharedArrayBuffer;
  /** Called with the memory whenever it is (re)allocated (at open and after a grow). */
  onMemory: (memory: SharedArrayBuffer) => void = () => {};

  /** `memory`: the contents kept from an earlier worker (its length is the size). */
  constructor(sizeBytes: number, memory?: SharedArrayBuffer) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)
      throw new RangeError(`invalid RAM store size ${sizeBytes}`);
    if (memory !== undefined && memory.byteLength !== sizeBytes)
      throw new RangeError(`RAM store memory is ${memory.byteLength} bytes, not ${sizeBytes}`);
    this.sizeBytes = sizeBytes;
    // A new SharedArrayBuffer is zero-filled: a fresh RAM disk reads as zeros.
    this.#sab = memory ?? new SharedArrayBuffer(sizeBytes);
    this.#mem = Buffer.from(this.#sab);
  }

  get memory(): SharedArrayBuffer {
    return this.#sab;
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
   * One new zero-filled shared buffer and a copy: I/O is synchronous, so nothing can be in
   * flight against the old one. Not a hot path (an operator's resize).
   */
  grow(sizeBytes: number): Promise<void> {
    const mem = this.#mem;
    if (mem === null) return Promise.reject(closedError());
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < this.sizeBytes)
      return Promise.reject(new RangeError(`cannot resize a ${this.sizeBytes}-byte RAM store to ${sizeBytes}`));
    if (sizeBytes === this.sizeBytes) return Promise.resolve();
    const sab = new SharedArrayBuffer(sizeBytes);
    const next = Buffer.from(sab);
    mem.copy(next, 0, 0, this.sizeBytes);
    this.#mem = next;
    this.#sab = sab;
    this.sizeBytes = sizeBytes;
    this.onMemory(sab);
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
