/**
 * The null backing store: no medium at all. Reads return zeros, writes are acknowledged
 * and dropped, flushes succeed at once. Every callback runs synchronously.
 *
 * What it is for: measuring the protocol path (iSCSI, rings, SCSI emulation) with the
 * backing store taken out, as tgt's `--bstype null` does (bench/run.ts runs both). A
 * `null` device is otherwise an ordinary disk: every command is parsed and checked, LBA
 * ranges against its configured size, so initiators see a disk that forgets.
 */
import type { BackingStore, IoCallback } from './store.ts';

export class NullStore implements BackingStore {
  sizeBytes: number;
  readonly alignment = 1;
  readonly bounced = 0;
  #closed = false;

  constructor(sizeBytes: number) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)
      throw new RangeError(`invalid null store size ${sizeBytes}`);
    this.sizeBytes = sizeBytes;
  }

  read(dst: Buffer, dstOffset: number, length: number, _position: number, cb: IoCallback): void {
    if (this.#closed) return cb(closedError());
    dst.fill(0, dstOffset, dstOffset + length);
    cb(null);
  }

  write(
    _src: Buffer,
    _srcOffset: number,
    _length: number,
    _position: number,
    _durable: boolean,
    cb: IoCallback,
  ): void {
    cb(this.#closed ? closedError() : null);
  }

  flush(cb: IoCallback): void {
    cb(this.#closed ? closedError() : null);
  }

  /** Nothing is ever in flight: every callback runs before the call returns. */
  get inFlight(): number {
    return 0;
  }

  grow(sizeBytes: number): Promise<void> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < this.sizeBytes)
      return Promise.reject(
        new RangeError(`cannot resize a ${this.sizeBytes}-byte null store to ${sizeBytes}`),
      );
    this.sizeBytes = sizeBytes;
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

function closedError(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('null store is closed');
  err.code = 'EBADF';
  return err;
}
