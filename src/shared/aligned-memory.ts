/**
 * Page-aligned shared memory: the only buffers O_DIRECT I/O may read into and write from
 * without a bounce copy.
 *
 * O_DIRECT (open(2)) requires the user buffer's address, the length and the file offset
 * to be aligned, on Linux to the device's DMA alignment for the address (512 bytes on
 * most devices, `/sys/block/<dev>/queue/dma_alignment` + 1) and to its logical block size
 * for length and offset. JavaScript cannot choose an address, and neither a Buffer nor a
 * `new SharedArrayBuffer(n)` is aligned (measured on Node 26: a 64 MiB SharedArrayBuffer
 * starts 16 bytes past a page boundary, so an O_DIRECT read into it fails with EINVAL).
 * The memory of a WebAssembly.Memory, however, is a reservation of whole pages: its
 * `buffer` (a SharedArrayBuffer when the memory is shared) starts on a page boundary,
 * so every offset that is a multiple of 512 (or 4096) is a valid O_DIRECT address.
 *
 * Limits: memory is allocated in WebAssembly pages of 64 KiB, at most 65536 pages (4 GiB)
 * per memory (32-bit WebAssembly). The memory never grows (initial = maximum), so views
 * into it stay valid for its life.
 */

/**
 * The one piece of the WebAssembly JS API used here (tsconfig's libs have no WebAssembly
 * types; Node provides the global).
 */
declare const WebAssembly: {
  readonly Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => {
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
  };
};

/** Bytes per WebAssembly page: the allocation granule (WebAssembly core spec 4.2.8). */
export const WASM_PAGE_BYTES = 65536;

/** Largest aligned buffer one memory can hold: 65536 pages, 4 GiB. */
export const MAX_ALIGNED_BYTES = WASM_PAGE_BYTES * 65536;

/**
 * A zero-filled SharedArrayBuffer of at least `bytes` bytes (rounded up to whole 64 KiB
 * pages) whose first byte is page aligned. It crosses to other threads like any
 * SharedArrayBuffer (workerData, postMessage) and keeps its address there.
 */
export function alignedSharedBuffer(bytes: number): SharedArrayBuffer {
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes > MAX_ALIGNED_BYTES)
    throw new RangeError(`aligned shared memory must be 1 byte to 4 GiB, got ${bytes}`);
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  return memory.buffer as SharedArrayBuffer;
}
