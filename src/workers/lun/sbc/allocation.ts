/**
 * The allocation map of a thin-provisioned LU (SBC-4 4.7.3.3): one bit per granule of
 * logical blocks, set when the granule is mapped, clear when it is deallocated.
 *
 * The bytes stay correct without the map: deallocation writes zeros (the LU reports
 * LBPRZ = 1, so a deallocated block must read as zeros, SBC-4 4.7.4.5) because Node has
 * no fallocate(PUNCH_HOLE) or SEEK_HOLE. The map only drives what GET LBA STATUS reports
 * and what SANITIZE BLOCK ERASE leaves behind. Reporting a deallocated block as mapped is
 * always allowed (a mapped block may hold any data, zeros included), so the map may err
 * towards "mapped" but never the other way:
 *   - a write marks every granule it touches mapped;
 *   - a deallocation clears only granules it covers entirely (a partly deallocated
 *     granule stays mapped, with zeros written where it was deallocated);
 *   - a file-backed map is persisted next to the file as `<path>.map` on a clean close
 *     and deleted when the LU opens, so after a crash it is absent and the LU starts
 *     conservatively "all mapped".
 *
 * Memory: one bit per granule; the granule is the physical block, at least 4 KiB
 * (32 MiB of map per TiB of LU).
 *
 * On-disk format of `<path>.map` (little endian):
 *   0  u32  magic 'SPAM' (0x4d415053)
 *   4  u32  granule (logical blocks per bit)
 *   8  f64  blockCount
 *   16 ...  bits, u32 words, bit (g & 31) of word (g >> 5) = granule g mapped
 */
import fs from 'node:fs/promises';

const MAGIC = 0x4d415053;
const HEADER_BYTES = 16;

export class AllocationMap {
  /** Logical blocks per map bit. */
  readonly granule: number;
  blockCount: number;
  granules: number;
  words: Uint32Array;

  constructor(blockCount: number, granule: number, mapped: boolean) {
    this.granule = granule;
    this.blockCount = blockCount;
    this.granules = Math.ceil(blockCount / granule);
    this.words = new Uint32Array(Math.ceil(this.granules / 32));
    if (mapped) this.setRange(0, this.granules, true);
  }

  /**
   * The LU grew to `blockCount` blocks (runtime resize): the new blocks are `mapped` or
   * deallocated. A partial last granule that now has more blocks keeps its state.
   */
  grow(blockCount: number, mapped: boolean): void {
    if (blockCount <= this.blockCount) return;
    const oldGranules = this.granules;
    this.blockCount = blockCount;
    this.granules = Math.ceil(blockCount / this.granule);
    const words = new Uint32Array(Math.ceil(this.granules / 32));
    words.set(this.words);
    this.words = words;
    if (mapped) this.setRange(oldGranules, this.granules, true);
  }

  isMapped(g: number): boolean {
    return (this.words[g >>> 5]! & (1 << (g & 31))) !== 0;
  }

  /** Mark every granule that [lba, lba + blocks) touches as mapped (after a write). */
  markMapped(lba: number, blocks: number): void {
    if (blocks <= 0) return;
    const first = Math.floor(lba / this.granule);
    const last = Math.floor((lba + blocks - 1) / this.granule);
    this.setRange(first, last + 1, true);
  }

  /** Clear the granules [lba, lba + blocks) covers entirely (after zeros were written). */
  markDeallocated(lba: number, blocks: number): void {
    if (blocks <= 0) return;
    const first = Math.ceil(lba / this.granule);
    const end = lba + blocks;
    // The last granule may be partial (capacity not a multiple of the granule): it is
    // covered entirely when the range reaches the end of the LU.
    const endGranule = end >= this.blockCount ? this.granules : Math.floor(end / this.granule);
    if (endGranule > first) this.setRange(first, endGranule, false);
  }

  /**
   * Blocks from `lba` (at most `max`) that share the mapped state of `lba`'s granule;
   * the state is `this.isMapped(Math.floor(lba / this.granule))`.
   */
  runLength(lba: number, max: number): number {
    const g0 = Math.floor(lba / this.granule);
    const state = this.isMapped(g0);
    let g = g0 + 1;
    const gMax = this.granules;
    while (g < gMax && this.isMapped(g) === state) {
      // Skip whole words of the same state.
      if ((g & 31) === 0 && g + 32 <= gMax && this.words[g >>> 5] === (state ? 0xffffffff : 0)) g += 32;
      else g++;
      if ((g - g0) * this.granule >= max) break;
    }
    const end = Math.min(g * this.granule, this.blockCount);
    return Math.min(end - lba, max);
  }

  /** True when no granule is mapped. */
  allDeallocated(): boolean {
    for (let i = 0; i < this.words.length; i++) if (this.words[i] !== 0) return false;
    return true;
  }

  private setRange(from: number, to: number, mapped: boolean): void {
    const w = this.words;
    let g = from;
    while (g < to && (g & 31) !== 0) this.setBit(g++, mapped);
    while (g + 32 <= to) {
      w[g >>> 5] = mapped ? 0xffffffff : 0;
      g += 32;
    }
    while (g < to) this.setBit(g++, mapped);
  }

  private setBit(g: number, mapped: boolean): void {
    if (mapped) this.words[g >>> 5]! |= 1 << (g & 31);
    else this.words[g >>> 5]! &= ~(1 << (g & 31));
  }

  /** Write the map to `file` (clean close). */
  async save(file: string): Promise<void> {
    const buf = Buffer.alloc(HEADER_BYTES + this.words.byteLength);
    buf.writeUInt32LE(MAGIC, 0);
    buf.writeUInt32LE(this.granule, 4);
    buf.writeDoubleLE(this.blockCount, 8);
    Buffer.from(this.words.buffer, this.words.byteOffset, this.words.byteLength).copy(buf, HEADER_BYTES);
    const tmp = `${file}.tmp`;
    await fs.writeFile(tmp, buf, { mode: 0o600 });
    await fs.rename(tmp, file);
  }

  /**
   * Load the map persisted at `file` and delete it (see the file comment); a missing,
   * unreadable or mismatching map gives an all-mapped map.
   */
  static async load(file: string, blockCount: number, granule: number): Promise<AllocationMap> {
    const map = new AllocationMap(blockCount, granule, true);
    let buf: Buffer;
    try {
      buf = await fs.readFile(file);
    } catch {
      return map;
    }
    await fs.rm(file, { force: true });
    if (
      buf.length === HEADER_BYTES + map.words.byteLength &&
      buf.readUInt32LE(0) === MAGIC &&
      buf.readUInt32LE(4) === granule &&
      buf.readDoubleLE(8) === blockCount
    ) {
      for (let i = 0; i < map.words.length; i++) map.words[i] = buf.readUInt32LE(HEADER_BYTES + 4 * i);
    }
    return map;
  }
}
