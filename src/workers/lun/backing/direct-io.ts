/**
 * Unaligned requests on an O_DIRECT store, copied through aligned bounce chunks.
 *
 * O_DIRECT moves data between the device and the caller's memory with no page cache in
 * between, so the kernel requires the buffer address, the length and the file position
 * to be aligned (EINVAL otherwise; the length and position to the logical block size).
 * Nearly every request spindle makes is aligned by construction: command data sits at
 * 4 KiB offsets of page-aligned slabs, and internal buffers come from aligned-pool.ts. What
 * is left:
 *   - transfers that are not whole blocks: a READ into a smaller EDTL reads only what
 *     fits (SBC residual handling, sbc/read-write.ts). A WRITE whose Data-Out ends inside
 *     a block is refused before it gets here (05/0E/03, issue 12), so the write side
 *     below serves only internal callers;
 *   - a buffer that is not from aligned memory (a bug, or a caller outside the target core).
 * Those go through here: each step reads the aligned cover of (part of) the range into a
 * pooled chunk and copies out of it, or, for a write, reads the cover when a block is only
 * partly written (read-modify-write), copies the new bytes in and writes the cover back.
 *
 * The read-modify-write of a partial block is not atomic with respect to another write to
 * the same block in flight at the same time; SCSI defines no such partial-block write, and
 * a block written by two concurrent commands has no defined content anyway (SAM-5 4.6.3).
 *
 * Not a hot path: promises and closures are fine here.
 */
import { ALIGNED_CHUNK_BYTES, withChunk } from './aligned-pool.ts';

/** The aligned primitive operations of a direct store. */
export interface AlignedIo {
  /** Power of two: the length, position and address unit. */
  readonly alignment: number;
  /** Read exactly [position, +length) (aligned) into buf[offset...]; past the end reads zeros. */
  readAligned(buf: Buffer, offset: number, length: number, position: number): Promise<void>;
  /** Write buf[offset, +length) at position (all aligned). */
  writeAligned(
    buf: Buffer,
    offset: number,
    length: number,
    position: number,
    durable: boolean,
  ): Promise<void>;
}

/** Whether the request can go straight to the medium (address by convention: see aligned-memory.ts). */
export function isAligned(
  alignment: number,
  buf: Buffer,
  offset: number,
  length: number,
  position: number,
): boolean {
  return (
    (buf.byteOffset + offset) % alignment === 0 && length % alignment === 0 && position % alignment === 0
  );
}

/** Read [position, +length) into dst[dstOffset...] through aligned chunks. */
export async function bounceRead(
  io: AlignedIo,
  dst: Buffer,
  dstOffset: number,
  length: number,
  position: number,
): Promise<void> {
  const a = io.alignment;
  const end = position + length;
  await withChunk(async (chunk) => {
    for (let at = position; at < end;) {
      const start = at - (at % a);
      const stop = Math.min(Math.ceil(end / a) * a, start + ALIGNED_CHUNK_BYTES);
      await io.readAligned(chunk, 0, stop - start, start);
      const upto = Math.min(end, stop);
      chunk.copy(dst, dstOffset + (at - position), at - start, upto - start);
      at = upto;
    }
  });
}

/** Write src[srcOffset, +length) at position through aligned chunks (read-modify-write of partial blocks). */
export async function bounceWrite(
  io: AlignedIo,
  src: Buffer,
  srcOffset: number,
  length: number,
  position: number,
  durable: boolean,
): Promise<void> {
  const a = io.alignment;
  const end = position + length;
  await withChunk(async (chunk) => {
    for (let at = position; at < end;) {
      const start = at - (at % a);
      const stop = Math.min(Math.ceil(end / a) * a, start + ALIGNED_CHUNK_BYTES);
      const upto = Math.min(end, stop);
      // A block only partly written keeps the rest of its bytes: read the cover first.
      if (at !== start || upto !== stop) await io.readAligned(chunk, 0, stop - start, start);
      src.copy(chunk, at - start, srcOffset + (at - position), srcOffset + (upto - position));
      await io.writeAligned(chunk, 0, stop - start, start, durable);
      at = upto;
    }
  });
}
