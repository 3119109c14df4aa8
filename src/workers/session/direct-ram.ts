/**
 * Direct I/O on RAM disks, the session worker's half (shared/ring/direct-grants.ts): a
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
import { cdbLba, cdbTransferLength } from '../../shared/scsi/cdb.ts';
import { TaskAttribute } from '../../shared/scsi/command.ts';
import { DirectGrants, MAX_LU_SLOTS } from '../../shared/ring/direct-grants.ts';
import { Direction, type DirectCounters } from '../../shared/metrics/direct-counters.ts';
import type { DirectMemory } from '../../shared/wire/worker-data.ts';
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

/** The key of a unit and direction in a session's grant map. */
export function grantKey(lunWorker: number, luIndex: number, write: boolean): number {
  return (lunWorker * MAX_LU_SLOTS + luIndex) * 2 + (write ? 1 : 0);
}

interface UnitMemory {
  readonly bytes: Buffer;
  readonly gen: number;
}

export class DirectRam {
  /** RAM disks' memory by lunWorker * MAX_LU_SLOTS + luIndex. */
  readonly #memory = new Map<number, UnitMemory>();
  /** Grant tables per LUN worker (replaced with the channel when a LUN worker is). */
  readonly #tables: (DirectGrants | null)[];
  readonly #counters: DirectCounters | null;
  /** This session worker's index (its INFLIGHT word in the grant tables). */
  readonly #worker: number;
  /** Task management functions of this worker sent to a LUN worker and not yet acknowledged. */
  tmfInFlight = 0;

  constructor(worker: number, tables: (SharedArrayBuffer | undefined)[], memory: readonly DirectMemory[], counters: DirectCounters | null) {
    this.#worker = worker;
    this.#tables = tables.map((t) => (t === undefined ? null : new DirectGrants(t)));
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
    this.#tables[l] = sab === undefined ? null : new DirectGrants(sab);
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
    const mem = this.#memory.get(route.lunWorker * MAX_LU_SLOTS + lu);
    const table = this.#tables[route.lunWorker];
    if (mem === undefined || table == null) return false;
    if (mem.gen !== table.memoryGeneration(lu)) return false;
    const start = performance.now();
    const worker = this.#worker;
    if (!table.begin(lu, grant, worker)) {
      // Void for good: the next command of this kind goes the long way and may bring a new one.
      grants.delete(key);
      return false;
    }
    const lba = cdbLba(cdb);
    const blocks = cdbTransferLength(cdb);
    const capacity = table.blocks(lu);
    const blockSize = 2 ** table.blockShift(lu);
    const total = blocks * blockSize;
    const n = write ? total : Math.min(total, t.data.length);
    const position = lba * blockSize;
    // The memory replaced meanwhile (checked again inside: a grow swaps it with every
    // grant void), out of range, nothing to move, a WRITE with more or less data than its
    // CDB asks for, or memory not (yet) that large: the LUN worker answers.
    if (
      mem.gen !== table.memoryGeneration(lu) ||
      blocks === 0 ||
      lba >= capacity ||
      blocks > capacity - lba ||
      position + n > mem.bytes.length ||
      (write && (t.received !== total || t.data.length !== total))
    ) {
      table.end(lu, worker);
      return false;
    }
    if (write) t.data.copy(mem.bytes, position, 0, n);
    else if (n > 0) mem.bytes.copy(t.data, 0, position, position + n);
    table.end(lu, worker);
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
}
