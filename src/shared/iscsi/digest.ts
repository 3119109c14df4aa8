/**
 * CRC32C digests (RFC 7143 11.1 / Appendix B: iSCSI uses the Castagnoli polynomial,
 * the standard reflected CRC-32C with initial value ~0 and final XOR). The value is
 * carried on the wire least significant byte first.
 *
 * The native (SSE4.2/ARMv8 CRC instructions) implementation comes from @node-rs/crc32;
 * a JS table loop runs at well under 1 GB/s, which would cap DataDigest throughput.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C of buf[start, end). `seed` continues a previous value (chained data). */
export function crc32c(buf: Buffer, start = 0, end = buf.length, seed = 0): number {
  const view = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
  return nativeCrc32c(view, seed) >>> 0;
}

export function writeDigest(b: Uint8Array, o: number, crc: number): void {
  b[o] = crc;
  b[o + 1] = crc >>> 8;
  b[o + 2] = crc >>> 16;
  b[o + 3] = crc >>> 24;
}

export function readDigest(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
