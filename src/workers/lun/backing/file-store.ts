/**
 * A file backing store: a regular file, created and grown (ftruncate) to the configured
 * size, read and written with positional I/O on the libuv thread pool.
 *
 * Durability: writes that must be durable (FUA, or a write-through device) go through a
 * second descriptor opened with O_DSYNC. Each such write is then one pwrite that returns
 * when its own data (and the metadata needed to read it back) is stable: one thread-pool
 * round trip instead of two (pwrite, then fdatasync), and it does not wait for unrelated
 * write-back data of other commands, which an fdatasync of the whole file would flush.
 * SYNCHRONIZE CACHE (flush) is fdatasync on the main descriptor. Both descriptors see
 * the same page cache, so reads are coherent with either kind of write.
 * Measured here (ext4 on virtio, 4 KiB writes, queue depth 8, Node 26): both schemes
 * give 10-20k IOPS with run-to-run noise larger than their difference, so the choice
 * rests on the two arguments above; revisit on real disks with the bench suite.
 *
 * Hot path: requests are pooled FileRequest objects whose fs callbacks are bound once,
 * so an I/O allocates nothing on the JavaScript side (libuv's request wrapper aside).
 */
import fs from 'node:fs';
import type { BackingStore, IoCallback } from './store.ts';

const { O_RDWR, O_CREAT, O_DSYNC } = fs.constants;

/** One in-flight read or write; resumes short transfers until done. */
class FileRequest {
  readonly store: FileStore;
  buf: Buffer | null = null;
  offset = 0;
  remaining = 0;
  position = 0;
  cb: IoCallback | null = null;
  /** Bound once: fs callbacks for the read, write and resume steps. */
  readonly onRead: (err: NodeJS.ErrnoException | null, bytes: number) => void;
  readonly onWrite: (err: NodeJS.ErrnoException | null, bytes: number) => void;
  writeFd = -1;

  constructor(store: FileStore) {
    this.store = store;
    this.onRead = (err, bytes) => {
      if (err !== null) return this.done(err);
      if (bytes === 0) {
        // EOF inside the configured size (the file shrank under us): zeros, per contract.
        this.buf!.fill(0, this.offset, this.offset + this.remaining);
        return this.done(null);
      }
      this.offset += bytes;
      this.position += bytes;
      this.remaining -= bytes;
      if (this.remaining > 0) return this.issueRead();
      this.done(null);
    };
    this.onWrite = (err, bytes) => {
      if (err !== null) return this.done(err);
      this.offset += bytes;
      this.position += bytes;
      this.remaining -= bytes;
      if (this.remaining > 0) return this.issueWrite();
      this.done(null);
    };
  }

  issueRead(): void {
    fs.read(this.store.fd, this.buf!, this.offset, this.remaining, this.position, this.onRead);
  }

  issueWrite(): void {
    fs.write(this.writeFd, this.buf!, this.offset, this.remaining, this.position, this.onWrite);
  }

  done(err: NodeJS.ErrnoException | null): void {
    const cb = this.cb!;
    this.buf = null;
    this.cb = null;
    this.store.release(this);
    cb(err);
  }
}

export class FileStore implements BackingStore {
  sizeBytes: number;
  readonly path: string;
  /** Main descriptor: reads, write-back writes, fdatasync. */
  fd: number;
  /** O_DSYNC descriptor for durable writes. */
  dsyncFd: number;
  readonly #pool: FileRequest[] = [];
  #inFlight = 0;
  #closed = false;

  private constructor(path: string, sizeBytes: number, fd: number, dsyncFd: number) {
    this.path = path;
    this.sizeBytes = sizeBytes;
    this.fd = fd;
    this.dsyncFd = dsyncFd;
  }

