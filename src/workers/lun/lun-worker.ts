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
import { Doorbell } from '../../shared/ring/doorbell.ts';
import { ConsumerLoop } from '../../shared/ring/consumer-loop.ts';
import { Cmd, Cpl, DescKind, TMF_NOT_EVERYWHERE, UaEvent } from '../../shared/ring/descriptors.ts';
import type { Logger } from '../../shared/logging.ts';
import type { DeviceConfig } from '../../shared/config-types.ts';
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import type { LunWorkerData, SessionLinkInit } from '../../shared/wire/worker-data.ts';
import { handleWorker } from '../../shared/ring/nexus-table.ts';
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
import { TmfFunction } from '../../shared/iscsi/pdu.ts';
import { reportedLunsEvent } from './ua/unit-attention.ts';
import { SessionLink } from './session-link.ts';
import { EMPTY, LunTask, type TaskHome } from './lun-task.ts';
import { RemoteClusterState, type ClusterStateLink } from './cluster/remote-state.ts';
import { restoreUa, snapshotUa, type PersistedUa } from './ua/ua-persistence.ts';
import { applyPageImages } from './spc/mode-select.ts';
import type { ModePageImage } from '../../shared/state/mode-image.ts';
import type { PrEffect, PrState } from '../../shared/state/cluster-state.ts';
import { LunCounters } from '../../shared/metrics/lun-counters.ts';
import type { UnitInfo } from '../../shared/wire/admin-info.ts';
import { describeUnit } from './unit-info.ts';
import { InlineGrants, InlineKind } from '../../shared/ring/inline-grants.ts';
import { FileStore } from './backing/file-store.ts';
import type { BackingStore } from './backing/store.ts';
import { RamStore } from './backing/ram-store.ts';
import { DeviceType } from './device-type.ts';

/** How long a removed unit's last commands may take before its store is closed anyway. */
const REMOVE_DRAIN_MS = 30_000;
/** How often a cluster node checks whether pending unit attentions changed (ua-persistence.ts). */
const UA_SNAPSHOT_MS = 500;

/** How long stop() waits for in-flight commands before closing the stores. */
const STOP_DRAIN_MS = 10_000;

/** Every unit of the worker (TMF descriptor LU_INDEX). */
const ALL_UNITS = 0xffffffff;

/** The issuer of task management done on behalf of another node: no local nexus. */
const REMOTE_NEXUS = 0xffffffff;

/** Task management that reaches every I_T nexus of the LU, so every node's (SAM-5 6.3, 7.6). */
const CLUSTER_WIDE_TMF: ReadonlySet<number> = new Set([
  TmfFunction.CLEAR_TASK_SET,
  TmfFunction.LOGICAL_UNIT_RESET,
  TmfFunction.TARGET_WARM_RESET,
  TmfFunction.TARGET_COLD_RESET,
]);

/**
 * How session workers may serve a store inline (inline-grants.ts): a RAM disk from its
 * shared memory; a regular file through the page cache (buffered, with in-place I/O on:
 * the LUN worker's own rule for I/O that does not go to the thread pool). Not O_DIRECT
 * files (their I/O waits for the medium) nor block devices (a device's queue and its
 * errors are the LUN worker's to handle; left for later).
 */
function inlineKindOf(store: BackingStore): InlineKind {
  if (store instanceof RamStore) return InlineKind.RAM;
  if (store instanceof FileStore && !store.direct && store.device === undefined && FileStore.inPlaceIo) return InlineKind.FILE;
  return InlineKind.NONE;
}

