/**
 * Inline I/O, the session worker's half (shared/ring/inline-grants.ts): a READ or WRITE
 * of a RAM disk or of a buffered file is served here, copied between the slab and the
 * disk's shared memory, or read and written through the file's page cache with a
 * descriptor of this worker's own, when the LUN worker owning the unit has granted this
 * I_T nexus commands of that kind at the unit's current epoch. No ring, no doorbell, no
 * second thread: the command costs one memcpy or one pread/pwrite beside the iSCSI work
 * this worker does anyway.
 *
 * Only the plain case is served here; everything else takes the ring, where the LUN
 * worker answers it exactly as before (its errors and sense data included):
 *  - READ(6/10/12/16) or WRITE(6/10/12/16) with SIMPLE (or untagged) task attribute, no
 *    RDPROTECT/WRPROTECT, no LINK bit, a non-zero transfer length inside the capacity;
 *    a WRITE with exactly the data its CDB asks for (no residual, no partial block);
 *  - a grant for the nexus, unit and kind that still holds; the unit's current memory,
 *    or its file open here, at most 128 KiB and no FUA WRITE, and not backing off;
 *  - no task management function of this worker on its way to a LUN worker, so a
 *    function and the commands after it stay in order.
 * RAM is as durable as it gets: FUA and the write cache setting ask nothing more of it.
 * A file's WRITEs are granted only with the write cache on (write-back): SYNCHRONIZE
 * CACHE on the LUN worker flushes the file's page cache, these writes included.
 */
import fs from 'node:fs';
import { cdbLba, cdbTransferLength } from '../../shared/scsi/cdb.ts';
import { TaskAttribute } from '../../shared/scsi/command.ts';
import { InlineGrants, InlineKind } from '../../shared/ring/inline-grants.ts';
import { unitKey } from '../../shared/unit-slots.ts';
import { Direction, type InlineCounters } from '../../shared/metrics/inline-counters.ts';
import type { InlineFile, InlineMemory } from '../../shared/wire/worker-data.ts';
import type { Logger } from '../../shared/logging.ts';
import { errorMessage } from '../../shared/control/errors.ts';
import type { LunRoute } from '../../shared/wire/routes.ts';
import { TaskState, type Task } from './task.ts';

/** Opcode -> offset of the CONTROL byte, for READ(6/10/12/16) and WRITE(6/10/12/16) only. */
const CONTROL_AT = new Int8Array(256).fill(-1);
for (const [read, write, control] of [
  [0x08, 0x0a, 5],
  [0x28, 0x2a, 9],
  [0xa8, 0xaa, 11],
  [0x88, 0x8a, 15],
] as const) {
  CONTROL_AT[read] = control;
  CONTROL_AT[write] = control;
}
/** CONTROL byte LINK bit (SAM-5 5.2): refused by the LUN worker. */
const LINK = 0x01;
/** RDPROTECT/WRPROTECT (byte 1 bits 7..5) of the 10/12/16-byte CDBs; reserved in the 6-byte ones. */
const PROTECT = 0xe0;
/** FUA (byte 1 bit 3) of WRITE(10/12/16): the data must reach the medium first. */
const FUA = 0x08;
/**
 * A file is served here only by the page cache, by the LUN worker's own rule for I/O in
 * place (backing/file-store.ts): at most this much per command; a third request within
 * FILE_SLOW_WINDOW that took longer than FILE_SLOW_MS (it went to the disk, or the kernel
 * throttled a writer) leaves the unit's next FILE_BACKOFF commands to the LUN worker and
 * its thread pool, so a disk-bound unit does not stall every connection of this worker.
 * Scattered slow ones are forgiven: a thread preempted in the middle of a page-cache copy
 * is no reason to leave the page cache.
 */
const FILE_MAX_BYTES = 128 * 1024;
const FILE_SLOW_MS = 0.25;
const FILE_SLOW_WINDOW = 32;
const FILE_BACKOFF = 1024;

/** A file unit on this worker: its own descriptor and page-cache record (see FILE_SLOW_MS). */
interface FileRecord {
  /** Opened here on the unit's file (read-write, or read-only if that is all it allows). */
  readonly fd: number;
  /** Requests served, and the count at the last two slow ones (-Infinity: none). */
  served: number;
  slowAt: number;
  slowBefore: number;
  /** Commands still to leave to the LUN worker. */
  skip: number;
}

