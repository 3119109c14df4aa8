/**
 * A file backing store: a regular file, a block device, or a read-only image (a CD-ROM's
 * ISO file), read and written with positional I/O on the libuv thread pool.
 *
 *   FileStore.openFile   a regular file, created and grown (ftruncate, sparse) to the size
 *   FileStore.openBlock  a block device: size, block sizes, rotation and discard come from
 *                        the device (block-device.ts); a configured size must not exceed it
 *   FileStore.openImage  a regular file opened read-only, sized by the file
 *
 * Durability: writes that must be durable (FUA, or a write-through device) go through a
 * second descriptor opened with O_DSYNC. Each such write is then one pwrite that returns
 * when its own data (and the metadata needed to read it back) is stable: one thread-pool
 * round trip instead of two (pwrite, then fdatasync), and it does not wait for unrelated
 * write-back data of other commands, which an fdatasync of the whole file would flush.
 * SYNCHRONIZE CACHE (flush) is fdatasync on the main descriptor; on a block device that
 * is a cache flush sent to the device (blkdev_fsync), and an O_DSYNC write on it is a FUA
 * write when the device honours FUA. Both descriptors see the same page cache, so reads
 * are coherent with either kind of write.
 * Measured here (ext4 on virtio, 4 KiB writes, queue depth 8, Node 26): both schemes
 * give 10-20k IOPS with run-to-run noise larger than their difference, so the choice
 * rests on the two arguments above; revisit on real disks with the bench suite.
 *
 * Direct I/O (`direct`, O_DIRECT): both descriptors bypass this host's page cache, so a
 * read always comes from the medium. That is what storage shared by cluster nodes needs
 * (another node's write is never hidden behind a stale cached page), and it keeps a big
 * block device from filling the page cache. The kernel then requires aligned buffers,
 * lengths and positions (direct-io.ts explains how unaligned requests are served).
 *
 * Hot path: requests are pooled FileRequest objects whose fs callbacks are bound once,
 * so an I/O allocates nothing on the JavaScript side (libuv's request wrapper aside).
 *
 * Page-cache I/O in place (issue 13). Through the thread pool every request costs two
 * thread hand-offs (a pool thread woken, its completion posted back to the event loop),
 * which doubled the latency of a 4 KiB command at queue depth 1 next to tgtd. A
 * buffered (not O_DIRECT) store therefore runs small reads and write-back writes
 * synchronously on the LUN worker when they are served by the page cache, which takes
 * a few microseconds. Whether they are is learnt, not guessed: each synchronous request
 * is timed, and a third one within SYNC_SLOW_WINDOW in-place requests that took longer
 * than SYNC_SLOW_MS (it went to the disk, or the kernel throttled a dirty-page writer)
 * sends the store's next SYNC_BACKOFF requests to the thread pool, so a disk-bound
 * workload keeps its parallelism and the worker's loop is blocked by at most three slow
 * requests per backoff. Scattered slow ones are forgiven: on a busy host a page-cache
 * copy now and then takes longer (the thread was preempted during it, a journal commit
 * held the inode), and backing off for each sent a fifth to a third of a file LU's
 * queue-depth-1 commands through the pool, two extra hand-offs each. Measured here: 1
 * slow read in ~4000 on a quiet machine, 1 request in ~700 in a bench run of mixed
 * workloads, almost all under 0.6 ms; a disk-bound workload is slow nearly every time.
 * Durable writes (O_DSYNC) always go to the pool: they wait for the medium by
 * definition.
 */
import fs from 'node:fs';
import type { BlockDeviceInfo } from './block-device.ts';
import { blockDeviceSize, probeBlockDevice } from './block-device.ts';
import { canPunchHoles, punchHole } from './block-discard.ts';
import { acquireChunk, releaseChunk } from './aligned-pool.ts';
import { bounceRead, bounceWrite, isAligned, type AlignedIo } from './direct-io.ts';
import type { BackingStore, IoCallback } from './store.ts';

