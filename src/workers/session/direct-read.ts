/**
 * Direct reads, the session worker's half (shared/ring/direct-grants.ts): a READ of a RAM
 * disk is answered here, copied from the disk's shared memory into the slab, when the
 * LUN worker owning the unit has granted this I_T nexus reads at the unit's current
 * epoch. No ring, no doorbell, no second thread: the command costs one memcpy beside
 * the iSCSI work this worker does anyway.
 *
 * Only the plain case is served here; everything else takes the ring, where the LUN
 * worker answers it exactly as before (its errors and sense data included):
 *  - READ(6/10/12/16) with SIMPLE (or untagged) task attribute, no RDPROTECT, no LINK
 *    bit, a non-zero transfer length inside the capacity;
 *  - a grant for the nexus and unit that still holds, and the unit's current memory;
 *  - no task management function of this worker on its way to a LUN worker, so a
 *    function and the commands after it stay in order.
 */
import { cdbLba, cdbTransferLength } from '../../shared/scsi/cdb.ts';
import { TaskAttribute } from '../../shared/scsi/command.ts';
import { DirectGrants, MAX_LU_SLOTS } from '../../shared/ring/direct-grants.ts';
import type { DirectReadCounters } from '../../shared/metrics/direct-read-counters.ts';
import type { DirectMemory } from '../../shared/wire/worker-data.ts';
import type { LunRoute } from '../../shared/wire/routes.ts';
import { TaskState, type Task } from './task.ts';

/** READ(6/10/12/16) (SBC-4 5.15-5.18) -> offset of the CONTROL byte. */
const CONTROL_AT = new Int8Array(256).fill(-1);
CONTROL_AT[0x08] = 5;
CONTROL_AT[0x28] = 9;
CONTROL_AT[0xa8] = 11;
CONTROL_AT[0x88] = 15;
/** CONTROL byte LINK bit (SAM-5 5.2): refused by the LUN worker. */
const LINK = 0x01;
/** RDPROTECT (byte 1 bits 7..5) of READ(10/12/16); reserved in READ(6). */
const PROTECT = 0xe0;

/** The key of a unit in the grant maps: LUN worker and unit index. */
export function directKey(lunWorker: number, luIndex: number): number {
  return lunWorker * MAX_LU_SLOTS + luIndex;
}

interface UnitMemory {
  readonly bytes: Buffer;
  readonly gen: number;
}

export class DirectReads {
  /** RAM disks' memory by directKey. */
  readonly #memory = new Map<number, UnitMemory>();
  /** Grant tables per LUN worker (replaced with the channel when a LUN worker is). */
  readonly #tables: (DirectGrants | null)[];
  readonly #counters: DirectReadCounters | null;
  /** Task management functions of this worker sent to a LUN worker and not yet acknowledged. */
  tmfInFlight = 0;

  constructor(tables: (SharedArrayBuffer | undefined)[], memory: readonly DirectMemory[], counters: DirectReadCounters | null) {
    this.#tables = tables.map((t) => (t === undefined ? null : new DirectGrants(t)));
    this.#counters = counters;
    for (const m of memory) this.setMemory(m.lunWorker, m.luIndex, m.gen, m.memory);
  }

  /** A RAM disk's (new) memory, sent by the supervisor. */
  setMemory(lunWorker: number, luIndex: number, gen: number, memory: SharedArrayBuffer): void {
    const key = directKey(lunWorker, luIndex);
    const known = this.#memory.get(key);
    // Messages may arrive out of order after a grow: keep the newest generation.
    if (known !== undefined && known.gen > gen) return;
    this.#memory.set(key, { bytes: Buffer.from(memory), gen });
  }

  /** LUN worker `l` was replaced: its channel brings the (same) grant table. */
  setTable(l: number, sab: SharedArrayBuffer | undefined): void {
    this.#tables[l] = sab === undefined ? null : new DirectGrants(sab);
  }

  /**
   * Answer `t` (a READ whose data buffer is ready) here if it qualifies (file comment);
   * then its status and data are set and the caller sends the response. False: the task
   * goes to its LUN worker as usual. `grants`: the session's grants by directKey.
   */
  read(t: Task, route: LunRoute, grants: Map<number, number>): boolean {
    if (this.tmfInFlight !== 0 || t.write || t.attribute > TaskAttribute.SIMPLE) return false;
    const cdb = t.cdb;
    const op = cdb[0]!;
    const control = CONTROL_AT[op]!;
    if (control < 0 || (cdb[1]! & PROTECT) !== 0 || (cdb[control]! & LINK) !== 0) return false;
    const key = directKey(route.lunWorker, route.luIndex);
    const grant = grants.get(key);
    if (grant === undefined) return false;
    const mem = this.#memory.get(key);
    const table = this.#tables[route.lunWorker];
    if (mem === undefined || table == null) return false;
    const lu = route.luIndex;
    if (mem.gen !== table.memoryGeneration(lu)) return false;
    const start = performance.now();
    if (!table.begin(lu, grant)) {
      // Void for good: the next READ of this unit goes the long way and may bring a new one.
      grants.delete(key);
      return false;
    }
    const lba = cdbLba(cdb);
    const blocks = cdbTransferLength(cdb);
    const capacity = table.blocks(lu);
    const blockSize = 2 ** table.blockShift(lu);
    const total = blocks * blockSize;
    const n = total < t.data.length ? total : t.data.length;
    const position = lba * blockSize;
    // Out of range, nothing to move, or memory not (yet) that large: the LUN worker answers.
    if (blocks === 0 || lba >= capacity || blocks > capacity - lba || position + n > mem.bytes.length) {
      table.end(lu);
      return false;
    }
    if (n > 0) mem.bytes.copy(t.data, 0, position, position + n);
    table.end(lu);
    t.lunWorker = route.lunWorker;
    t.luIndex = lu;
    t.status = 0;
    t.senseLength = 0;
    // As the LUN worker reports it: the whole transfer, so an EDTL below it is an overflow.
    t.dataInLength = total;
    t.dataOutWanted = 0;
    t.grant = 0;
    t.state = TaskState.RESPONDING;
    this.#counters?.count(route.lunWorker, lu, n, performance.now() - start);
    return true;
  }
}