/** The key of a unit and direction in a session's grant map. */
export function grantKey(lunWorker: number, luIndex: number, write: boolean): number {
  return unitKey(lunWorker, luIndex) * 2 + (write ? 1 : 0);
}

interface UnitMemory {
  readonly bytes: Buffer;
  readonly gen: number;
}

export class InlineIo {
  /** RAM disks' memory by unitKey. */
  readonly #memory = new Map<number, UnitMemory>();
  /** Grant tables per LUN worker (replaced with the channel when a LUN worker is). */
  readonly #tables: (InlineGrants | null)[];
  readonly #counters: InlineCounters | null;
  /** File units served here, by unit (see FileRecord). */
  readonly #files = new Map<number, FileRecord>();
  /** This session worker's index (its INFLIGHT word in the grant tables). */
  readonly #worker: number;
  /** Task management functions of this worker sent to a LUN worker and not yet acknowledged. */
  tmfInFlight = 0;

  constructor(
    worker: number,
    tables: (SharedArrayBuffer | undefined)[],
    memory: readonly InlineMemory[],
    files: readonly InlineFile[],
    log: Logger,
    counters: InlineCounters | null,
  ) {
    this.#worker = worker;
    for (const f of files) this.setFile(f.lunWorker, f.luIndex, f.path, log);
    this.#tables = tables.map((t) => (t === undefined ? null : new InlineGrants(t)));
    this.#counters = counters;
    for (const m of memory) this.setMemory(m.lunWorker, m.luIndex, m.gen, m.memory);
  }

  /** A RAM disk's (new) memory, sent by the supervisor. */
  setMemory(lunWorker: number, luIndex: number, gen: number, memory: SharedArrayBuffer): void {
    const key = unitKey(lunWorker, luIndex);
    const known = this.#memory.get(key);
    // Messages may arrive out of order after a grow: keep the newest generation.
    if (known !== undefined && known.gen > gen) return;
    this.#memory.set(key, { bytes: Buffer.from(memory), gen });
  }

  /** The unit was removed (a reload): nothing routes to it any more; free its memory, close its file. */
  forget(lunWorker: number, luIndex: number): void {
    const unit = unitKey(lunWorker, luIndex);
    this.#memory.delete(unit);
    const f = this.#files.get(unit);
    this.#files.delete(unit);
    if (f !== undefined) fs.close(f.fd, () => {});
  }