const { O_RDWR, O_RDONLY, O_CREAT, O_DSYNC, O_DIRECT } = fs.constants;

/** Largest request run in place (a page-cache copy of this size takes a few microseconds). */
const SYNC_MAX_BYTES = 128 * 1024;
/** An in-place request slower than this was not served by the page cache. */
const SYNC_SLOW_MS = 0.25;
/** After a third slow in-place request, this many go to the thread pool before trying again. */
const SYNC_BACKOFF = 1024;
/** Three slow in-place requests within this many mean the page cache is not serving them. */
const SYNC_SLOW_WINDOW = 32;

export interface FileStoreOptions {
  /** O_DIRECT on every descriptor. */
  readonly direct: boolean;
  /** The logical block size: the alignment of direct I/O. */
  readonly blockSize: number;
}

export interface BlockStoreOptions extends FileStoreOptions {
  /** Configured size; absent: the whole device. */
  readonly size?: number;
  /** Export only the first `size` bytes of a larger device (asked for explicitly). */
  readonly prefix?: boolean;
  /** Open read-only (the device is configured `readOnly`). */
  readonly readOnly: boolean;
}

/** One in-flight read or write; resumes short transfers until done. */
class FileRequest {
  readonly store: FileStore;
  buf: Buffer | null = null;
  offset = 0;
  remaining = 0;
  position = 0;
  cb: IoCallback | null = null;
  durable = false;
  /** Bound once: fs callbacks for the read, write and resume steps. */
  readonly onRead: (err: NodeJS.ErrnoException | null, bytes: number) => void;
  readonly onWrite: (err: NodeJS.ErrnoException | null, bytes: number) => void;
  writeFd = -1;

  constructor(store: FileStore) {
    this.store = store;
    this.onRead = (err, bytes) => {
      if (err !== null) return this.failed(err, false);
      if (bytes === 0 || (bytes % this.store.alignment !== 0 && bytes < this.remaining)) {
        // EOF inside the configured size (the file shrank under us, or an image whose
        // length is not whole blocks): the rest reads zeros, per contract.
        const from = this.offset + (bytes === 0 ? 0 : bytes);
        this.buf!.fill(0, from, this.offset + this.remaining);
        return this.done(null);
      }
      this.offset += bytes;
      this.position += bytes;
      this.remaining -= bytes;
      if (this.remaining > 0) return this.issueRead();
      this.done(null);
    };
    this.onWrite = (err, bytes) => {
      if (err !== null) return this.failed(err, true);
      this.offset += bytes;
      this.position += bytes;
      this.remaining -= bytes;
      if (this.remaining > 0) return this.issueWrite();
      this.done(null);
    };
  }

  issueRead(): void {
    const s = this.store;
    if (s.inPlace(this.remaining)) return this.runInPlace(false);
    fs.read(s.fd, this.buf!, this.offset, this.remaining, this.position, this.onRead);
  }

  issueWrite(): void {
    if (!this.durable && this.store.inPlace(this.remaining)) return this.runInPlace(true);
    fs.write(this.writeFd, this.buf!, this.offset, this.remaining, this.position, this.onWrite);
  }

  /** The synchronous form of issueRead/issueWrite, timed (see the file comment). */
  private runInPlace(write: boolean): void {
    const s = this.store;
    const t0 = performance.now();
    let n = 0;
    let error: NodeJS.ErrnoException | null = null;
    try {
      n = write
        ? fs.writeSync(this.writeFd, this.buf!, this.offset, this.remaining, this.position)
        : fs.readSync(s.fd, this.buf!, this.offset, this.remaining, this.position);
    } catch (err) {
      error = err as NodeJS.ErrnoException;
    }
    s.tookInPlace(performance.now() - t0);
    if (write) this.onWrite(error, n);
    else this.onRead(error, n);
  }

