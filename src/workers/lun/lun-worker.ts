/**
 * LUN worker entry. Owns a set of logical units (their backing stores and all their
 * SCSI state) and executes the commands session workers push onto its rings. Commands
 * arrive as binary descriptors; data lives in the session workers' slabs, so a READ is
 * read from the backing store straight into the slab the session worker sends from.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Doorbell, consumeForever } from '../../shared/ring/doorbell.ts';
import { SpscRing } from '../../shared/ring/spsc-ring.ts';
import { Cmd, Cpl, CMD_DESC_BYTES, CPL_DESC_BYTES, CPL_SENSE_MAX, DescKind } from '../../shared/ring/descriptors.ts';
import { createLogger } from '../../shared/logging.ts';
import { decodeControl, encodeControl } from '../../shared/messages.ts';
import type { DeviceConfig } from '../../shared/config-types.ts';
import type { IoContinuation, ScsiCommand } from '../../shared/scsi/command.ts';
import { ScsiStatus } from '../../shared/scsi/command.ts';
import { LogicalUnit } from './logical-unit.ts';
import { submitCommand } from './execute.ts';
import { WorkerNexusDirectory } from './nexus-directory.ts';
import { nexusLost } from './nexus-events.ts';
import { PortGroupTable, type AluaWire } from './alua/port-groups.ts';
import { applyTaskManagement } from './task-management.ts';

export interface LunWorkerData {
  index: number;
  clusterId: string;
  /** Local state directory (saved mode pages, later embedded cluster state). */
  stateDir: string;
  /** Largest transfer one command may move (VPD 0xB0 MAXIMUM TRANSFER LENGTH). */
  maxTransferLength: number;
  devices: DeviceConfig[];
  doorbell: SharedArrayBuffer;
  /** Per session worker: its rings with us, its slab and its doorbell. */
  sessions: {
    cmdRing: SharedArrayBuffer;
    cplRing: SharedArrayBuffer;
    capacity: number;
    slab: SharedArrayBuffer;
    slabMinBlock: number;
    doorbell: SharedArrayBuffer;
    nexusTable: SharedArrayBuffer;
  }[];
  logLevel: string;
  pretty: boolean;
  /**
   * ALUA topology (alua/port-groups.ts): the node's target port groups and which of them
   * export each device. Absent: one group (id 1, relative target port 1).
   */
  alua?: AluaWire;
}

const data = workerData as LunWorkerData;
const log = createLogger({ name: 'lun', level: data.logLevel, pretty: data.pretty, bindings: { worker: data.index } });

/** The rings and slab shared with one session worker. */
class SessionLink {
  readonly cmd: SpscRing;
  readonly cpl: SpscRing;
  readonly peer: Doorbell;
  readonly slab: Buffer;
  readonly minBlock: number;
  /** Cached slab views by granule, replaced when the length differs (see TaskPool). */
  readonly views: (Buffer | undefined)[];
  completedSinceRing = false;

