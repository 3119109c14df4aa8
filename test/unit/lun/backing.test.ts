import { statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BackingStore } from '../../../src/workers/lun/backing/store.ts';
import { FileStore } from '../../../src/workers/lun/backing/file-store.ts';
import { openBackingStore } from '../../../src/workers/lun/backing/open-store.ts';
import { RamStore } from '../../../src/workers/lun/backing/ram-store.ts';
import { ramDevice, tempDir } from './helpers.ts';

/** Page-cache I/O, 512-byte blocks. */
const BUFFERED = { direct: false, blockSize: 512 } as const;

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const io = {
  read: (s: BackingStore, dst: Buffer, off: number, len: number, pos: number) =>
    new Promise<void>((res, rej) => s.read(dst, off, len, pos, (e) => (e ? rej(e) : res()))),
  write: (s: BackingStore, src: Buffer, off: number, len: number, pos: number, durable = false) =>
    new Promise<void>((res, rej) => s.write(src, off, len, pos, durable, (e) => (e ? rej(e) : res()))),
  flush: (s: BackingStore) => new Promise<void>((res, rej) => s.flush((e) => (e ? rej(e) : res()))),
};

describe('RamStore', () => {
  it('calls back synchronously and reads zeros past the end', () => {
    const s = new RamStore(4096);
    let called = false;
    s.write(Buffer.alloc(10, 7), 0, 10, 4086, false, (e) => {
      expect(e).toBeNull();
      called = true;
    });
    expect(called).toBe(true);
    const dst = Buffer.alloc(20, 0xff);
    s.read(dst, 0, 20, 4086, (e) => expect(e).toBeNull());
    expect([...dst.subarray(0, 10)]).toEqual(Array(10).fill(7));
    expect([...dst.subarray(10)]).toEqual(Array(10).fill(0));
  });

  it('refuses writes past the end', () => {
    const s = new RamStore(512);
    let err: NodeJS.ErrnoException | null = null;
    s.write(Buffer.alloc(2), 0, 2, 511, false, (e) => (err = e));
    expect(err).not.toBeNull();
  });
});

