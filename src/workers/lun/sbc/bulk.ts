/**
 * Helpers for the SBC commands that are not on the hot path: several backing-store
 * steps per command (read-compare-write, pattern fills, deallocation, sanitize).
 *
 * These allocate freely (promises, closures): they are rare, and READ / WRITE never come
 * through here. Buffers that go to the backing store are chunks of the LUN worker's
 * aligned arena (backing/aligned-pool.ts), so an O_DIRECT store takes them as they are.
 *
 * Long operations (WRITE SAME over a large range, UNMAP, SANITIZE) are cut into chunks of
 * at most CHUNK_BYTES and yield to the event loop (setImmediate) between chunks, so the
 * LUN worker keeps serving the other commands and LUs it owns. RAM stores complete
 * synchronously, so without the yield a 1 GiB fill would hold the loop for the whole
 * copy. Chunking on the LUN worker is preferred over a thread pool: a file store's
 * descriptors and allocation map belong to this thread, and the work is I/O or memcpy
 * bound, which a pool would not speed up (a RAM store's SharedArrayBuffer could be
 * reached from one, but nothing measured asks for it).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import type { SenseDetail } from '../../../shared/scsi/sense.ts';
import { SenseReason, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { ALIGNED_CHUNK_BYTES, withChunk } from '../backing/aligned-pool.ts';
import type { IoOperation } from '../backing/io-errors.ts';
import { ioErrorSense } from '../backing/io-errors.ts';

/** Largest single backing-store request of a bulk operation: one aligned chunk. */
export const CHUNK_BYTES = ALIGNED_CHUNK_BYTES;

/** A backing-store error, carrying the sense the command must report. */
export class IoFailure extends Error {
  override readonly name = 'IoFailure';
  readonly reason: SenseDetail;
  constructor(reason: SenseDetail, cause: unknown) {
    super(`backing store request failed (sense ${reason.key.toString(16)}/${reason.asc.toString(16)}/${reason.ascq.toString(16)})`, { cause });
    this.reason = reason;
  }
}

/** The IoFailure for a failed request, noted in the LU's I/O error log. */
export function ioFailure(lu: LogicalUnit, op: IoOperation, err: NodeJS.ErrnoException, position: number): IoFailure {
  const sense = ioErrorSense(op, err);
  lu.ioErrors.note(op, err, position, sense);
  return new IoFailure(sense, err);
}

export function readAt(lu: LogicalUnit, buf: Buffer, off: number, len: number, lba: number): Promise<void> {
  const position = lba * lu.blockSize;
  return new Promise((resolve, reject) =>
    lu.store.read(buf, off, len, position, (err) => (err === null ? resolve() : reject(ioFailure(lu, 'read', err, position)))),
  );
}

export function writeAt(
  lu: LogicalUnit,
  buf: Buffer,
  off: number,
  len: number,
  lba: number,
  durable: boolean,
): Promise<void> {
  const position = lba * lu.blockSize;
  return new Promise((resolve, reject) =>
    lu.store.write(buf, off, len, position, durable, (err) =>
      err === null ? resolve() : reject(ioFailure(lu, 'write', err, position)),
    ),
  );
}

/** Deallocate [lba, +blocks) through the store's discard (it must have one). */
function discardAt(lu: LogicalUnit, lba: number, blocks: number): Promise<void> {
  const position = lba * lu.blockSize;
  return new Promise((resolve, reject) =>
    lu.store.discard!(position, blocks * lu.blockSize, (err) =>
      err === null ? resolve() : reject(ioFailure(lu, 'discard', err, position)),
    ),
  );
}

export function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * After each chunk of a long fill: `blocks` more are written. Returning false stops the
 * fill before the next chunk (a suspended sanitize operation, sanitize-operation.ts).
 */
export type ChunkHook = (blocks: number) => boolean;

/**
 * Write `pattern` (exactly one logical block) to every block of [lba, lba + blocks), in
 * chunks with a yield between them. Marks the range mapped on thin LUs. Resolves true
 * when every block was written, false when `onChunk` stopped it early.
 */