  constructor(s: LunWorkerData['sessions'][number]) {
    this.cmd = new SpscRing(s.cmdRing, s.capacity, CMD_DESC_BYTES);
    this.cpl = new SpscRing(s.cplRing, s.capacity, CPL_DESC_BYTES);
    this.peer = new Doorbell(s.doorbell);
    this.slab = Buffer.from(s.slab);
    this.minBlock = s.slabMinBlock;
    this.views = new Array(s.slab.byteLength / s.slabMinBlock);
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

const EMPTY = Buffer.alloc(0);

/** A pooled command object: one per in-flight command, reset in place. */
class LunTask implements ScsiCommand {
  readonly cdb = Buffer.alloc(32);
  cdbLength = 0;
  data: Buffer = EMPTY;
  expectedLength = 0;
  dataOutLength = 0;
  dataInLength = 0;
  dataOutWanted = 0;
  status = 0;
  readonly sense = Buffer.alloc(252);
  senseLength = 0;
  lun = 0;
  nexus = 0;
  attribute = 0;
  onIo: IoContinuation | null = null;
  readonly ioTrampoline: (err: NodeJS.ErrnoException | null) => void;
  link: SessionLink | null = null;
  /** The LU executing this command (its task set holds it until finish). */
  lu: LogicalUnit | null = null;
  tag = 0;
  /** Aborted by a task management function: complete without status... */
  aborted = false;
  /** ...or, with TAS = 1 and another nexus's TMF, with TASK ABORTED (task-management.ts). */
  abortedWithStatus = false;
  busy = false;

  constructor() {
    this.ioTrampoline = (err) => {
      const k = this.onIo;
      this.onIo = null;
      if (k) k(this, err);
    };
  }

  finish(): void {
    const link = this.link!;
    const o = link.cpl.reserve();
    if (o < 0) {
      // Cannot happen: a session worker never has more commands in flight with us than
      // the ring holds, and the completion ring is as large as the command ring.
      throw new Error('completion ring full');
    }
    const v = link.cpl.view;
    if (this.aborted) {
      if (this.abortedWithStatus) {
        // SPC-4 7.5.8 TAS = 1: TASK ABORTED, no sense, no data (SAM-5 5.3.1).
        this.status = ScsiStatus.TASK_ABORTED;
        this.senseLength = 0;
        this.dataInLength = 0;
        this.dataOutWanted = 0;
        v.setUint8(o + Cpl.KIND, DescKind.COMPLETION);
      } else {
        v.setUint8(o + Cpl.KIND, DescKind.COMPLETION_ABORTED);
      }
    } else {
      v.setUint8(o + Cpl.KIND, DescKind.COMPLETION);
    }
    v.setUint8(o + Cpl.STATUS, this.status);
    const sl = Math.min(this.senseLength, CPL_SENSE_MAX);
    v.setUint16(o + Cpl.SENSE_LENGTH, sl, true);
    v.setUint32(o + Cpl.TAG, this.tag, true);
    // Lengths can exceed 32 bits (a READ(16) of > 4 GiB); clamping keeps the residual
    // "more than EDTL" rather than wrapping to a small number.
    v.setUint32(o + Cpl.DATA_IN_LENGTH, Math.min(this.dataInLength, 0xffffffff), true);
    v.setUint32(o + Cpl.DATA_OUT_WANTED, Math.min(this.dataOutWanted, 0xffffffff), true);
    if (sl > 0) link.cpl.bytes.set(this.sense.subarray(0, sl), o + Cpl.SENSE);
    link.cpl.publish();
    // Leave the task set only now, after the completion is on the ring: remove() may
    // enable dormant commands (and answer waiting TMFs), whose completions then follow.
    const lu = this.lu;
    if (lu !== null) {
      this.lu = null;
      lu.taskSet.remove(this);
    }
    release(this);
    if (inBatch) link.completedSinceRing = true;
    else link.peer.ring();
  }
}

const free: LunTask[] = [];
let inflight = 0;
function acquire(): LunTask {
  const t = free.pop() ?? new LunTask(); // pool growth only at a new high-water mark
  t.busy = true;
  inflight++;
  return t;
}
function release(t: LunTask): void {
  t.busy = false;
  t.aborted = false;
  t.abortedWithStatus = false;
  t.link = null;
  t.data = EMPTY;
  t.onIo = null;
  inflight--;
  free.push(t);
}

let units: LogicalUnit[] = [];
/** This worker's ALUA target port group table (set in main when the topology is given). */
let portGroups: PortGroupTable | null = null;
const links = data.sessions.map((s) => new SessionLink(s));
const nexuses = new WorkerNexusDirectory(data.sessions.map((s) => s.nexusTable));
const doorbell = new Doorbell(data.doorbell);
/** True while draining rings: completions then ring each peer once at the batch end. */
let inBatch = false;

function drainLink(link: SessionLink): number {
  const ring = link.cmd;
  const v = ring.view;
  const b = ring.bytes;
  let n = 0;
  for (let o = ring.peek(); o >= 0; o = ring.peek()) {
    const kind = v.getUint8(o + Cmd.KIND);
    if (kind !== DescKind.COMMAND) {
      const tag = v.getUint32(o + Cmd.TAG, true);
      const nexus = v.getUint32(o + Cmd.NEXUS, true);
      const fnCode = v.getUint8(o + Cmd.ATTRIBUTE);
      const luIdx = v.getUint32(o + Cmd.LU_INDEX, true);
      // TMF: ABORT TASK names its command by the session worker's tag (descriptors.ts).
      const refTag = v.getUint32(o + Cmd.CDB, true);
      ring.release();
      n++;
      if (kind === DescKind.NEXUS_LOSS) {
        const info = nexuses.get(nexus);
        for (const lu of units) nexusLost(lu, nexus, info);
        nexuses.forget(nexus);
      } else if (kind === DescKind.TMF) {
        const targets = luIdx === 0xffffffff ? units : units[luIdx] ? [units[luIdx]] : [];
        let waiting = targets.length;
        if (waiting === 0) acknowledge(link, tag);
        const refersTo = (c: ScsiCommand): boolean => (c as LunTask).link === link && (c as LunTask).tag === refTag;
        for (const lu of targets) {
          applyTaskManagement(
            lu,
            fnCode,
            nexus,
            () => {
              if (--waiting === 0) acknowledge(link, tag);
            },
            refersTo,
          );
        }
        continue;
      }
      acknowledge(link, tag);
      continue;
    }
    const t = acquire();
    t.link = link;
    t.tag = v.getUint32(o + Cmd.TAG, true);
    t.attribute = v.getUint8(o + Cmd.ATTRIBUTE);
    t.cdbLength = v.getUint8(o + Cmd.CDB_LENGTH);
    t.nexus = v.getUint32(o + Cmd.NEXUS, true);
    t.lun = v.getUint32(o + Cmd.LUN, true);
    const luIndex = v.getUint32(o + Cmd.LU_INDEX, true);
    const expected = v.getUint32(o + Cmd.EXPECTED_LENGTH, true);
    t.expectedLength = expected;
    t.dataOutLength = v.getUint32(o + Cmd.DATA_OUT_LENGTH, true);
    t.data = expected === 0 ? EMPTY : link.view(v.getUint32(o + Cmd.SLAB_OFFSET, true), expected);
    // Byte copy rather than set(subarray): no view object per command.
    const cdb = t.cdb;
    for (let i = 0; i < Cmd.CDB_MAX; i++) cdb[i] = b[o + Cmd.CDB + i];
    t.dataInLength = 0;
    t.dataOutWanted = 0;
    t.status = 0;
    t.senseLength = 0;
    ring.release();
    n++;
    const lu = units[luIndex];
    if (lu === undefined) {
      // The supervisor routes only to units it assigned us; anything else is a bug.
      log.error({ luIndex }, 'command for an unknown logical unit index');
      t.status = 0x02;
      t.senseLength = 0;
      t.finish();
      continue;
    }
    t.lu = lu;
    submitCommand(lu, t);
  }
  return n;
}

/** Complete a control descriptor (no status, no data) so its sender can reuse the task. */
function acknowledge(link: SessionLink, tag: number): void {
  const o = link.cpl.reserve();
  if (o < 0) throw new Error('completion ring full'); // impossible: see LunTask.finish
  const v = link.cpl.view;
  v.setUint8(o + Cpl.KIND, DescKind.COMPLETION);
  v.setUint8(o + Cpl.STATUS, 0);
  v.setUint16(o + Cpl.SENSE_LENGTH, 0, true);
  v.setUint32(o + Cpl.TAG, tag, true);
  v.setUint32(o + Cpl.DATA_IN_LENGTH, 0, true);
  v.setUint32(o + Cpl.DATA_OUT_WANTED, 0, true);
  link.cpl.publish();
  if (inBatch) link.completedSinceRing = true;
  else link.peer.ring();
}

function drainAll(): number {
  inBatch = true;
  let n = 0;
  for (let i = 0; i < links.length; i++) n += drainLink(links[i]);
  inBatch = false;
  for (let i = 0; i < links.length; i++) {
    const l = links[i];
    if (l.completedSinceRing) {
      l.completedSinceRing = false;
      l.peer.ring();
    }
  }
  return n;
}


async function main(): Promise<void> {
  try {
    units = await Promise.all(data.devices.map((d) => LogicalUnit.open(d, { clusterId: data.clusterId, maxTransferBytes: data.maxTransferLength, stateDir: data.stateDir })));
  } catch (err) {
    parentPort!.postMessage(encodeControl({ type: 'error', message: (err as Error).message }));
    return;
  }
  for (const u of units) u.nexuses = nexuses;
  if (data.alua !== undefined) {
    // One table per worker: setPortGroupState on it reaches every LU of this worker.
    portGroups = new PortGroupTable(data.alua);
    for (const u of units) portGroups.attach(u);
  }
  for (const d of data.devices) log.info({ device: d.name, backing: d.backing.type }, 'logical unit online');
  parentPort!.on('message', (raw: Uint8Array) => {
    const msg = decodeControl(raw);
    if (msg.type === 'stop') void stop();
  });
  void consumeForever(doorbell, drainAll);
  parentPort!.postMessage(encodeControl({ type: 'ready' }));
}

async function stop(): Promise<void> {
  // Session workers have drained, so nothing new arrives. A sanitize in progress stops
  // after its current chunk and resumes at the next start (sbc/sanitize-operation.ts);
  // wait out stragglers, then flush and close every store (SIGTERM promise:
  // acknowledged data is on disk).
  await Promise.all(units.map((u) => u.sbc.suspendSanitize()));
  const deadline = Date.now() + 10_000;
  while (inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await Promise.all(units.map((u) => u.close()));
  parentPort!.postMessage(encodeControl({ type: 'stopped' }));
}

void main();
