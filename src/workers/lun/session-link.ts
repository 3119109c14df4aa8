/**
 * A LUN worker's end of the data plane towards one session worker: the command ring it
 * consumes, the completion ring it produces into, the session worker's doorbell, and its
 * slab (where command data lives: a READ is read from the backing store straight into it).
 */
import { SpscRing } from '../../shared/ring/spsc-ring.ts';
import { Doorbell } from '../../shared/ring/doorbell.ts';
import { CMD_DESC_BYTES, CPL_DESC_BYTES } from '../../shared/ring/descriptors.ts';
import type { SessionLinkInit } from '../../shared/wire/worker-data.ts';

export class SessionLink {
  /** Index of the session worker at the other end. */
  readonly index: number;
  readonly cmd: SpscRing;
  readonly cpl: SpscRing;
  readonly peer: Doorbell;
  readonly slab: Buffer;
  readonly minBlock: number;
  /** Cached slab views by granule, replaced when the length differs (no view per command). */
  readonly views: (Buffer | undefined)[];
  /** A completion was published during the current batch: ring the peer at its end. */
  completedSinceRing = false;
  /**
   * The session worker at the other end died (issue 12): nothing is read from this ring
   * any more and completions of its commands are dropped, not written.
   */
  dead = false;

  constructor(index: number, s: SessionLinkInit) {
    this.index = index;
    this.cmd = new SpscRing(s.cmdRing, s.capacity, CMD_DESC_BYTES);
    this.cpl = new SpscRing(s.cplRing, s.capacity, CPL_DESC_BYTES);
    this.peer = new Doorbell(s.doorbell);
    this.slab = Buffer.from(s.slab);
    this.minBlock = s.slabMinBlock;
    this.views = new Array<Buffer | undefined>(s.slab.byteLength / s.slabMinBlock);
  }

  view(offset: number, length: number): Buffer {
    const g = offset / this.minBlock;
    let v = this.views[g];
    if (v === undefined || v.length !== length) {
      v = this.slab.subarray(offset, offset + length);
      this.views[g] = v;
    }
    return v;
  }
}
