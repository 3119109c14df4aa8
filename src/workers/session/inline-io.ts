/**
 * Inline I/O on RAM disks and page-cached files, the session worker's half (shared/ring/inline-grants.ts): a
 * READ or WRITE of a RAM disk is served here, copied between the disk's shared memory
 * and the slab, when the LUN worker owning the unit has granted this I_T nexus commands
 * of that kind at the unit's current epoch. No ring, no doorbell, no second thread: the
 * command costs one memcpy beside the iSCSI work this worker does anyway.
 *
 * Only the plain case is served here; everything else takes the ring, where the LUN
 * worker answers it exactly as before (its errors and sense data included):
 *  - READ(6/10/12/16) or WRITE(6/10/12/16) with SIMPLE (or untagged) task attribute, no
 *    RDPROTECT/WRPROTECT, no LINK bit, a non-zero transfer length inside the capacity;
 *    a WRITE with exactly the data its CDB asks for (no residual, no partial block);
 *  - a grant for the nexus, unit and kind that still holds, and the unit's current memory;
 *  - no task management function of this worker on its way to a LUN worker, so a
 *    function and the commands after it stay in order.
 * RAM is as durable as it gets: FUA and the write cache setting ask nothing more of it.
 */
import fs from 'node:fs';
import { cdbLba, cdbTransferLength } from '../../shared/scsi/cdb.ts';
import { TaskAttribute } from '../../shared/scsi/command.ts';
import { InlineGrants, InlineKind, MAX_LU_SLOTS } from '../../shared/ring/inline-grants.ts';
import { Direction, type InlineCounters } from '../../shared/metrics/inline-counters.ts';
import type { InlineMemory } from '../../shared/wire/worker-data.ts';
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
 * A file is served here only by the page cache, as the LUN worker serves it in place
 * (backing/file-store.ts): at most this much per command, and one request slower than
 * FILE_SLOW_MS (it went to the disk, or the kernel throttled a writer) leaves the unit's
 * next FILE_BACKOFF commands to the LUN worker and its thread pool, so a disk-bound
 * unit does not stall every connection of this worker.
 */
const FILE_MAX_BYTES = 128 * 1024;
const FILE_SLOW_MS = 0.25;
const FILE_BACKOFF = 1024;

/** The key of a unit and direction in a session's grant map. */
export function grantKey(lunWorker: number, luIndex: number, write: boolean): number {
  return (lunWorker * MAX_LU_SLOTS + luIndex) * 2 + (write ? 1 : 0);
}

interface UnitMemory {
  readonly bytes: Buffer;
  readonly gen: number;
}

export class InlineIo {
  /** RAM disks' memory by lunWorker * MAX_LU_SLOTS + luIndex. */
  readonly #memory = new Map<number, UnitMemory>();
  /** Grant tables per LUN worker (replaced with the channel when a LUN worker is). */
  readonly #tables: (InlineGrants | null)[];
  readonly #counters: InlineCounters | null;
  /** Units whose file I/O was slow here: commands still to leave to the LUN worker. */
  readonly #fileBackoff = new Map<number, number>();
  /** This session worker's index (its INFLIGHT word in the grant tables). */
  readonly #worker: number;
  /** Task management functions of this worker sent to a LUN worker and not yet acknowledged. */
  tmfInFlight = 0;

  constructor(worker: number, tables: (SharedArrayBuffer | undefined)[], memory: readonly InlineMemory[], counters: InlineCounters | null) {
    this.#worker = worker;
    this.#tables = tables.map((t) => (t === undefined ? null : new InlineGrants(t)));
    this.#counters = counters;
    for (const m of memory) this.setMemory(m.lunWorker, m.luIndex, m.gen, m.memory);
  }

  /** A RAM disk's (new) memory, sent by the supervisor. */
  setMemory(lunWorker: number, luIndex: number, gen: number, memory: SharedArrayBuffer): void {
    const key = lunWorker * MAX_LU_SLOTS + luIndex;
    const known = this.#memory.get(key);
    // Messages may arrive out of order after a grow: keep the newest generation.
    if (known !== undefined && known.gen > gen) return;
    this.#memory.set(key, { bytes: Buffer.from(memory), gen });
  }

  /** The RAM disk was removed (a reload): nothing routes to it any more; free its memory. */
  forget(lunWorker: number, luIndex: number): void {
    this.#memory.delete(lunWorker * MAX_LU_SLOTS + luIndex);
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
    const unit = route.lunWorker * MAX_LU_SLOTS + lu;
    const table = this.#tables[route.lunWorker];
    if (table == null) return false;
    const mem = this.#memory.get(unit);
    const skip = this.#fileBackoff.get(unit);
    if (skip !== undefined) {
      if (skip > 1) this.#fileBackoff.set(unit, skip - 1);
      else this.#fileBackoff.delete(unit);
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
    let served =
      blocks !== 0 &&
      lba < capacity &&
      blocks <= capacity - lba &&
      !(write && (t.received !== total || t.data.length !== total));
    if (served && kind === InlineKind.RAM) {
      served = mem !== undefined && mem.gen === table.memoryGeneration(lu) && position + n <= mem.bytes.length;
      if (served) {
        if (write) t.data.copy(mem!.bytes, position, 0, n);
        else if (n > 0) mem!.bytes.copy(t.data, 0, position, position + n);
      }
    } else if (served && kind === InlineKind.FILE) {
      served = n <= FILE_MAX_BYTES && !(write && cdb[0] !== 0x0a && (cdb[1]! & FUA) !== 0) && this.#file(table.fd(lu), t.data, n, position, write);
      const took = performance.now() - start;
      if (took > FILE_SLOW_MS) this.#fileBackoff.set(unit, FILE_BACKOFF);
    } else {
      served = false;
    }
    table.end(lu, worker);
    if (!served) return false;
    t.status = 0;
    t.senseLength = 0;
    // As the LUN worker reports them: a READ's whole transfer (an EDTL below it is an
    // overflow), the data-out a WRITE's CDB called for.
    t.dataInLength = write ? 0 : total;
    t.dataOutWanted = write ? total : 0;
    t.grant = 0;
    t.state = TaskState.RESPONDING;
    this.#counters?.count(route.lunWorker, lu, write ? Direction.WRITE : Direction.READ, n, performance.now() - start);
    return true;
  }

  /**
   * One page-cache request on the store's descriptor, inside the grant's INFLIGHT window
   * (the LUN worker closes no descriptor before it has waited that window out). False
   * on an error or a short transfer: the LUN worker then serves the command, and reports
   * the error with its sense data.
   */
  #file(fd: number, data: Buffer, n: number, position: number, write: boolean): boolean {
    if (fd < 0) return false;
    try {
      return (write ? fs.writeSync(fd, data, 0, n, position) : fs.readSync(fd, data, 0, n, position)) === n;
    } catch {
      return false;
    }
  }
}