  /**
   * Open (creating if needed) `path` and make it at least `sizeBytes` long. A larger
   * existing file is left as is; only its first `sizeBytes` are used.
   */
  static async open(path: string, sizeBytes: number): Promise<FileStore> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)
      throw new RangeError(`invalid file store size ${sizeBytes}`);
    const fd = await openFd(path, O_RDWR | O_CREAT);
    let dsyncFd = -1;
    try {
      const st = await fstat(fd);
      if (!st.isFile() && !st.isBlockDevice())
        throw new Error(`${path} is neither a regular file nor a block device`);
      if (st.isFile() && st.size < sizeBytes) await ftruncate(fd, sizeBytes);
      dsyncFd = await openFd(path, O_RDWR | O_DSYNC);
    } catch (err) {
      await closeFd(fd);
      throw err;
    }
    return new FileStore(path, sizeBytes, fd, dsyncFd);
  }

  read(dst: Buffer, dstOffset: number, length: number, position: number, cb: IoCallback): void {
    if (this.#closed) return cb(badf());
    if (length === 0) return cb(null);
    if (position + length > this.sizeBytes) {
      // Past the configured size reads zeros (contract); read what is inside.
      const inside = position < this.sizeBytes ? this.sizeBytes - position : 0;
      dst.fill(0, dstOffset + inside, dstOffset + length);
      if (inside === 0) return cb(null);
      length = inside;
    }
    const req = this.#acquire();
    req.buf = dst;
    req.offset = dstOffset;
    req.remaining = length;
    req.position = position;
    req.cb = cb;
    req.issueRead();
  }

  write(
    src: Buffer,
    srcOffset: number,
    length: number,
    position: number,
    durable: boolean,
    cb: IoCallback,
  ): void {
    if (this.#closed) return cb(badf());
    if (position + length > this.sizeBytes) {
      const err: NodeJS.ErrnoException = new RangeError('write past the end of the file store');
      err.code = 'ENOSPC';
      return cb(err);
    }
    if (length === 0) return cb(null);
    const req = this.#acquire();
    req.buf = src;
    req.offset = srcOffset;
    req.remaining = length;
    req.position = position;
    req.writeFd = durable ? this.dsyncFd : this.fd;
    req.cb = cb;
    req.issueWrite();
  }

  flush(cb: IoCallback): void {
    if (this.#closed) return cb(badf());
    fs.fdatasync(this.fd, cb);
  }

  /**
   * Extend the file (sparse: ftruncate) when it is shorter than `sizeBytes` (a block
   * device is taken at its configured size, as in open()). Requests in flight stay
   * inside the old size, so they are unaffected; later ones may use the new range.
   */
  async grow(sizeBytes: number): Promise<void> {
    if (this.#closed) throw badf();
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < this.sizeBytes)
      throw new RangeError(`cannot resize ${this.path} from ${this.sizeBytes} to ${sizeBytes} bytes`);
    const st = await fstat(this.fd);
    if (st.isFile() && st.size < sizeBytes) await ftruncate(this.fd, sizeBytes);
    this.sizeBytes = sizeBytes;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await new Promise<void>((resolve, reject) =>
      fs.fdatasync(this.fd, (err) => (err ? reject(err) : resolve())),
    );
    await closeFd(this.dsyncFd);
    await closeFd(this.fd);
    this.fd = -1;
    this.dsyncFd = -1;
  }

  /** Requests currently issued to the thread pool (tests, metrics). */
  get inFlight(): number {
    return this.#inFlight;
  }

  #acquire(): FileRequest {
    this.#inFlight++;
    // Allocates only when concurrency exceeds its previous high-water mark.
    return this.#pool.pop() ?? new FileRequest(this);
  }

  /** @internal called by FileRequest when it completes. */
  release(req: FileRequest): void {
    this.#inFlight--;
    this.#pool.push(req);
  }
}

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(path, flags, 0o600, (err, fd) => (err ? reject(err) : resolve(fd))),
  );
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

function fstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
}

function ftruncate(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, len, (err) => (err ? reject(err) : resolve())));
}

function badf(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('file store is closed');
  err.code = 'EBADF';
  return err;
}