  /**
   * EINVAL from a direct store with aligned lengths and positions means the buffer's
   * address was not aligned (memory not from aligned-memory.ts): serve the rest through a
   * bounce buffer instead of failing the command. Anything else is the caller's error.
   */
  failed(err: NodeJS.ErrnoException, write: boolean): void {
    const store = this.store;
    if (err.code !== 'EINVAL' || store.alignment === 1 || store.closed) return this.done(err);
    const { buf, offset, remaining, position, cb, durable } = this;
    this.buf = null;
    this.cb = null;
    store.release(this);
    store.misaligned++;
    if (write) store.bounceWrite(buf!, offset, remaining, position, durable, cb!);
    else store.bounceRead(buf!, offset, remaining, position, cb!);
  }

  done(err: NodeJS.ErrnoException | null): void {
    const cb = this.cb!;
    this.buf = null;
    this.cb = null;
    this.store.release(this);
    cb(err);
  }
}

export class FileStore implements BackingStore, AlignedIo {
  /**
   * Page-cache I/O in place (see the file comment). Off (SPINDLE_FILE_IN_PLACE=0, or set
   * by a test) every request goes through the thread pool, so commands on a file LU
   * overlap: what tests of task-set ordering need.
   */
  static inPlaceIo = process.env['SPINDLE_FILE_IN_PLACE'] !== '0';

  sizeBytes: number;
  readonly path: string;
  /** Main descriptor: reads, write-back writes, fdatasync. */
  fd: number;
  /** O_DSYNC descriptor for durable writes (-1 when read-only). */
  dsyncFd: number;
  /** O_DIRECT: no page cache; requests must be aligned to `alignment` or are bounced. */
  readonly direct: boolean;
  readonly alignment: number;
  readonly readOnly: boolean;
  readonly device?: BlockDeviceInfo;
  readonly discard?: (position: number, length: number, cb: IoCallback) => void;
  /** Requests served through a bounce buffer (direct-io.ts). */
  bounced = 0;
  /** Of those, requests whose buffer address turned out unaligned (EINVAL, then bounced). */
  misaligned = 0;
  readonly #pool: FileRequest[] = [];
  #inFlight = 0;
  #closed = false;
  /** Requests still to send to the thread pool after a slow in-place one (see the file comment). */
  #poolOnly = 0;
  /** Requests served in place, and slow ones among them (stats). */
  inPlaceCount = 0;
  inPlaceSlow = 0;
  /** inPlaceCount at the last two slow in-place requests, latest first (-Infinity: none). */
  #slowAt = -Infinity;
  #slowBefore = -Infinity;

  private constructor(
    path: string,
    sizeBytes: number,
    fd: number,
    dsyncFd: number,
    opts: { direct: boolean; alignment: number; readOnly: boolean; device?: BlockDeviceInfo },
  ) {
    this.path = path;
    this.sizeBytes = sizeBytes;
    this.fd = fd;
    this.dsyncFd = dsyncFd;
    this.direct = opts.direct;
    this.alignment = opts.direct ? opts.alignment : 1;
    this.readOnly = opts.readOnly;
    if (opts.device !== undefined) {
      this.device = opts.device;
      if (!opts.readOnly && canPunchHoles(opts.device)) this.discard = (p, l, cb) => this.#discard(p, l, cb);
    }
  }

