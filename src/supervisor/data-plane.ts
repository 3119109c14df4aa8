/**
 * The node's shared memory, allocated by the supervisor: doorbells, per-session-worker
 * slabs and nexus tables, the rings of every (session worker, LUN worker) pair, the
 * node-wide session counters, TSIH table and worker heartbeats. Workers get their share in
 * workerData (shared/wire/worker-data.ts).
 *
 * A worker that dies takes nothing here with it, but what it was writing may be half
 * written: its replacement gets fresh rings, doorbell (and, for a session worker, a fresh
 * slab and nexus table) rather than reusing memory in an unknown state (replaceLunWorker,
 * replaceSessionWorker; issue 12).
 */
import type { SpindleConfig } from '../shared/config-types.ts';
import { alignedSharedBuffer } from '../shared/aligned-memory.ts';
import { Doorbell } from '../shared/ring/doorbell.ts';
import { SpscRing } from '../shared/ring/spsc-ring.ts';
import { CMD_DESC_BYTES, CPL_DESC_BYTES } from '../shared/ring/descriptors.ts';
import { NexusTable } from '../shared/ring/nexus-table.ts';
import { TsihTable } from '../shared/iscsi/tsih-table.ts';
import { SessionCounts } from '../shared/ring/session-counts.ts';
import { createHeartbeats } from '../shared/ring/heartbeat.ts';
import type { LunChannelInit, SessionLinkInit } from '../shared/wire/worker-data.ts';
import { InlineGrants } from '../shared/ring/inline-grants.ts';

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

interface RingPairSabs {
  cmd: SharedArrayBuffer;
  cpl: SharedArrayBuffer;
}

function ringPair(): RingPairSabs {
  return { cmd: SpscRing.create(RING_CAPACITY, CMD_DESC_BYTES).sab, cpl: SpscRing.create(RING_CAPACITY, CPL_DESC_BYTES).sab };
}

export class DataPlane {
  readonly lunWorkers: number;
  readonly sessionWorkers: number;
  readonly lunDoorbells: Doorbell[];
  readonly sessionDoorbells: Doorbell[];
  readonly slabs: SharedArrayBuffer[];
  readonly nexusTables: SharedArrayBuffer[];
  /** Sessions per (session worker, target slot) (shared/ring/session-counts.ts). */
  readonly sessionCounts: SharedArrayBuffer;
  readonly tsihTable: SharedArrayBuffer;
  /** One counter per worker, bumped by its event loop (shared/ring/heartbeat.ts). */
  readonly heartbeats: SharedArrayBuffer;
  /**
   * Per LUN worker: its units' inline I/O grant (shared/ring/inline-grants.ts). Kept
   * when the worker is replaced: its successor moves every epoch, voiding old grants.
   */
  readonly grants: SharedArrayBuffer[];
  readonly #slabSize: number;
  /** rings[s][l]: the command and completion rings of session worker s with LUN worker l. */
  readonly #rings: RingPairSabs[][];

  constructor(config: SpindleConfig, lunWorkers: number, sessionWorkers: number) {
    this.lunWorkers = lunWorkers;
    this.sessionWorkers = sessionWorkers;
    this.lunDoorbells = Array.from({ length: lunWorkers }, () => new Doorbell());
    this.sessionDoorbells = Array.from({ length: sessionWorkers }, () => new Doorbell());
    this.#slabSize = slabBytes(config);
    // Page aligned (a shared WebAssembly.Memory): READ and WRITE data goes between the slab
    // and an O_DIRECT backing store with no bounce copy.
    this.slabs = Array.from({ length: sessionWorkers }, () => alignedSharedBuffer(this.#slabSize));
    this.nexusTables = Array.from({ length: sessionWorkers }, () => NexusTable.create().sab);
    this.sessionCounts = SessionCounts.createBuffer();
    this.tsihTable = TsihTable.createBuffer();
    this.heartbeats = createHeartbeats();
    this.grants = Array.from({ length: lunWorkers }, () => new InlineGrants().sab);
    this.#rings = Array.from({ length: sessionWorkers }, () => Array.from({ length: lunWorkers }, ringPair));
  }

  #ring(s: number, l: number): RingPairSabs {
    const r = this.#rings[s]?.[l];
    if (r === undefined) throw new RangeError(`no ring pair (session ${s}, lun ${l})`);
    return r;
  }

  /** LUN worker `l`'s view of its link to session worker `s`. */
  sessionLink(s: number, l: number): SessionLinkInit {
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
  }

  /** LUN worker `l`'s view of its links to every session worker. */
  sessionLinks(l: number): SessionLinkInit[] {
    return Array.from({ length: this.sessionWorkers }, (_, s) => this.sessionLink(s, l));
  }

  /** Session worker `s`'s view of its channel to LUN worker `l`. */
  lunChannel(s: number, l: number): LunChannelInit {
    const r = this.#ring(s, l);
    return { cmdRing: r.cmd, cplRing: r.cpl, capacity: RING_CAPACITY, peerDoorbell: this.lunDoorbells[l]!.sab, grants: this.grants[l]! };
  }

  /** Session worker `s`'s view of its channels to every LUN worker. */
  lunChannels(s: number): LunChannelInit[] {
    return Array.from({ length: this.lunWorkers }, (_, l) => this.lunChannel(s, l));
  }

  /** LUN worker `l` died: fresh rings with every session worker and a fresh doorbell. */
  replaceLunWorker(l: number): void {
    for (let s = 0; s < this.sessionWorkers; s++) this.#rings[s]![l] = ringPair();
    this.lunDoorbells[l] = new Doorbell();
  }

  /**
   * Session worker `s` died: fresh rings with every LUN worker, slab, nexus table and
   * doorbell; its TSIHs and session counts are freed (its sessions are gone).
   */
  replaceSessionWorker(s: number): void {
    this.#rings[s] = Array.from({ length: this.lunWorkers }, ringPair);
    this.slabs[s] = alignedSharedBuffer(this.#slabSize);
    this.nexusTables[s] = NexusTable.create().sab;
    this.sessionDoorbells[s] = new Doorbell();
    TsihTable.releaseAllOf(this.tsihTable, s);
    SessionCounts.clearWorker(this.sessionCounts, s);
  }
}