describe('FileStore', () => {
  it('creates and sizes a missing file, grows a smaller one, keeps a larger one', async () => {
    const p = path.join(tmp.dir, 'a.img');
    const s = await FileStore.openFile(p, 1 << 20, BUFFERED);
    expect(statSync(p).size).toBe(1 << 20);
    await s.close();
    const small = path.join(tmp.dir, 'small.img');
    writeFileSync(small, Buffer.alloc(100, 1));
    const s2 = await openBackingStore(ramDevice({ backing: { type: 'file', path: small, size: 8192 } }));
    expect(statSync(small).size).toBe(8192);
    const dst = Buffer.alloc(200);
    await io.read(s2, dst, 0, 200, 0);
    expect(dst.subarray(0, 100).every((b) => b === 1)).toBe(true);
    expect(dst.subarray(100).every((b) => b === 0)).toBe(true);
    await s2.close();
    const big = path.join(tmp.dir, 'big.img');
    writeFileSync(big, Buffer.alloc(10000));
    const s3 = await FileStore.openFile(big, 4096, BUFFERED);
    expect(s3.sizeBytes).toBe(4096);
    expect(statSync(big).size).toBe(10000);
    await s3.close();
  });

  it('serves small buffered I/O in place, and sends requests to the thread pool after three slow ones close together', async () => {
    const s = await FileStore.openFile(path.join(tmp.dir, 'inplace.img'), 1 << 20, BUFFERED);
    try {
      let sync = false;
      s.write(Buffer.alloc(4096, 7), 0, 4096, 0, false, () => (sync = true));
      expect(sync, 'a write-back 4 KiB write completes before write() returns').toBe(true);
      const before = s.inPlaceCount;
      const dst = Buffer.alloc(4096);
      s.read(dst, 0, 4096, 0, () => undefined);
      expect(s.inPlaceCount).toBe(before + 1);
      expect(dst.every((b) => b === 7)).toBe(true);
      let durableSync = false;
      s.write(Buffer.alloc(4096, 8), 0, 4096, 4096, true, () => (durableSync = true));
      expect(durableSync, 'a durable write waits for the medium: thread pool').toBe(false);
      await io.flush(s);
      // Scattered slow in-place requests (the thread was preempted) are forgiven.
      s.tookInPlace(5);
      for (let i = 0; i < 40; i++) s.tookInPlace(0.01);
      s.tookInPlace(5);
      for (let i = 0; i < 40; i++) s.tookInPlace(0.01);
      s.tookInPlace(5);
      let inPlace = false;
      s.read(dst, 0, 4096, 0, () => (inPlace = true));
      expect(inPlace, 'slow requests 40 apart do not send the next ones to the pool').toBe(true);
      // Two more soon after (the disk, not the page cache): the next ones go to the pool.
      s.tookInPlace(5);
      s.read(dst, 0, 4096, 0, () => (inPlace = true));
      s.tookInPlace(5);
      let pooled = false;
      s.read(dst, 0, 4096, 0, () => (pooled = true));
      expect(pooled, 'after a slow one, requests complete asynchronously').toBe(false);
      await new Promise((r) => setTimeout(r, 50));
      expect(pooled).toBe(true);
      expect(s.inPlaceSlow).toBe(5);
    } finally {
      await s.close();
    }
  });

  it('round trips plain and durable writes, concurrently, reusing pooled requests', async () => {
    const s = await FileStore.openFile(path.join(tmp.dir, 'b.img'), 1 << 20, BUFFERED);
    const bufs = Array.from({ length: 64 }, (_, i) => Buffer.alloc(4096, i));
    await Promise.all(bufs.map((b, i) => io.write(s, b, 0, 4096, i * 4096, i % 2 === 0)));
    expect(s.inFlight).toBe(0);
    await io.flush(s);
    const dst = Buffer.alloc(64 * 4096);
    await Promise.all(bufs.map((_, i) => io.read(s, dst, i * 4096, 4096, i * 4096)));
    for (let i = 0; i < 64; i++)
      expect(dst.subarray(i * 4096, (i + 1) * 4096).every((b) => b === i)).toBe(true);
    await s.close();
  });

  it('zero-fills reads past EOF when the file shrank underneath', async () => {
    const p = path.join(tmp.dir, 'c.img');
    const s = await FileStore.openFile(p, 8192, BUFFERED);
    await io.write(s, Buffer.alloc(8192, 9), 0, 8192, 0);
    truncateSync(p, 1000);
    const dst = Buffer.alloc(4096, 0xff);
    await io.read(s, dst, 0, 4096, 0);
    expect(dst.subarray(0, 1000).every((b) => b === 9)).toBe(true);
    expect(dst.subarray(1000).every((b) => b === 0)).toBe(true);
    await s.close();
  });

  it('reports errors through the callback after close', async () => {
    const s = await FileStore.openFile(path.join(tmp.dir, 'd.img'), 4096, BUFFERED);
    await s.close();
    await expect(io.read(s, Buffer.alloc(10), 0, 10, 0)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(io.write(s, Buffer.alloc(10), 0, 10, 0)).rejects.toMatchObject({ code: 'EBADF' });
  });
});

describe('growing a store (runtime resize)', () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());

  it('RamStore keeps its data, reads zeros in the new range and refuses to shrink', async () => {
    const s = new RamStore(4096);
    s.write(Buffer.alloc(4096, 0xab), 0, 4096, 0, false, () => undefined);
    await s.grow(8192);
    expect(s.sizeBytes).toBe(8192);
    const out = Buffer.alloc(8192, 1);
    s.read(out, 0, 8192, 0, () => undefined);
    expect(out.subarray(0, 4096).every((b) => b === 0xab)).toBe(true);
    expect(out.subarray(4096).every((b) => b === 0)).toBe(true);
    await expect(s.grow(4096)).rejects.toThrow(RangeError);
    await s.close();
  });

  it('FileStore extends the file and accepts writes in the new range', async () => {
    const file = path.join(dir.dir, 'grow.img');
    const s = await FileStore.openFile(file, 4096, BUFFERED);
    await s.grow(1 << 20);
    expect(statSync(file).size).toBe(1 << 20);
    const err = await new Promise<NodeJS.ErrnoException | null>((r) => s.write(Buffer.alloc(512, 7), 0, 512, (1 << 20) - 512, false, r));
    expect(err).toBeNull();
    await expect(s.grow(4096)).rejects.toThrow(RangeError);
    await s.close();
  });
});