  /**
   * A buffered file unit may be served inline: open a descriptor of this worker's own on
   * it, so nothing here ever depends on the LUN worker's descriptors (which die with
   * that worker, and whose numbers the process may hand out again). The page cache is
   * the file's, shared by every descriptor. Failing to open only means no inline I/O.
   */
  setFile(lunWorker: number, luIndex: number, path: string, log: Logger): void {
    const unit = unitKey(lunWorker, luIndex);
    if (this.#files.has(unit)) return;
    let fd = -1;
    try {
      fd = fs.openSync(path, 'r+');
    } catch {
      try {
        fd = fs.openSync(path, 'r');
      } catch (err) {
        log.warn(
          { path, err: errorMessage(err) },
          'cannot open a file device for inline I/O: its commands go to the LUN worker',
        );
        return;
      }
    }
    this.#files.set(unit, { fd, served: 0, slowAt: -Infinity, slowBefore: -Infinity, skip: 0 });
  }

  /**
   * LUN worker `l` died (undefined: serve nothing of it until its replacement's channel
   * brings the table back), or was replaced (the same table, every epoch moved).
   */
  setTable(l: number, sab: SharedArrayBuffer | undefined): void {
    this.#tables[l] = sab === undefined ? null : new InlineGrants(sab);
  }

  /**
   * Serve `t` (a READ or WRITE whose data buffer is ready, its data in for a WRITE) here
   * if it qualifies (file comment); then its status is set, the data moved, and the
   * caller sends the response. False: the task goes to its LUN worker as usual.
   * `grants`: the session's grants by grantKey.
   */
  serve(t: Task, route: LunRoute, grants: Map<number, number>): boolean {
    const write = t.write;
    if (this.tmfInFlight !== 0 || write === t.read || t.attribute > TaskAttribute.SIMPLE) return false;
    const cdb = t.cdb;
    const control = CONTROL_AT[cdb[0]!]!;
    if (control < 0 || (cdb[1]! & PROTECT) !== 0 || (cdb[control]! & LINK) !== 0) return false;
    // The command's direction must be the opcode's: a READ opcode sent as a write is the LUN worker's to refuse.
    if (((cdb[0]! & 0x02) !== 0) !== write) return false;
    const key = grantKey(route.lunWorker, route.luIndex, write);
    const grant = grants.get(key);
    if (grant === undefined) return false;
    const lu = route.luIndex;
    const unit = unitKey(route.lunWorker, lu);
    const table = this.#tables[route.lunWorker];
    if (table == null) return false;
    const mem = this.#memory.get(unit);
    const file = this.#files.get(unit);
    if (file !== undefined && file.skip > 0) {
      file.skip--;
      return false;
    }
    const start = performance.now();
    const worker = this.#worker;
    if (!table.begin(lu, grant, worker)) {
      // Void for good: the next command of this kind goes the long way and may bring a new one.
      grants.delete(key);
      return false;
    }
    const kind = table.kind(lu);
    const lba = cdbLba(cdb);
    const blocks = cdbTransferLength(cdb);
    const capacity = table.blocks(lu);
    const blockSize = 2 ** table.blockShift(lu);
    const total = blocks * blockSize;
    const n = write ? total : Math.min(total, t.data.length);
    const position = lba * blockSize;
    // Out of range, nothing to move, a WRITE with more or less data than its CDB asks
    // for: the LUN worker answers. Then per kind: a RAM disk's memory replaced meanwhile
    // (checked here, inside: a grow swaps it with every grant void) or not (yet) that
    // large; a file request too large for the page cache path, or a FUA WRITE.
    let served = false;
    try {
      served =
        blocks !== 0 &&
        lba < capacity &&
        blocks <= capacity - lba &&
        !(write && (t.received !== total || t.data.length !== total));
      if (served && kind === InlineKind.RAM) {
        served =
          mem !== undefined && mem.gen === table.memoryGeneration(lu) && position + n <= mem.bytes.length;
        if (served) {
          if (write) t.data.copy(mem!.bytes, position, 0, n);
          else if (n > 0) mem!.bytes.copy(t.data, 0, position, position + n);
        }
      } else if (served && kind === InlineKind.FILE) {
        served =
          file !== undefined &&
          n <= FILE_MAX_BYTES &&
          !(write && cdb[0] !== 0x0a && (cdb[1]! & FUA) !== 0) &&
          this.#file(file, t.data, n, position, write, start);
      } else {
        served = false;
      }
    } finally {
      // Always: a raised word would hold every invalidation of the unit (file comment).
      table.end(lu, worker);
    }
    if (!served) return false;
    t.status = 0;
    t.senseLength = 0;
    // As the LUN worker reports them: a READ's whole transfer (an EDTL below it is an
    // overflow), the data-out a WRITE's CDB called for.
    t.dataInLength = write ? 0 : total;
    t.dataOutWanted = write ? total : 0;
    t.grant = 0;
    t.state = TaskState.RESPONDING;
    this.#counters?.count(
      route.lunWorker,
      lu,
      write ? Direction.WRITE : Direction.READ,
      n,
      performance.now() - start,
    );
    return true;
  }

  /** Count a file request that took `ms`; the third slow one in a window starts a backoff. */
  #timed(f: FileRecord, ms: number): void {
    f.served++;
    if (ms <= FILE_SLOW_MS) return;
    if (f.served - f.slowBefore <= FILE_SLOW_WINDOW) {
      f.skip = FILE_BACKOFF;
      f.slowAt = -Infinity;
      f.slowBefore = -Infinity;
      return;
    }
    f.slowBefore = f.slowAt;
    f.slowAt = f.served;
  }

  /**
   * One page-cache request on this worker's descriptor of the file, inside the grant's
   * INFLIGHT window, timed. False on an error or a short transfer: the LUN worker then
   * serves the command and reports the error with its sense data; a failing file starts
   * the backoff at once, so its errors are not met twice per command.
   */
  #file(f: FileRecord, data: Buffer, n: number, position: number, write: boolean, start: number): boolean {
    let ok = false;
    try {
      ok = (write ? fs.writeSync(f.fd, data, 0, n, position) : fs.readSync(f.fd, data, 0, n, position)) === n;
    } catch {
      ok = false;
    }
    if (ok) this.#timed(f, performance.now() - start);
    else f.skip = FILE_BACKOFF;
    return ok;
  }
}
