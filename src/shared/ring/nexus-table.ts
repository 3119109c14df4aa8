/**
 * Nexus table: how a session worker tells LUN workers who is behind a nexus handle.
 *
 * Commands on the rings carry only a 32-bit nexus handle. The identity behind it
 * (initiator name, ISID, target name, relative target port, port group) is written by
 * the owning session worker into a slot of this SharedArrayBuffer table at login, before
 * the session's first command can reach a ring, and read by LUN workers on first use.
 *
 * Handle: bits 31..24 session worker index, 23..12 slot generation, 11..0 slot.
 * A slot is reused only after every LUN worker has acknowledged the nexus-loss
 * descriptor for its previous occupant, so a LUN worker never reads a slot that has
 * been overwritten under a handle it still uses.
 *
 * Slot layout (SLOT_BYTES):
 *   0   i32  generation of the occupant (published last with Atomics.store)
 *   4   u16  relative target port identifier
 *   6   u16  target port group
 *   8   u8[6] ISID
 *   14  u8   initiator name length
 *   15  u8   target name length
 *   16  u8[256] initiator name (UTF-8; iSCSI names are at most 223 bytes)
 *   272 u8[256] target name
 */
export const NEXUS_SLOTS = 4096;
const SLOT_BYTES = 528;
const NAME_MAX = 255;

export interface NexusRecord {
  initiatorName: string;
  isid: Uint8Array;
  targetName: string;
  relativeTargetPortId: number;
  targetPortGroup: number;
}

export function nexusHandle(worker: number, generation: number, slot: number): number {
  return (((worker & 0xff) << 24) | ((generation & 0xfff) << 12) | (slot & 0xfff)) >>> 0;
}

export function handleWorker(id: number): number {
  return id >>> 24;
}

export class NexusTable {
  readonly sab: SharedArrayBuffer;
  private readonly bytes: Uint8Array;
  private readonly gens: Int32Array;

  static create(): NexusTable {
    return new NexusTable(new SharedArrayBuffer(NEXUS_SLOTS * SLOT_BYTES));
  }

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.bytes = new Uint8Array(sab);
    this.gens = new Int32Array(sab);
  }

  /** Writer side (session worker): fill a slot, then publish its generation. */
  write(slot: number, generation: number, r: NexusRecord): void {
    const o = slot * SLOT_BYTES;
    const b = this.bytes;
    const dv = new DataView(this.sab, o, SLOT_BYTES);
    dv.setUint16(4, r.relativeTargetPortId, true);
    dv.setUint16(6, r.targetPortGroup, true);
    b.set(r.isid.subarray(0, 6), o + 8);
    const init = Buffer.from(r.initiatorName, 'utf8').subarray(0, NAME_MAX);
    const tgt = Buffer.from(r.targetName, 'utf8').subarray(0, NAME_MAX);
    b[o + 14] = init.length;
    b[o + 15] = tgt.length;
    b.set(init, o + 16);
    b.set(tgt, o + 272);
    // Publish: the generation store orders the field writes before it (SC atomics).
    Atomics.store(this.gens, o / 4, generation);
  }

  /** Reader side (LUN worker): the record behind a handle, or undefined if not (or no longer) there. */
  read(id: number): NexusRecord | undefined {
    const slot = id & 0xfff;
    const gen = (id >>> 12) & 0xfff;
    const o = slot * SLOT_BYTES;
    if (Atomics.load(this.gens, o / 4) !== gen) return undefined;
    const b = Buffer.from(this.sab, o, SLOT_BYTES);
    return {
      relativeTargetPortId: b.readUInt16LE(4),
      targetPortGroup: b.readUInt16LE(6),
      isid: Uint8Array.from(b.subarray(8, 14)),
      initiatorName: b.toString('utf8', 16, 16 + b[14]!),
      targetName: b.toString('utf8', 272, 272 + b[15]!),
    };
  }
}

/**
 * Slot allocation on the session worker (single owner). Generations start at 1 so a
 * zeroed slot never matches a handle.
 */
export class NexusSlots {
  private readonly free: number[] = [];
  private readonly generation = new Uint16Array(NEXUS_SLOTS);

  constructor() {
    for (let i = NEXUS_SLOTS - 1; i >= 0; i--) this.free.push(i);
  }

  /** [slot, generation], or undefined when every slot is in use. */
  acquire(): [number, number] | undefined {
    const slot = this.free.pop();
    if (slot === undefined) return undefined;
    const g = (this.generation[slot]! % 0xfff) + 1;
    this.generation[slot] = g;
    return [slot, g];
  }

  release(slot: number): void {
    this.free.push(slot);
  }
}
