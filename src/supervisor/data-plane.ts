/**
 * The node's shared memory, allocated once by the supervisor before any worker starts:
 * doorbells, per-session-worker slabs and nexus tables, the rings of every (session
 * worker, LUN worker) pair, the node-wide session counters and TSIH table. Workers get
 * their share in workerData (shared/wire/worker-data.ts).
 */
import type { SpindleConfig } from '../shared/config-types.ts';
import { alignedSharedBuffer } from '../shared/aligned-memory.ts';
import { Doorbell } from '../shared/ring/doorbell.ts';
import { SpscRing } from '../shared/ring/spsc-ring.ts';
import { CMD_DESC_BYTES, CPL_DESC_BYTES } from '../shared/ring/descriptors.ts';
import { NexusTable } from '../shared/ring/nexus-table.ts';
import { TsihTable } from '../shared/iscsi/tsih-table.ts';
import type { LunChannelInit, SessionLinkInit } from '../shared/wire/worker-data.ts';
import { MAX_TARGET_SLOTS } from './topology.ts';

/** Descriptors per ring; a session worker never has more in flight with one LUN worker. */
export const RING_CAPACITY = 1024;
/**
 * Slab granule: every data buffer starts on a 4 KiB boundary of a page-aligned slab, so
 * the LUN worker can hand it to O_DIRECT I/O as it is (shared/aligned-memory.ts).
 */
export const SLAB_MIN_BLOCK = 4096;
/**
 * Largest slab: the buddy allocator works with 32-bit offsets (shared/ring/slab.ts, at
 * most 2^31 bytes), below the 4 GiB a WebAssembly memory can hold.
 */
export const MAX_SLAB_BYTES = 2 ** 31;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * The per-session-worker slab: room for eight max-size transfers at once (at least 64 MiB,
 * at most MAX_SLAB_BYTES: with `maxTransferLength` above 256 MiB fewer such transfers fit
 * at once, and the session worker waits for slab space as it does when the slab is full).
 */
export function slabBytes(config: SpindleConfig): number {
  return Math.min(MAX_SLAB_BYTES, nextPow2(Math.max(64 * 1024 * 1024, 8 * config.iscsi.maxTransferLength)));
}

export class DataPlane {
  readonly lunWorkers: number;
  readonly sessionWorkers: number;
  readonly lunDoorbells: Doorbell[];
  readonly sessionDoorbells: Doorbell[];
  readonly slabs: SharedArrayBuffer[];
  readonly nexusTables: SharedArrayBuffer[];
  /** Sessions per target slot, node-wide (Int32 each). */
  readonly sessionCounts: SharedArrayBuffer;
  readonly tsihTable: SharedArrayBuffer;
  /** rings[s][l]: the command and completion rings of session worker s with LUN worker l. */
  readonly #rings: { cmd: SharedArrayBuffer; cpl: SharedArrayBuffer }[][];

  constructor(config: SpindleConfig, lunWorkers: number, sessionWorkers: number) {
    this.lunWorkers = lunWorkers;
    this.sessionWorkers = sessionWorkers;
    this.lunDoorbells = Array.from({ length: lunWorkers }, () => new Doorbell());
    this.sessionDoorbells = Array.from({ length: sessionWorkers }, () => new Doorbell());
    const slabSize = slabBytes(config);
    // Page aligned (a shared WebAssembly.Memory): READ and WRITE data goes between the slab
    // and an O_DIRECT backing store with no bounce copy.
    this.slabs = Array.from({ length: sessionWorkers }, () => alignedSharedBuffer(slabSize));
    this.nexusTables = Array.from({ length: sessionWorkers }, () => NexusTable.create().sab);
    this.sessionCounts = new SharedArrayBuffer(4 * MAX_TARGET_SLOTS);
    this.tsihTable = TsihTable.createBuffer();
    this.#rings = Array.from({ length: sessionWorkers }, () =>
      Array.from({ length: lunWorkers }, () => ({
        cmd: SpscRing.create(RING_CAPACITY, CMD_DESC_BYTES).sab,
        cpl: SpscRing.create(RING_CAPACITY, CPL_DESC_BYTES).sab,
      })),
    );
  }

  #ring(s: number, l: number): { cmd: SharedArrayBuffer; cpl: SharedArrayBuffer } {
    const r = this.#rings[s]?.[l];
    if (r === undefined) throw new RangeError(`no ring pair (session ${s}, lun ${l})`);
    return r;
  }

  /** LUN worker `l`'s view of its links to every session worker. */
  sessionLinks(l: number): SessionLinkInit[] {
    return Array.from({ length: this.sessionWorkers }, (_, s) => {
      const r = this.#ring(s, l);
      return {
        cmdRing: r.cmd,
        cplRing: r.cpl,
        capacity: RING_CAPACITY,
        slab: this.slabs[s]!,
        slabMinBlock: SLAB_MIN_BLOCK,
        doorbell: this.sessionDoorbells[s]!.sab,
        nexusTable: this.nexusTables[s]!,
      };
    });
  }

  /** Session worker `s`'s view of its channels to every LUN worker. */
  lunChannels(s: number): LunChannelInit[] {
    return Array.from({ length: this.lunWorkers }, (_, l) => {
      const r = this.#ring(s, l);
      return { cmdRing: r.cmd, cplRing: r.cpl, capacity: RING_CAPACITY, peerDoorbell: this.lunDoorbells[l]!.sab };
    });
  }
}
