/**
 * LUN worker entry. Owns a set of logical units (their backing stores and all their
 * SCSI state) and executes the commands session workers push onto its rings. Commands
 * arrive as binary descriptors; data lives in the session workers' slabs, so a READ is
 * read from the backing store straight into the slab the session worker sends from.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Doorbell, consumeForever } from '../../shared/ring/doorbell.ts';
import { SpscRing } from '../../shared/ring/spsc-ring.ts';
import { Cmd, Cpl, CMD_DESC_BYTES, CPL_DESC_BYTES, CPL_SENSE_MAX, DescKind, UaEvent } from '../../shared/ring/descriptors.ts';
import { createLogger } from '../../shared/logging.ts';
import { decodeControl, encodeControl } from '../../shared/messages.ts';
import type { DeviceConfig } from '../../shared/config-types.ts';
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import { ScsiCommandFields, ScsiStatus } from '../../shared/scsi/command.ts';
import { LogicalUnit } from './logical-unit.ts';
import { submitCommand } from './execute.ts';
import { WorkerNexusDirectory } from './nexus-directory.ts';
import { nexusLost } from './nexus-events.ts';
import { PortGroupTable, type AluaStateValue, type AluaWire } from './alua/port-groups.ts';
import { applyTaskManagement } from './task-management.ts';
import { reportedLunsEvent } from './ua/unit-attention.ts';
import { SenseReason, setCheckCondition } from '../../shared/scsi/sense.ts';
import type { LunCommit, LunPrepare } from '../../shared/messages.ts';

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
class LunTask extends ScsiCommandFields implements ScsiCommand {
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
    super();
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

/**
 * Logical units by unit index. A unit removed by a configuration reload leaves a hole:
 * indexes are never reused while the worker runs, so a command still on a ring for a
 * removed unit can never reach another one.
 */
