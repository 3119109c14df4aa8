/**
 * A LUN worker: owns a set of logical units (their backing stores and all their SCSI
 * state) and executes the commands session workers push onto its rings. Commands arrive
 * as binary descriptors; data lives in the session workers' slabs, so a READ is read from
 * the backing store straight into the slab the session worker sends from.
 *
 * A class with no thread of its own: main.ts runs it in a worker thread behind the
 * control channel, and tests drive it in one thread over real rings (test/helpers/
 * lun-loopback.ts), calling drainAll() themselves.
 */
import { Doorbell, consumeWhile } from '../../shared/ring/doorbell.ts';
import { Cmd, Cpl, DescKind, UaEvent } from '../../shared/ring/descriptors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { DeviceConfig } from '../../shared/config-types.ts';
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import type { LunWorkerData } from '../../shared/wire/worker-data.ts';
import { ControlError, ControlErrorCode, errorMessage } from '../../shared/control/errors.ts';
import { SenseReason, setCheckCondition } from '../../shared/scsi/sense.ts';
import type { AluaStateValue } from '../../shared/scsi/alua.ts';
import { LogicalUnit } from './logical-unit.ts';
import type { IoErrorReport } from './backing/io-errors.ts';
import { submitCommand } from './execute.ts';
import { WorkerNexusDirectory } from './nexus-directory.ts';
import { nexusLost } from './nexus-events.ts';
import { PortGroupTable } from './alua/port-groups.ts';
import { applyTaskManagement } from './task-management.ts';
import { reportedLunsEvent } from './ua/unit-attention.ts';
import { SessionLink } from './session-link.ts';
import { EMPTY, LunTask, type TaskHome } from './lun-task.ts';

/** How long a removed unit's last commands may take before its store is closed anyway. */
const REMOVE_DRAIN_MS = 30_000;
/** How long stop() waits for in-flight commands before closing the stores. */
const STOP_DRAIN_MS = 10_000;

/** Every unit of the worker (TMF descriptor LU_INDEX). */
const ALL_UNITS = 0xffffffff;

export interface PrepareRequest {
  add: { luIndex: number; device: DeviceConfig }[];
  grow: { luIndex: number; sizeBytes: number }[];
  /** CD-ROM drives that get another disc ('' for none; mmc/medium.ts). */
  media?: { luIndex: number; path: string }[];
  deviceGroups: Record<string, number[]>;
}

export interface CommitRequest {
  remove: number[];
  states: { group: number; state: number }[];
}

export class LunWorker implements TaskHome {
  readonly index: number;
  readonly log: Logger;
  readonly #data: LunWorkerData;
  readonly #links: SessionLink[];
  readonly #nexuses: WorkerNexusDirectory;
  readonly doorbell: Doorbell;
  /**
   * Logical units by unit index. A unit removed by a configuration reload leaves a hole:
   * indexes are never reused while the worker runs, so a command still on a ring for a
   * removed unit can never reach another one.
   */
  #units: (LogicalUnit | undefined)[] = [];
  /** This worker's ALUA target port group table (when the topology is given). */
  #portGroups: PortGroupTable | null = null;
  readonly #free: LunTask[] = [];
  #inflight = 0;
  /** True while draining rings: completions then ring each peer once at the batch end. */
  #inBatch = false;
  #running = false;

  constructor(data: LunWorkerData, log: Logger) {
    this.index = data.index;
    this.log = log;
    this.#data = data;
    this.#links = data.sessions.map((s, i) => new SessionLink(i, s));
    this.#nexuses = new WorkerNexusDirectory(data.sessions.map((s) => s.nexusTable));
    this.doorbell = new Doorbell(data.doorbell);
  }

  /** Commands currently held (executing or queued in a task set). */
  get inflight(): number {
    return this.#inflight;
  }

  /** The unit at `luIndex` (tests, tools). */
  unit(luIndex: number): LogicalUnit | undefined {
    return this.#units[luIndex];
  }

  get unitCount(): number {
    return this.#units.filter((u) => u !== undefined).length;
  }