/** Keeps a RAM disk's memory outside the worker: device, memory, unit index, memory generation. */
export type KeepRam = (device: string, memory: SharedArrayBuffer, luIndex: number, gen: number) => void;

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
  /** Per unit counters in shared memory, read by the supervisor's exporter. */
  readonly metrics: LunCounters;
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
  /** Holds found at LU open (holdAtOpen), applied when the unit goes online, by LU key. */
  readonly #holdsAtOpen = new Map<string, { id: string; until: number }>();
  /** True while draining rings: completions then ring each peer once at the batch end. */
  #inBatch = false;
  readonly #loop: ConsumerLoop;
  /** Cluster mode: the reservation state held by the supervisor (Redis). */
  readonly #cluster: RemoteClusterState | null;
  readonly #clusterLink: ClusterStateLink | null;
  /** Cluster mode: the last pending-UA snapshot sent per LU key, and the timer sending them. */
  readonly #uaSent = new Map<string, string>();
  #uaTimer: NodeJS.Timeout | null = null;

  /** Keeps a RAM device's shared memory outside this worker (see RamStore), with its unit index and generation. */
  readonly #keepRam: KeepRam;
  /** Inline I/O grants of this worker's RAM disks and buffered files (shared/ring/inline-grants.ts); null: none given. */
  readonly #grants: InlineGrants | null;

  /**
   * `cluster`: the supervisor's reservation state (Redis in a cluster, its embedded store
   * otherwise: either way it outlives this worker). Absent (tests): an embedded store per LU.
   */
  /** Tells the supervisor a file unit may be served inline: session workers open `path` themselves. */
  readonly #inlineFile: (luIndex: number, path: string) => void;

  constructor(
    data: LunWorkerData,
    log: Logger,
    cluster?: ClusterStateLink,
    keepRam: KeepRam = () => {},
    inlineFile: (luIndex: number, path: string) => void = () => {},
  ) {
    this.index = data.index;
    this.log = log;
    this.#data = data;
    this.#links = data.sessions.map((s, i) => new SessionLink(i, s));
    this.#nexuses = new WorkerNexusDirectory(data.sessions.map((s) => s.nexusTable));
    this.doorbell = new Doorbell(data.doorbell);
    // Nothing in flight: no file I/O or queued command waits for this thread's event loop.
    this.#loop = new ConsumerLoop(this.doorbell, () => this.drainAll(), () => this.#inflight === 0);
    this.metrics = new LunCounters(data.metrics);
    this.#cluster = cluster !== undefined ? new RemoteClusterState(cluster) : null;
    // Only a cluster keeps unit attentions, mode pages and capacity in step across nodes.
    this.#clusterLink = data.cluster === true ? (cluster ?? null) : null;
    this.#keepRam = keepRam;
    this.#inlineFile = inlineFile;
    this.#grants = data.grants === undefined ? null : new InlineGrants(data.grants);
  }

  /**
   * Cluster mode: keep every LU's pending unit attentions in Redis, so a restarted node
   * reports them (ua-persistence.ts). A snapshot per LU when it changed, checked every
   * UA_SNAPSHOT_MS: off the command path, and a change is kept within that time.
   */
  #snapshotUas(): void {
    const link = this.#clusterLink;
    if (link === null) return;
    for (const lu of this.#units) {
      if (lu === undefined) continue;
      const entries = snapshotUa(lu);
      const text = JSON.stringify(entries);
      if (this.#uaSent.get(lu.pr.luKey) === text) continue;
      this.#uaSent.set(lu.pr.luKey, text);
      link.saveUa(lu.pr.luKey, entries);
    }
  }

  /**
   * Session worker `s` died (issue 12): nothing more is read from its rings; its commands
   * here are aborted (their completions go nowhere), and every I_T nexus it carried is
   * lost (SAM-5 6.3.4: I_T NEXUS LOSS OCCURRED when the initiator comes back, its SPC-2
   * reservation released, registrations kept).
   */
  sessionWorkerLost(s: number): { aborted: number; nexuses: number } {
    const link = this.#links[s];
    if (link === undefined) return { aborted: 0, nexuses: 0 };
    link.dead = true;
    let aborted = 0;
    const handles = new Set(this.#nexuses.knownOf(s));
    for (const lu of this.#units) {
      if (lu === undefined) continue;
      lu.taskSet.abort(
        (c) => (c as LunTask).link === link,
        (c) => {
          (c as LunTask).aborted = true;
          aborted++;
        },
      );
      for (const h of lu.ua.byHandle.keys()) if (handleWorker(h) === s) handles.add(h);
    }
    for (const h of handles) {
      const info = this.#nexuses.get(h);
      for (const lu of this.#units) if (lu !== undefined) nexusLost(lu, h, info);
      this.#nexuses.forget(h);
    }
    this.log.warn({ sessionWorker: s, aborted, nexuses: handles.size }, 'session worker lost: its commands aborted, its I_T nexuses lost');
    return { aborted, nexuses: handles.size };
  }

  /** Session worker `s`'s replacement is up: fresh rings, slab and nexus table. */
  sessionWorkerRestarted(s: number, init: SessionLinkInit): void {
    this.#links[s] = new SessionLink(s, init);
    this.#nexuses.replaceTable(s, init.nexusTable);
  }

  /**
   * Cluster mode: task management `fn` issued on another node for the LU with key `lu`.
   * Every local command of the LU is affected as for any other nexus's function.
   */
  resetApply(lu: string, fn: number): Promise<void> {
    const unit = this.#unitByKey(lu);
    if (unit === undefined) return Promise.resolve();
    return new Promise((resolve, reject) =>
      applyTaskManagement(unit, fn, REMOTE_NEXUS, (failed) => (failed === undefined ? resolve() : reject(failed))),
    );
  }

  /** Cluster mode: another node grew the LU (its storage is shared: only the size here). */
  async growApply(lu: string, bytes: number): Promise<void> {
    const unit = this.#unitByKey(lu);
    if (unit === undefined || bytes <= unit.blockCount * unit.blockSize) return;
    await unit.grow(bytes);
    this.log.info({ device: unit.name, blocks: unit.blockCount }, 'logical unit grown by another node: CAPACITY DATA HAS CHANGED');
  }

  /**
   * Cluster mode: another node runs an exclusive command on the LU; resolves once this
   * node holds the LU's commands and has none in flight (sbc/state.ts holdForPeer).
   */
  holdApply(lu: string, id: string, ttlMs: number): Promise<void> {
    const unit = this.#unitByKey(lu);
    return unit === undefined ? Promise.resolve() : unit.sbc.holdForPeer(id, ttlMs);
  }

  /** Cluster mode: that exclusive command is done. */
  holdRelease(lu: string, id: string): void {
    if (this.#holdsAtOpen.get(lu)?.id === id) this.#holdsAtOpen.delete(lu);
    this.#unitByKey(lu)?.sbc.releasePeer(id);
  }

  /**
   * Cluster mode: LU `lu`, opening, found another node's exclusive command possibly
   * running (its lock taken): the unit holds its commands from the moment it goes online
   * (#adopt) until that command's release, at most `ttlMs` from now.
   */
  holdAtOpen(lu: string, id: string, ttlMs: number): void {
    this.#holdsAtOpen.set(lu, { id, until: performance.now() + ttlMs });
  }

  /** The open unit whose cluster key (its NAA designator, hex) is `lu`. */
  #unitByKey(lu: string): LogicalUnit | undefined {
    return this.#units.find((u) => u !== undefined && u.pr.luKey === lu);
  }

  /** Cluster mode: mode pages changed by MODE SELECT on another node. */
  async modeApply(lu: string, pages: readonly ModePageImage[]): Promise<void> {
    const unit = this.#unitByKey(lu);
    if (unit !== undefined) await applyPageImages(unit, pages);
  }

  /** Cluster mode: a reservation change from another node (see RemoteClusterState.deliver). */
  prApply(lu: string, state: PrState, effects: readonly PrEffect[], reload = false): Promise<void> {
    if (this.#cluster === null) return Promise.reject(new Error('prApply: not in cluster mode'));
    return this.#cluster.deliver(lu, state, effects, reload);
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
    const opened = await Promise.allSettled(d.devices.map((dev, i) => this.#openUnit(dev, d.unitIndexes?.[i] ?? i, d.ramMemory?.[dev.name])));
    const failed = opened.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(opened.map((r) => (r.status === 'fulfilled' ? r.value.close().catch(() => undefined) : undefined)));
      throw new ControlError(ControlErrorCode.BACKING, errorMessage((failed as PromiseRejectedResult).reason));
    }
    // One table per worker: setPortGroupState on it reaches every LU of this worker.
    if (d.alua !== undefined) this.#portGroups = new PortGroupTable(d.alua);
    const units = opened.map((r) => (r as PromiseFulfilledResult<LogicalUnit>).value);
    await Promise.all(units.map((lu) => this.#restoreUas(lu)));
    units.forEach((lu, i) => {
      const index = d.unitIndexes?.[i] ?? i;
      this.#units[index] = lu;
      this.#adopt(lu, index);
    });
    if (this.#clusterLink !== null) {
      this.#uaTimer = setInterval(() => this.#snapshotUas(), UA_SNAPSHOT_MS);
      this.#uaTimer.unref();
    }
    return opened.length;
  }

  /** Consume the rings until stop(). */
  run(): Promise<void> {
    return this.#loop.run();
  }

  /** Drain every command ring once; returns how many descriptors were taken. */
  drainAll(): number {
    this.#inBatch = true;
    let n = 0;
    const links = this.#links;
    for (let i = 0; i < links.length; i++) {
      const l = links[i]!;
      if (!l.dead) n += this.#drainLink(l);
    }
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
    this.metrics.complete(t, performance.now());
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
      this.metrics.arrive(t, luIndex, performance.now());
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
      // In a cluster, functions that reach every I_T nexus of the LU also reach the
      // nexuses on other nodes (SAM-5 6.3.2, 7.6): acknowledged once they are done too.
      const cluster = this.#cluster;
      const everywhere = cluster !== null && this.#data.cluster === true && CLUSTER_WIDE_TMF.has(fnCode) && targets.length > 0;
      // State the function clears that could not be cleared here (applyTaskManagement).
      let localFailure: unknown = undefined;
      const rejected = (err: unknown): void => {
        // Not done everywhere: commands on another node may still run, or a reservation
        // the reset releases still holds there, so the initiator must not be told
        // FUNCTION COMPLETE (the session answers FUNCTION REJECTED, RFC 7143 11.6.1, and
        // the initiator escalates).
        this.log.warn({ fn: fnCode, err: errorMessage(err) }, 'task management could not reach every node: rejected');
        this.#acknowledge(link, tag, TMF_NOT_EVERYWHERE);
      };
      const settle = (): void => (localFailure === undefined ? this.#acknowledge(link, tag) : rejected(localFailure));
      const finished = (): void => {
        if (!everywhere) settle();
        else
          cluster
            .reset(
              targets.map((u) => u.pr.luKey),
              fnCode,
            )
            .then(settle, rejected);
      };
      if (waiting === 0) finished();
      const refersTo = (c: ScsiCommand): boolean => (c as LunTask).link === link && (c as LunTask).tag === refTag;
      for (const target of targets) {
        applyTaskManagement(
          target,
          fnCode,
          nexus,
          (failed) => {
            if (failed !== undefined) localFailure ??= failed;
            if (--waiting === 0) finished();
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

  /**
   * Complete a control descriptor (no data) so its sender can reuse the task. `status` is
   * 0, or TMF_NOT_EVERYWHERE for a cluster-wide task management function that did not
   * reach every node.
   */
  #acknowledge(link: SessionLink, tag: number, status = 0): void {
    if (link.dead) return;
    const o = link.cpl.reserve();
    if (o < 0) throw new Error('completion ring full'); // impossible: see LunTask.finish
    const v = link.cpl.view;
    v.setUint8(o + Cpl.KIND, DescKind.COMPLETION);
    v.setUint8(o + Cpl.STATUS, status);
    v.setUint16(o + Cpl.SENSE_LENGTH, 0, true);
    v.setUint32(o + Cpl.TAG, tag, true);
    v.setUint32(o + Cpl.DATA_IN_LENGTH, 0, true);
    v.setUint32(o + Cpl.DATA_OUT_WANTED, 0, true);
    v.setUint32(o + Cpl.GRANT, 0, true);
    link.cpl.publish();
    if (this.#inBatch) link.completedSinceRing = true;
    else link.peer.ring();
  }

  /** `ram`: a RAM disk's memory kept from a predecessor of this worker (start only: a device added later is new). */
  #openUnit(d: DeviceConfig, luIndex: number, ram?: SharedArrayBuffer): Promise<LogicalUnit> {
    const data = this.#data;
    // Executor bugs go to this worker's log (the command ends with INTERNAL TARGET FAILURE).
    const reportInternalError = (err: unknown, cmd: ScsiCommand): void =>
      this.log.error({ err, device: d.name, cdb: cmd.cdb.toString('hex', 0, cmd.cdbLength) }, 'internal error while executing a SCSI command');
    // Backing-store errors arrive already thinned out to one line per burst (backing/io-errors.ts).
    const reportIoError = (r: IoErrorReport): void =>
      r.kind === 'first'
        ? this.log.error(r, 'backing store I/O error: failing commands with the matching sense; further errors are counted until it is quiet')
        : this.log.error(r, 'backing store I/O errors ended');
    const cluster = this.#cluster;
    // Each new memory gets the next generation: a session worker reads inline only from
    // the generation the grant table names (inline-grants.ts).
    const onRamMemory = (m: SharedArrayBuffer): void => this.#keepRam(d.name, m, luIndex, this.#grants?.nextMemoryGeneration(luIndex) ?? 0);
    const store = { ...(ram === undefined ? {} : { ramMemory: ram }), onRamMemory };
    const env =
      cluster === null
        ? { reportInternalError, reportIoError, store }
        : data.cluster !== true
          ? { reportInternalError, reportIoError, store, clusterState: cluster }
          : {
              reportInternalError,
              reportIoError,
              store,
              clusterState: cluster,
              atomicLock: (lu: string) => cluster.atomicLock(lu),
              setAluaStates: (states: readonly { group: number; state: number }[]) => cluster.setAlua(states),
              modesChanged: (lu: string, pages: readonly ModePageImage[]) => this.#clusterLink?.modesChanged(lu, pages),
            };
    return LogicalUnit.open(d, { clusterId: data.clusterId, maxTransferBytes: data.maxTransferLength, stateDir: data.stateDir }, env);
  }

  /** Make a freshly opened unit part of this worker (nexus directory, ALUA view). */
  async #restoreUas(lu: LogicalUnit): Promise<void> {
    const link = this.#clusterLink;
    if (link === null) return;
    const entries = (await link.loadUa(lu.pr.luKey)) as PersistedUa[];
    restoreUa(lu, entries);
    this.#uaSent.set(lu.pr.luKey, JSON.stringify(snapshotUa(lu)));
  }

  #adopt(lu: LogicalUnit, luIndex: number): void {
    lu.nexuses = this.#nexuses;
    this.#portGroups?.attach(lu);
    // A RAM disk or a buffered file may be served by session workers inline; the first
    // invalidation also voids whatever a predecessor of this worker granted for the slot.
    const kind = this.#grants === null || lu.deviceType !== DeviceType.DISK ? InlineKind.NONE : inlineKindOf(lu.store);
    if (kind !== InlineKind.NONE) {
      lu.attachInline(this.#grants!, luIndex, kind);
      if (lu.store instanceof FileStore) this.#inlineFile(luIndex, lu.store.path);
    }
    const hold = this.#holdsAtOpen.get(lu.pr.luKey);
    if (hold !== undefined) {
      this.#holdsAtOpen.delete(lu.pr.luKey);
      const left = hold.until - performance.now();
      if (left > 0) void lu.sbc.holdForPeer(hold.id, left);
    }
    this.log.info({ device: lu.name, backing: lu.backing.type, blocks: lu.blockCount, direct: lu.store.direct === true }, 'logical unit online');
  }

  /**
   * Reload, first step (supervisor/reload.ts): open the new units and grow resized ones.
   * All-or-nothing for the new units: if one cannot be opened, those opened are closed
   * again and the error is reported, so the supervisor can abandon the reload.
   */
  async prepare(m: PrepareRequest): Promise<void> {
    this.#portGroups?.setDeviceGroups(m.deviceGroups);
    const opened = await Promise.allSettled(m.add.map((a) => this.#openUnit(a.device, a.luIndex)));
    const failed = opened.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(opened.map((r) => (r.status === 'fulfilled' ? r.value.close().catch(() => undefined) : undefined)));
      throw new ControlError(ControlErrorCode.BACKING, errorMessage((failed as PromiseRejectedResult).reason));
    }
    opened.forEach((r, i) => {
      const lu = (r as PromiseFulfilledResult<LogicalUnit>).value;
      this.#units[m.add[i]!.luIndex] = lu;
      this.#adopt(lu, m.add[i]!.luIndex);
    });
    for (const g of m.grow) {
      const lu = this.#units[g.luIndex];
      if (lu === undefined) continue;
      try {
        const before = lu.blockCount;
        await lu.grow(g.sizeBytes);
        this.log.info({ device: lu.name, blocks: lu.blockCount, was: before }, 'logical unit grown: CAPACITY DATA HAS CHANGED');
        // The LU is the same on every node: they grow it too (and tell their nexuses).
        this.#clusterLink?.capacityChanged(lu.pr.luKey, g.sizeBytes);
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
    if (this.#uaTimer !== null) clearInterval(this.#uaTimer);
    this.#snapshotUas();
    await Promise.all(units.map((u) => u?.close()));
    this.#loop.stop();
  }

  stats(): { units: number; inflight: number } {
    return { units: this.unitCount, inflight: this.#inflight };
  }

  /** Admin API: every open unit as the operator sees it (unit-info.ts). */
  units(): UnitInfo[] {
    const out: UnitInfo[] = [];
    this.#units.forEach((lu, i) => {
      if (lu !== undefined) out.push(describeUnit(lu, this.index, i));
    });
    return out;
  }
}