let units: (LogicalUnit | undefined)[] = [];
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
        for (const lu of units) if (lu !== undefined) nexusLost(lu, nexus, info);
        nexuses.forget(nexus);
      } else if (kind === DescKind.UNIT_ATTENTION) {
        const lu = units[luIdx];
        if (lu !== undefined) reportedLunsEvent(lu, nexus, fnCode === UaEvent.REPORTED_LUNS_CHANGED);
      } else if (kind === DescKind.TMF) {
        const lu = units[luIdx];
        const targets = luIdx === 0xffffffff ? units.filter((u) => u !== undefined) : lu ? [lu] : [];
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
      // The unit was removed by a configuration reload while this command was on the
      // ring (routes changed first, so nothing newer can follow): the LUN no longer
      // exists for the nexus (SPC-4 table F.2 25/00, as for any unmapped LUN).
      setCheckCondition(t, SenseReason.LOGICAL_UNIT_NOT_SUPPORTED);
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


function openUnit(d: DeviceConfig): Promise<LogicalUnit> {
  // Executor bugs go to this worker's log (the command ends with INTERNAL TARGET FAILURE).
  const reportInternalError = (err: unknown, cmd: ScsiCommand): void =>
    log.error({ err, device: d.name, cdb: cmd.cdb.toString('hex', 0, cmd.cdbLength) }, 'internal error while executing a SCSI command');
  return LogicalUnit.open(d, { clusterId: data.clusterId, maxTransferBytes: data.maxTransferLength, stateDir: data.stateDir }, { reportInternalError });
}

/** Make a freshly opened unit part of this worker (nexus directory, ALUA view). */
function adopt(lu: LogicalUnit): void {
  lu.nexuses = nexuses;
  portGroups?.attach(lu);
  log.info({ device: lu.name, backing: lu.backing.type, blocks: lu.blockCount }, 'logical unit online');
}

/**
 * Reload, first step (supervisor/reload.ts): open the new units and grow resized ones.
 * All-or-nothing for the new units: if one cannot be opened, those opened are closed
 * again and the error is reported, so the supervisor can abandon the reload.
 */
async function prepare(m: LunPrepare): Promise<string | undefined> {
  if (portGroups !== null) portGroups.setDeviceGroups(m.deviceGroups);
  const opened = await Promise.allSettled(m.add.map((a) => openUnit(a.device)));
  const failed = opened.find((r) => r.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(opened.map((r) => (r.status === 'fulfilled' ? r.value.close().catch(() => undefined) : undefined)));
    return `${(failed as PromiseRejectedResult).reason?.message ?? failed}`;
  }
  opened.forEach((r, i) => {
    const lu = (r as PromiseFulfilledResult<LogicalUnit>).value;
    units[m.add[i]!.luIndex] = lu;
    adopt(lu);
  });
  for (const g of m.grow) {
    const lu = units[g.luIndex];
    if (lu === undefined) continue;
    try {
      const before = lu.blockCount;
      await lu.grow(g.sizeBytes);
      log.info({ device: lu.name, blocks: lu.blockCount, was: before }, 'logical unit grown: CAPACITY DATA HAS CHANGED');
    } catch (err) {
      return `${lu.name}: ${(err as Error).message}`;
    }
  }
  return undefined;
}

/**
 * Reload, last step: take removed units offline (no route leads to them any more; the
 * commands they still hold finish first, then the store is flushed and closed) and apply
 * ALUA state changes.
 */
async function commit(m: LunCommit): Promise<string | undefined> {
  for (const s of m.states) {
    if (portGroups?.setPortGroupState(s.group, s.state as AluaStateValue)) {
      log.info({ group: s.group, state: s.state }, 'target port group state changed: ASYMMETRIC ACCESS STATE CHANGED');
    }
  }
  const closing = m.remove.map(async (i) => {
    const lu = units[i];
    if (lu === undefined) return;
    units[i] = undefined;
    portGroups?.detach(lu);
    const deadline = Date.now() + REMOVE_DRAIN_MS;
    while (lu.taskSet.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await lu.close();
    log.info({ device: lu.name }, 'logical unit removed');
  });
  const results = await Promise.allSettled(closing);
  const failed = results.find((r) => r.status === 'rejected');
  return failed === undefined ? undefined : `${(failed as PromiseRejectedResult).reason?.message ?? failed}`;
}

/** How long a removed unit's last commands may take before its store is closed anyway. */
const REMOVE_DRAIN_MS = 30_000;

async function main(): Promise<void> {
  let opened: LogicalUnit[];
  try {
    opened = await Promise.all(data.devices.map(openUnit));
  } catch (err) {
    parentPort!.postMessage(encodeControl({ type: 'error', message: (err as Error).message }));
    return;
  }
  // One table per worker: setPortGroupState on it reaches every LU of this worker.
  if (data.alua !== undefined) portGroups = new PortGroupTable(data.alua);
  units = opened;
  for (const u of opened) adopt(u);
  parentPort!.on('message', (raw: Uint8Array) => {
    const msg = decodeControl(raw);
    if (msg.type === 'stop') void stop();
    else if (msg.type === 'lun-prepare' || msg.type === 'lun-commit') {
      const work = msg.type === 'lun-prepare' ? prepare(msg) : commit(msg);
      void work
        .catch((err: Error) => err.message)
        .then((error) => parentPort!.postMessage(encodeControl({ type: 'done', id: msg.id, ...(error === undefined ? {} : { error }) })));
    }
  });
  void consumeForever(doorbell, drainAll);
  parentPort!.postMessage(encodeControl({ type: 'ready' }));
}

async function stop(): Promise<void> {
  // Session workers have drained, so nothing new arrives. A sanitize in progress stops
  // after its current chunk and resumes at the next start (sbc/sanitize-operation.ts);
  // wait out stragglers, then flush and close every store (SIGTERM promise:
  // acknowledged data is on disk).
  await Promise.all(units.map((u) => u?.sbc.suspendSanitize()));
  const deadline = Date.now() + 10_000;
  while (inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await Promise.all(units.map((u) => u?.close()));
  parentPort!.postMessage(encodeControl({ type: 'stopped' }));
}

void main();