  /**
   * Open the backing stores of the configured devices. All or nothing: a device that
   * cannot be opened closes the others and fails with ERR_SPINDLE_BACKING.
   */
  async start(): Promise<number> {
    const d = this.#data;
    const opened = await Promise.allSettled(d.devices.map((dev) => this.#openUnit(dev)));
    const failed = opened.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(opened.map((r) => (r.status === 'fulfilled' ? r.value.close().catch(() => undefined) : undefined)));
      throw new ControlError(ControlErrorCode.BACKING, errorMessage((failed as PromiseRejectedResult).reason));
    }
    // One table per worker: setPortGroupState on it reaches every LU of this worker.
    if (d.alua !== undefined) this.#portGroups = new PortGroupTable(d.alua);
    opened.forEach((r, i) => {
      const lu = (r as PromiseFulfilledResult<LogicalUnit>).value;
      this.#units[d.unitIndexes?.[i] ?? i] = lu;
      this.#adopt(lu);
    });
    return opened.length;
  }

  /** Consume the rings until stop(). */
  run(): Promise<void> {
    this.#running = true;
    return consumeWhile(this.doorbell, () => this.drainAll(), () => this.#running);
  }

  /** Drain every command ring once; returns how many descriptors were taken. */
  drainAll(): number {
    this.#inBatch = true;
    let n = 0;
    const links = this.#links;
    for (let i = 0; i < links.length; i++) n += this.#drainLink(links[i]!);
    this.#inBatch = false;
    for (let i = 0; i < links.length; i++) {
      const l = links[i]!;
      if (l.completedSinceRing) {
        l.completedSinceRing = false;
        l.peer.ring();
      }
    }
    return n;
  }

  completed(t: LunTask, link: SessionLink): void {
    t.reset();
    this.#inflight--;
    this.#free.push(t);
    if (this.#inBatch) link.completedSinceRing = true;
    else link.peer.ring();
  }

  #acquire(): LunTask {
    const t = this.#free.pop() ?? new LunTask(this); // pool growth only at a new high-water mark
    t.busy = true;
    this.#inflight++;
    return t;
  }

  #drainLink(link: SessionLink): number {
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
        this.#control(link, kind, tag, nexus, fnCode, luIdx, refTag);
        continue;
      }
      const t = this.#acquire();
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
      for (let i = 0; i < Cmd.CDB_MAX; i++) cdb[i] = b[o + Cmd.CDB + i]!;
      t.dataInLength = 0;
      t.dataOutWanted = 0;
      t.status = 0;
      t.senseLength = 0;
      ring.release();
      n++;
      const lu = this.#units[luIndex];
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

  /** A control descriptor (descriptors.ts): act on it, then acknowledge it in ring order. */
  #control(link: SessionLink, kind: number, tag: number, nexus: number, fnCode: number, luIdx: number, refTag: number): void {
    const units = this.#units;
    if (kind === DescKind.NEXUS_LOSS) {
      const info = this.#nexuses.get(nexus);
      for (const lu of units) if (lu !== undefined) nexusLost(lu, nexus, info);
      this.#nexuses.forget(nexus);
    } else if (kind === DescKind.UNIT_ATTENTION) {
      const lu = units[luIdx];
      if (lu !== undefined) reportedLunsEvent(lu, nexus, fnCode === UaEvent.REPORTED_LUNS_CHANGED);
    } else if (kind === DescKind.TMF) {
      const lu = units[luIdx];
      const targets = luIdx === ALL_UNITS ? units.filter((u) => u !== undefined) : lu ? [lu] : [];
      let waiting = targets.length;
      if (waiting === 0) this.#acknowledge(link, tag);
      const refersTo = (c: ScsiCommand): boolean => (c as LunTask).link === link && (c as LunTask).tag === refTag;
      for (const target of targets) {
        applyTaskManagement(
          target,
          fnCode,
          nexus,
          () => {
            if (--waiting === 0) this.#acknowledge(link, tag);
          },
          refersTo,
        );
      }
      return;
    } else {
      this.log.error({ kind, tag }, 'unknown descriptor kind on the command ring: acknowledged and ignored');
    }
    this.#acknowledge(link, tag);
  }

  /** Complete a control descriptor (no status, no data) so its sender can reuse the task. */
  #acknowledge(link: SessionLink, tag: number): void {
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
    if (this.#inBatch) link.completedSinceRing = true;
    else link.peer.ring();
  }

