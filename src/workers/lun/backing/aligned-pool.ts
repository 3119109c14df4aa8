/**
 * The LUN worker's aligned scratch arena: fixed-size chunks of page-aligned memory for
 * every buffer the target core itself hands to a backing store (WRITE SAME patterns,
 * VERIFY and COMPARE AND WRITE reads, ORWRITE merges, EXTENDED COPY and SANITIZE chunks,
 * the bounce buffers of unaligned direct I/O). Command data needs none of this: it lives
 * in the session workers' slabs, which are page aligned already (supervisor/data-plane.ts).
 *
 * Why: an O_DIRECT store (direct-io.ts) needs the buffer address aligned, and only the
 * memory of a WebAssembly.Memory is (shared/aligned-memory.ts). Buffer.alloc memory is
 * not, and a request from it would have to be bounced (one more copy per chunk).
 *
 * One pool per thread (module state; a worker thread has its own module instances). Chunks
 * are CHUNK_BYTES (1 MiB, the bulk-operation step of sbc/bulk.ts and xcopy/), carved from
 * memories of CHUNKS_PER_MEMORY chunks; the pool grows to the high-water mark of chunks in
 * use at once and never shrinks (a few MiB per LUN worker at most in practice).
 *
 * Not a hot-path structure: READ and WRITE never come here. acquire/release allocate
 * nothing once the pool has grown.
 */
import { alignedSharedBuffer } from '../../../shared/aligned-memory.ts';

/** Bytes per chunk; every chunk starts on a 64 KiB (WebAssembly page) boundary. */
export const ALIGNED_CHUNK_BYTES = 1 << 20;

/** Chunks carved from one WebAssembly memory (4 MiB per memory). */
const CHUNKS_PER_MEMORY = 4;

const free: Buffer[] = [];
let created = 0;

/** A page-aligned chunk of ALIGNED_CHUNK_BYTES bytes (contents undefined); give it back with releaseChunk. */
export function acquireChunk(): Buffer {
  const chunk = free.pop();
  if (chunk !== undefined) return chunk;
  const memory = Buffer.from(alignedSharedBuffer(ALIGNED_CHUNK_BYTES * CHUNKS_PER_MEMORY));
  for (let i = 1; i < CHUNKS_PER_MEMORY; i++)
    free.push(memory.subarray(i * ALIGNED_CHUNK_BYTES, (i + 1) * ALIGNED_CHUNK_BYTES));
  created += CHUNKS_PER_MEMORY;
  return memory.subarray(0, ALIGNED_CHUNK_BYTES);
}

/** Return a chunk from acquireChunk (its whole 1 MiB view, not a subarray of it). */
export function releaseChunk(chunk: Buffer): void {
  if (chunk.length !== ALIGNED_CHUNK_BYTES) throw new RangeError('releaseChunk: not a whole chunk');
  free.push(chunk);
}

/** Run `body` with a chunk, returned to the pool when the promise settles. */
export async function withChunk<T>(body: (chunk: Buffer) => Promise<T>): Promise<T> {
  const chunk = acquireChunk();
  try {
    return await body(chunk);
  } finally {
    releaseChunk(chunk);
  }
}

/** Chunks created and currently idle (tests, stats). */
export function chunkStats(): { created: number; idle: number } {
  return { created, idle: free.length };
}