export async function fillBlocks(
  lu: LogicalUnit,
  lba: number,
  blocks: number,
  pattern: Buffer,
  durable: boolean,
  onChunk?: ChunkHook,
): Promise<boolean> {
  if (blocks <= 0) return true;
  const bs = lu.blockSize;
  const chunkBlocks = Math.max(1, Math.min(blocks, Math.floor(CHUNK_BYTES / bs)));
  return withChunk(async (chunk) => {
    for (let i = 0; i < chunkBlocks; i++) pattern.copy(chunk, i * bs, 0, bs);
    let done = 0;
    while (done < blocks) {
      const n = Math.min(chunkBlocks, blocks - done);
      await writeAt(lu, chunk, 0, n * bs, lba + done, durable);
      lu.sbc.noteWritten(lba + done, n);
      done += n;
      if (onChunk !== undefined && !onChunk(n) && done < blocks) return false;
      if (done < blocks) await yieldTurn();
    }
    return true;
  });
}

let zeroBlock4k: Buffer | null = null;

/** A zero-filled logical block (shared, never written to). */
export function zeroBlock(lu: LogicalUnit): Buffer {
  zeroBlock4k ??= Buffer.alloc(65536);
  return zeroBlock4k.subarray(0, lu.blockSize);
}

/**
 * Deallocate [lba, lba + blocks) of a thin LU: the blocks read as zeros afterwards
 * (LBPRZ = 1). A store that can deallocate does (a block device: backing/block-discard.ts);
 * otherwise zeros are written (see allocation.ts) and whole granules are marked
 * deallocated. On a fully provisioned LU the zeros are simply written.
 */
export async function deallocate(lu: LogicalUnit, lba: number, blocks: number): Promise<void> {
  if (blocks <= 0) return;
  if (lu.store.discard !== undefined) await discardAt(lu, lba, blocks);
  else await fillBlocks(lu, lba, blocks, zeroBlock(lu), !lu.writeCacheEnabled);
  lu.sbc.map?.markDeallocated(lba, blocks);
}

/**
 * Run an asynchronous executor: counts it in `active` (so exclusive commands wait for
 * it), maps IoFailure to its sense and any other exception to INTERNAL TARGET FAILURE,
 * and finishes the command exactly once. `body` sets status GOOD or a CHECK CONDITION.
 */
export function runAsync(lu: LogicalUnit, cmd: ScsiCommand, body: () => Promise<void>): Completion {
  lu.sbc.active++;
  cmd.status = ScsiStatus.GOOD;
  body()
    .catch((err: unknown) => failCommand(lu, cmd, err))
    .finally(() => {
      lu.sbc.active--;
      cmd.finish();
    });
  return Completion.PENDING;
}

/** Like runAsync, but with nothing else of the LU in flight (sbc/state.ts gate). */
export function runExclusive(lu: LogicalUnit, cmd: ScsiCommand, body: () => Promise<void>): Completion {
  cmd.status = ScsiStatus.GOOD;
  const lock = lu.env.atomicLock;
  const run =
    lock === undefined
      ? body
      : // In a cluster, also exclusive against the same commands on every other node (VMware
        // ATS): a short lock per LU around the read-compare-write (cluster/lock in README).
        async () => {
          let unlock: () => Promise<void>;
          try {
            unlock = await lock(lu.pr.luKey);
          } catch (err) {
            // The cluster lock cannot be had now: retryable, nothing was read or written.
            throw new IoFailure(SenseReason.LUN_NOT_READY_ALUA_TRANSITION, err);
          }
          try {
            await body();
          } finally {
            await unlock().catch(() => undefined);
          }
        };
  lu.sbc.runExclusive(cmd, () => run().catch((err: unknown) => failCommand(lu, cmd, err)));
  return Completion.PENDING;
}

function failCommand(lu: LogicalUnit, cmd: ScsiCommand, err: unknown): void {
  if (err instanceof IoFailure) {
    setCheckCondition(cmd, err.reason);
    return;
  }
  // Anything else is a bug in the executor.
  lu.env.reportInternalError(err, cmd);
  setCheckCondition(cmd, SenseReason.INTERNAL_TARGET_FAILURE);
}