  #openUnit(d: DeviceConfig): Promise<LogicalUnit> {
    const data = this.#data;
    // Executor bugs go to this worker's log (the command ends with INTERNAL TARGET FAILURE).
    const reportInternalError = (err: unknown, cmd: ScsiCommand): void =>
      this.log.error({ err, device: d.name, cdb: cmd.cdb.toString('hex', 0, cmd.cdbLength) }, 'internal error while executing a SCSI command');
    // Backing-store errors arrive already thinned out to one line per burst (backing/io-errors.ts).
    const reportIoError = (r: IoErrorReport): void =>
      r.kind === 'first'
        ? this.log.error(r, 'backing store I/O error: failing commands with the matching sense; further errors are counted until it is quiet')
        : this.log.error(r, 'backing store I/O errors ended');
    return LogicalUnit.open(d, { clusterId: data.clusterId, maxTransferBytes: data.maxTransferLength, stateDir: data.stateDir }, { reportInternalError, reportIoError });
  }

  /** Make a freshly opened unit part of this worker (nexus directory, ALUA view). */
  #adopt(lu: LogicalUnit): void {
    lu.nexuses = this.#nexuses;
    this.#portGroups?.attach(lu);
    this.log.info({ device: lu.name, backing: lu.backing.type, blocks: lu.blockCount, direct: lu.store.direct === true }, 'logical unit online');
  }

  /**
   * Reload, first step (supervisor/reload.ts): open the new units and grow resized ones.
   * All-or-nothing for the new units: if one cannot be opened, those opened are closed
   * again and the error is reported, so the supervisor can abandon the reload.
   */
  async prepare(m: PrepareRequest): Promise<void> {
    this.#portGroups?.setDeviceGroups(m.deviceGroups);
    const opened = await Promise.allSettled(m.add.map((a) => this.#openUnit(a.device)));
    const failed = opened.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(opened.map((r) => (r.status === 'fulfilled' ? r.value.close().catch(() => undefined) : undefined)));
      throw new ControlError(ControlErrorCode.BACKING, errorMessage((failed as PromiseRejectedResult).reason));
    }
    opened.forEach((r, i) => {
      const lu = (r as PromiseFulfilledResult<LogicalUnit>).value;
      this.#units[m.add[i]!.luIndex] = lu;
      this.#adopt(lu);
    });
    for (const g of m.grow) {
      const lu = this.#units[g.luIndex];
      if (lu === undefined) continue;
      try {
        const before = lu.blockCount;
        await lu.grow(g.sizeBytes);
        this.log.info({ device: lu.name, blocks: lu.blockCount, was: before }, 'logical unit grown: CAPACITY DATA HAS CHANGED');
      } catch (err) {
        throw new ControlError(ControlErrorCode.BACKING, `${lu.name}: ${errorMessage(err)}`);
      }
    }
    for (const c of m.media ?? []) {
      const lu = this.#units[c.luIndex];
      if (lu?.mmc == null) continue;
      try {
        await lu.mmc.change(c.path === '' ? null : c.path);
        this.log.info({ device: lu.name, image: c.path || null, blocks: lu.blockCount }, 'disc changed: NOT READY TO READY CHANGE');
      } catch (err) {
        throw new ControlError(ControlErrorCode.BACKING, errorMessage(err));
      }
    }
  }

  /**
   * Reload, last step: take removed units offline (no route leads to them any more; the
   * commands they still hold finish first, then the store is flushed and closed) and apply
   * ALUA state changes.
   */
  async commit(m: CommitRequest): Promise<void> {
    for (const s of m.states) {
      if (this.#portGroups?.setPortGroupState(s.group, s.state as AluaStateValue)) {
        this.log.info({ group: s.group, state: s.state }, 'target port group state changed: ASYMMETRIC ACCESS STATE CHANGED');
      }
    }
    const closing = m.remove.map(async (i) => {
      const lu = this.#units[i];
      if (lu === undefined) return;
      this.#units[i] = undefined;
      this.#portGroups?.detach(lu);
      const deadline = Date.now() + REMOVE_DRAIN_MS;
      while (lu.taskSet.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await lu.close();
      this.log.info({ device: lu.name }, 'logical unit removed');
    });
    const results = await Promise.allSettled(closing);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw new ControlError(ControlErrorCode.BACKING, errorMessage((failed as PromiseRejectedResult).reason));
  }

  /**
   * Session workers have drained, so nothing new arrives. A sanitize in progress stops
   * after its current chunk and resumes at the next start (sbc/sanitize-operation.ts);
   * wait out stragglers, then flush and close every store (the SIGTERM promise:
   * acknowledged data is on disk). Ends the consume loop.
   */
  async stop(): Promise<void> {
    const units = this.#units;
    await Promise.all(units.map((u) => u?.sbc.suspendSanitize()));
    const deadline = Date.now() + STOP_DRAIN_MS;
    while (this.#inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await Promise.all(units.map((u) => u?.close()));
    this.#running = false;
    this.doorbell.wake();
  }

  stats(): { units: number; inflight: number } {
    return { units: this.unitCount, inflight: this.#inflight };
  }
}