  /**
   * Open (creating if needed) the regular file `path` and make it at least `sizeBytes`
   * long. A larger existing file is left as is; only its first `sizeBytes` are used.
   */
  static async openFile(path: string, sizeBytes: number, opts: FileStoreOptions): Promise<FileStore> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)
      throw new RangeError(`invalid file store size ${sizeBytes}`);
    const extra = opts.direct ? O_DIRECT : 0;
    const fd = await openFd(path, O_RDWR | O_CREAT | extra, 'file');
    let dsyncFd = -1;
    try {
      const st = await fstat(fd);
      if (st.isBlockDevice())
        throw new Error(
          `${path} is a block device: configure it as \`block: { path }\` (its size, block sizes and direct I/O come from the device)`,
        );
      if (!st.isFile()) throw new Error(`${path} is not a regular file`);
      if (st.size < sizeBytes) await ftruncate(fd, sizeBytes);
      dsyncFd = await openFd(path, O_RDWR | O_DSYNC | extra, 'file');
      const store = new FileStore(path, sizeBytes, fd, dsyncFd, {
        direct: opts.direct,
        alignment: opts.blockSize,
        readOnly: false,
      });
      if (opts.direct) await store.#probeDirect();
      return store;
    } catch (err) {
      await closeFd(fd);
      if (dsyncFd >= 0) await closeFd(dsyncFd);
      throw err;
    }
  }

  /**
   * Open the block device `path`. Its size is the device's (a configured `size` larger
   * than the device is refused; a smaller one only with `prefix`), and its logical block
   * size must be the LU's block size.
   */
  static async openBlock(path: string, opts: BlockStoreOptions): Promise<FileStore> {
    const info = await probeBlockDevice(path);
    const what = `block device ${path} (${info.name})`;
    if (info.logicalBlockSize !== opts.blockSize) {
      throw new Error(
        `${what} has ${info.logicalBlockSize}-byte logical blocks, but the device is configured with blockSize ${opts.blockSize}: set blockSize: ${info.logicalBlockSize}`,
      );
    }
    let sizeBytes = info.sizeBytes;
    if (opts.size !== undefined) {
      if (opts.size > info.sizeBytes) {
        throw new Error(
          `${what} holds ${info.sizeBytes} bytes (${mib(info.sizeBytes)}), less than the configured size ${opts.size} bytes (${mib(opts.size)}): leave size out to export the whole device`,
        );
      }
      if (opts.size < info.sizeBytes && opts.prefix !== true) {
        throw new Error(
          `${what} holds ${info.sizeBytes} bytes (${mib(info.sizeBytes)}), more than the configured size ${opts.size} bytes (${mib(opts.size)}): leave size out to export the whole device, or set prefix: true to export only its first ${opts.size} bytes`,
        );
      }
      sizeBytes = opts.size;
    }
    if (info.readOnly && !opts.readOnly)
      throw new Error(
        `${what} is read-only (its ro attribute is set): configure the device with readOnly: true`,
      );
    const mode = opts.readOnly ? O_RDONLY : O_RDWR;
    const extra = opts.direct ? O_DIRECT : 0;
    const fd = await openFd(path, mode | extra, 'block');
    let dsyncFd = -1;
    try {
      if (!opts.readOnly) dsyncFd = await openFd(path, O_RDWR | O_DSYNC | extra, 'block');
    } catch (err) {
      await closeFd(fd);
      throw err;
    }
    return new FileStore(path, sizeBytes, fd, dsyncFd, {
      direct: opts.direct,
      alignment: Math.max(opts.blockSize, info.dmaAlignment),
      readOnly: opts.readOnly,
      device: info,
    });
  }

  /**
   * Open the regular file `path` read-only (an ISO image); its size is the file's,
   * rounded up to whole blocks (a partial last block reads zeros after the end).
   */
  static async openImage(path: string, opts: FileStoreOptions): Promise<FileStore> {
    const fd = await openFd(path, O_RDONLY | (opts.direct ? O_DIRECT : 0), 'image');
    try {
      const st = await fstat(fd);
      if (!st.isFile()) throw new Error(`${path} is not a regular file (an image file is expected)`);
      const sizeBytes = Math.ceil(st.size / opts.blockSize) * opts.blockSize;
      return new FileStore(path, sizeBytes, fd, -1, {
        direct: opts.direct,
        alignment: opts.blockSize,
        readOnly: true,
      });
    } catch (err) {
      await closeFd(fd);
      throw err;
    }
  }

  /** Closed (tests; a late EINVAL must not retry on a closed store). */
  get closed(): boolean {
    return this.#closed;
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
    if (this.alignment > 1 && !isAligned(this.alignment, dst, dstOffset, length, position))
      return this.bounceRead(dst, dstOffset, length, position, cb);
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
    if (this.readOnly) return cb(erofs(this.path));
    if (position + length > this.sizeBytes) {
      const err: NodeJS.ErrnoException = new RangeError(`write past the end of ${this.path}`);
      err.code = 'ERANGE';
      return cb(err);
    }
    if (length === 0) return cb(null);
    if (this.alignment > 1 && !isAligned(this.alignment, src, srcOffset, length, position))
      return this.bounceWrite(src, srcOffset, length, position, durable, cb);
    const req = this.#acquire();
    req.buf = src;
    req.offset = srcOffset;
    req.remaining = length;
    req.position = position;
    req.durable = durable;
    req.writeFd = durable ? this.dsyncFd : this.fd;
    req.cb = cb;
    req.issueWrite();
  }

  flush(cb: IoCallback): void {
    if (this.#closed) return cb(badf());
    if (this.readOnly) return cb(null);
    fs.fdatasync(this.fd, cb);
  }

  /** @internal an unaligned read (direct-io.ts); counted in flight like any request. */
  bounceRead(dst: Buffer, dstOffset: number, length: number, position: number, cb: IoCallback): void {
    this.bounced++;
    this.#inFlight++;
    bounceRead(this, dst, dstOffset, length, position).then(
      () => this.#bounceDone(cb, null),
      (err: NodeJS.ErrnoException) => this.#bounceDone(cb, err),
    );
  }

  /** @internal an unaligned write (direct-io.ts). */
  bounceWrite(
    src: Buffer,
    srcOffset: number,
    length: number,
    position: number,
    durable: boolean,
    cb: IoCallback,
  ): void {
    this.bounced++;
    this.#inFlight++;
    bounceWrite(this, src, srcOffset, length, position, durable).then(
      () => this.#bounceDone(cb, null),
      (err: NodeJS.ErrnoException) => this.#bounceDone(cb, err),
    );
  }

  #bounceDone(cb: IoCallback, err: NodeJS.ErrnoException | null): void {
    this.#inFlight--;
    cb(err);
  }

  /** AlignedIo: an aligned read of exactly [position, +length), zeros past the end of the file. */
  async readAligned(buf: Buffer, offset: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length) {
      const n = await readFd(this.fd, buf, offset + done, length - done, position + done);
      if (n === 0 || n % this.alignment !== 0) {
        buf.fill(0, offset + done + n, offset + length);
        return;
      }
      done += n;
    }
  }

  /** AlignedIo: an aligned write. */
  async writeAligned(
    buf: Buffer,
    offset: number,
    length: number,
    position: number,
    durable: boolean,
  ): Promise<void> {
    const fd = durable ? this.dsyncFd : this.fd;
    let done = 0;
    while (done < length) done += await writeFd(fd, buf, offset + done, length - done, position + done);
  }

  #discard(position: number, length: number, cb: IoCallback): void {
    if (this.#closed) return cb(badf());
    this.#inFlight++;
    punchHole(this.path, position, length, (err) => {
      this.#inFlight--;
      cb(err);
    });
  }

  /**
   * Grow to `sizeBytes`: a file is extended (sparse: ftruncate) when shorter; a block
   * device must already be that large (it may have grown under us, e.g. lvextend).
   * Requests in flight stay inside the old size, so they are unaffected; later ones may
   * use the new range.
   */
  async grow(sizeBytes: number): Promise<void> {
    if (this.#closed) throw badf();
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < this.sizeBytes)
      throw new RangeError(`cannot resize ${this.path} from ${this.sizeBytes} to ${sizeBytes} bytes`);
    if (this.readOnly) throw new Error(`${this.path} is read-only: it cannot grow`);
    if (this.device !== undefined) {
      const available = await blockDeviceSize(this.device);
      if (available < sizeBytes)
        throw new Error(
          `block device ${this.path} (${this.device.name}) holds ${available} bytes (${mib(available)}), less than the new size ${sizeBytes} bytes (${mib(sizeBytes)})`,
        );
    } else {
      const st = await fstat(this.fd);
      if (st.size < sizeBytes) await ftruncate(this.fd, sizeBytes);
    }
    this.sizeBytes = sizeBytes;
  }

  /**
   * Flush and close. The descriptors are closed even when the flush fails (a device that
   * returns errors or went away); the flush error is then reported.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let flushError: unknown = null;
    if (!this.readOnly) {
      await new Promise<void>((resolve) =>
        fs.fdatasync(this.fd, (err) => {
          flushError = err;
          resolve();
        }),
      );
    }
    if (this.dsyncFd >= 0) await closeFd(this.dsyncFd).catch(() => undefined);
    await closeFd(this.fd).catch(() => undefined);
    this.fd = -1;
    this.dsyncFd = -1;
    if (flushError !== null) throw flushError;
  }

  /** Requests currently issued to the thread pool (tests, metrics). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** @internal May a request of `length` bytes run in place (synchronously) now? */
  inPlace(length: number): boolean {
    if (this.direct || length > SYNC_MAX_BYTES || !FileStore.inPlaceIo) return false;
    if (this.#poolOnly > 0) {
      this.#poolOnly--;
      return false;
    }
    return true;
  }

  /** @internal An in-place request took `ms`: slow ones close together mean the page cache does not serve them. */
  tookInPlace(ms: number): void {
    this.inPlaceCount++;
    if (ms > SYNC_SLOW_MS) {
      this.inPlaceSlow++;
      if (this.inPlaceCount - this.#slowBefore <= SYNC_SLOW_WINDOW) this.#poolOnly = SYNC_BACKOFF;
      this.#slowBefore = this.#slowAt;
      this.#slowAt = this.inPlaceCount;
    }
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

  /**
   * An O_DIRECT read of the first block: some file systems accept O_DIRECT at open but
   * refuse I/O whose alignment is below their device's logical block size (a 512-byte
   * LU on a 4Kn disk), which would otherwise only show as failing commands.
   */
  async #probeDirect(): Promise<void> {
    const chunk = acquireChunk();
    try {
      await readFd(this.fd, chunk, 0, this.alignment, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINVAL')
        throw new Error(
          `${this.path}: the file system refuses O_DIRECT I/O in ${this.alignment}-byte blocks: use blockSize: 4096, or direct: false`,
        );
      throw err;
    } finally {
      releaseChunk(chunk);
    }
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(bytes % 1048576 === 0 ? 0 : 2)} MiB`;
}

function openFd(path: string, flags: number, kind: 'file' | 'block' | 'image'): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(path, flags, 0o600, (err, fd) => {
      if (err === null) return resolve(fd);
      if (err.code === 'EINVAL' && (flags & O_DIRECT) !== 0) {
        // open(2): EINVAL with O_DIRECT means the file system does not support it (tmpfs).
        return reject(
          new Error(
            `${path}: the file system does not support O_DIRECT (tmpfs?): set direct: false for this ${kind} device`,
            { cause: err },
          ),
        );
      }
      if (
        (err.code === 'EROFS' || err.code === 'EACCES') &&
        (flags & (O_RDWR | O_CREAT)) !== 0 &&
        kind === 'block'
      ) {
        return reject(
          new Error(
            `${path} cannot be opened for writing (${err.code}): configure the device with readOnly: true, or fix its permissions`,
            { cause: err },
          ),
        );
      }
      reject(err);
    }),
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

function readFd(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function writeFd(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.write(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))),
  );
}

function badf(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('file store is closed');
  err.code = 'EBADF';
  return err;
}

function erofs(path: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${path} is open read-only`);
  err.code = 'EROFS';
  return err;
}
