/**
 * The supervisor of one node: builds the data plane, spawns LUN workers, session workers
 * and one fabric port worker per portal, coordinates what spans workers (sessions,
 * configuration reloads), and shuts everything down in order.
 *
 *   start()   all-or-nothing: if any worker fails to come up (a backing file cannot be
 *             opened, a portal cannot be bound) everything is torn down and start()
 *             rejects, so a bad config never leaves half a target running.
 *   reload()  re-read the configuration and apply the difference (reload.ts).
 *   stop()    no new logins, in-flight commands finish, stores flushed, threads ended.
 *
 * Parts: Topology (where everything lives), DataPlane (shared memory), WorkerHandle (a
 * thread and its typed control endpoint), SessionDirectory (node-wide session state).
 */
import os from 'node:os';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { EmbeddedClusterState } from '../shared/state/embedded-state.ts';
import { HeartbeatKind, heartbeatSlot, readHeartbeat } from '../shared/ring/heartbeat.ts';
import type { SpindleConfig } from '../shared/config-types.ts';
import type { Logger } from '../shared/logging.ts';
import { errorMessage } from '../shared/control/errors.ts';
import { LUN_CONTROL, PORTAL_CONTROL, SESSION_CONTROL } from '../shared/control/protocols.ts';
import type { InlineFile, InlineMemory, LunWorkerData, PortalWorkerData, SessionWorkerData } from '../shared/wire/worker-data.ts';
import { Topology } from './topology.ts';
import { DataPlane, SLAB_MIN_BLOCK } from './data-plane.ts';
import { InlineGrants } from '../shared/ring/inline-grants.ts';
import { SessionDirectory } from './session-directory.ts';
import { WorkerHandle } from './worker-handle.ts';
import { applyReload, planReload, type WorkerBus } from './reload.ts';
import { displayPortal } from './config/schema.ts';
import { AdminState, ClusterNode, type ClusterHost } from './cluster/cluster-node.ts';
import { ControlError, ControlErrorCode } from '../shared/control/errors.ts';
import type { AluaStateValue } from '../shared/scsi/alua.ts';
import { AluaState } from '../shared/scsi/alua.ts';
import type { AluaStateName } from '../shared/config-types.ts';
import { MetricsMemory } from './metrics/memory.ts';
import { refusedByLoad, type ReloadOutcome, type ReloadReport } from './reload-report.ts';

/** ASYMMETRIC ACCESS STATE codes -> config `aluaStates` names. */
const ALUA_NAMES: Partial<Record<number, AluaStateName>> = {
  [AluaState.ACTIVE_OPTIMIZED]: 'active-optimized',
  [AluaState.ACTIVE_NON_OPTIMIZED]: 'active-non-optimized',
  [AluaState.STANDBY]: 'standby',
  [AluaState.UNAVAILABLE]: 'unavailable',
  [AluaState.TRANSITIONING]: 'transitioning',
};

/** How long a starting node waits for Redis before giving up. */
const CLUSTER_CONNECT_TIMEOUT_MS = 30_000;
/** A worker whose heartbeat stands still this long is hung (SPINDLE_HANG_TIMEOUT_MS overrides). */
const HANG_TIMEOUT_MS = 10_000;
/** How long a drained node lets in-flight commands finish before it reports drained. */
const NODE_DRAIN_TIMEOUT_MS = 15_000;

/** Commands each session may have outstanding (MaxCmdSN - ExpCmdSN + 1 when idle). */
const CMD_WINDOW = 128;
/** How long a shutdown lets in-flight commands finish. */
const DRAIN_TIMEOUT_MS = 15_000;
/** Session workers poll for completions this long after submitting (see pollCompletions). */
const POLL_BUDGET_US = 50;
/**
 * Session workers serve READs and WRITEs of RAM disks and buffered files themselves under the LUN workers'
 * grants (shared/ring/inline-grants.ts). SPINDLE_INLINE_IO=0 turns that off, so a
 * benchmark can compare both ways.
 */
const INLINE_IO = process.env['SPINDLE_INLINE_IO'] !== '0';
/** A worker must be up within this (opening stores, binding portals). */
const START_TIMEOUT_MS = 120_000;
/** Accepted connections per second (sustained) and burst, per portal. */
const ACCEPT_RATE = 200;
const ACCEPT_BURST = 100;

export interface SupervisorOptions {
  readonly log: Logger;
  readonly logLevel: string;
  readonly pretty: boolean;
  /**
   * Re-read the configuration file (SIGHUP). Rejects with a ConfigError (its message
   * names every bad field) when the file is invalid.
   */
  readonly reloadConfig?: () => Promise<SpindleConfig>;
}

type LunHandle = WorkerHandle<typeof LUN_CONTROL>;
type SessionHandle = WorkerHandle<typeof SESSION_CONTROL>;
type PortalHandle = WorkerHandle<typeof PORTAL_CONTROL>;

export class Supervisor {
  readonly log: Logger;
  readonly topology: Topology;
  readonly dataPlane: DataPlane;
  readonly #opts: SupervisorOptions;
  readonly #sessionsDir: SessionDirectory;
  #running: SpindleConfig;
  #luns: LunHandle[] = [];
  #sessions: SessionHandle[] = [];
  #portals: PortalHandle[] = [];
  #stopping = false;
  /** start() has finished: every worker is up and the portals listen. */
  #started = false;
  #reloading: Promise<void> = Promise.resolve();
  /** Worker replacements, one at a time (issue 12). */
  #recovering: Promise<void> = Promise.resolve();
  /** Per worker name: the heartbeat value last seen, when it last moved (monotonic and wall clock). */
  readonly #beats = new Map<string, { beat: number; at: number; wallMs: number }>();
  #watchdog: NodeJS.Timeout | null = null;
  readonly #hangTimeoutMs: number;
  /** RAM devices' shared memory, kept for a LUN worker's replacement (by device name). */
  readonly #ramMemory = new Map<string, SharedArrayBuffer>();
  /**
   * The same memories as the session workers serve them inline, by "lunWorker/luIndex"
   * (shared/ring/inline-grants.ts): sent to every session worker as they change, and
   * given to a session worker's replacement at spawn.
   */
  readonly #inlineMemory = new Map<string, InlineMemory & { device: string }>();
  /** Buffered files served inline, by "lunWorker/luIndex": session workers open them (as for memories). */
  readonly #inlineFiles = new Map<string, InlineFile>();
  /** Reservations of a single node: held here so they outlive a LUN worker (issue 12). */
  readonly #prs: EmbeddedClusterState;
  /** Counters the workers keep in shared memory (metrics/memory.ts). */
  readonly metrics: MetricsMemory;
  /** Workers replaced since start, by kind (issue 12; metrics). */
  readonly workerRestarts = { lun: 0, session: 0, portal: 0 };
  /** Configuration reloads by outcome (SIGHUP and the admin API). */
  readonly reloadCounts: Record<ReloadOutcome, number> = { applied: 0, unchanged: 0, refused: 0, failed: 0 };
  /** Cluster mode: this node's membership (Redis state, lease, fencing). */
  readonly cluster: ClusterNode | null;
  #resolveExit!: (code: number) => void;
  /** Resolves with the exit code once stop() has finished. */
  readonly exited = new Promise<number>((r) => (this.#resolveExit = r));

  constructor(config: SpindleConfig, opts: SupervisorOptions) {
    this.#opts = opts;
    this.log = opts.log;
    this.#running = config;
    const nLun = Math.max(1, Math.min(config.workers.lun, config.devices.length || 1));
    const nSession = Math.max(1, config.workers.session);
    this.topology = new Topology(config, nLun);
    this.dataPlane = new DataPlane(config, nLun, nSession);
    this.metrics = new MetricsMemory(nLun, nSession);
    this.#sessionsDir = new SessionDirectory(config.iscsi.authBackoffMaxSec, (w, key) => this.#sessions[w]?.control.notify('reinstate', { key }));
    this.#prs = new EmbeddedClusterState(path.join(config.stateDir, 'pr'));
    this.#hangTimeoutMs = Number(process.env['SPINDLE_HANG_TIMEOUT_MS'] ?? HANG_TIMEOUT_MS);
    this.cluster =
      config.cluster === undefined
        ? null
        : new ClusterNode({
            clusterId: config.clusterId,
            node: config.nodeId,
            config: config.cluster,
            stateDir: config.stateDir,
            groups: new Map(this.topology.clusterGroups.map((g) => [g.node, g.id])),
            log: this.log,
          });
  }

  get config(): SpindleConfig {
    return this.#running;
  }

  /**
   * Spawn every worker, in order: LUN workers, session workers, then the portals (a
   * cluster node joins the cluster first). `signal` cancels a start still under way (an
   * operator's SIGTERM): what was started is torn down and start() rejects with the
   * signal's reason. Joining the cluster, which can wait up to CLUSTER_CONNECT_TIMEOUT_MS
   * for Redis, ends at once; the other steps are checked between them.
   */
  async start(signal?: AbortSignal): Promise<void> {
    try {
      // A cluster node first joins the cluster: without Redis it cannot know the reservations.
      if (this.cluster !== null) await this.cluster.start(this.#clusterHost(), CLUSTER_CONNECT_TIMEOUT_MS, signal);
      signal?.throwIfAborted();
      await this.#startLunWorkers();
      signal?.throwIfAborted();
      if (this.cluster !== null) await this.#clusterHost().aluaStates(this.cluster.aluaTable());
      const handoff = this.topology.portals.map(() => Array.from({ length: this.dataPlane.sessionWorkers }, () => new MessageChannel()));
      await this.#startSessionWorkers(handoff);
      signal?.throwIfAborted();
      // Listening starts last, when everything behind the portals is ready.
      await this.#startPortals(handoff);
      this.#started = true;
    } catch (err) {
      this.#stopping = true;
      await this.#terminateAll();
      await this.cluster?.stop().catch(() => undefined);
      throw err;
    }
    this.#watchHeartbeats();
    this.#watchFaultFile();
    const portals = this.topology.portals;
    const first = portals[0];
    this.log.info(
      {
        portals: portals.map((p) => `${p.host}:${p.port}`),
        targets: this.#running.targets.map((t) => t.iqn),
        workers: { session: this.#sessions.length, lun: this.#luns.length, portal: portals.length },
        cores: os.availableParallelism(),
      },
      `target ready; discover with: iscsi-ls -s iscsi://${first ? displayPortal(first) : '127.0.0.1:3260'}`,
    );
  }

  async #startLunWorkers(): Promise<void> {
    this.#luns = Array.from({ length: this.dataPlane.lunWorkers }, (_, l) => this.#spawnLun(l));
    await Promise.all(this.#luns.map((h) => this.#startOne(() => h.control.request('start', {}, START_TIMEOUT_MS), `LUN worker ${h.index}`)));
  }

  /** LUN worker `l` as the configuration and topology say now (also its replacement). */
  #spawnLun(l: number): LunHandle {
    const config = this.#running;
    const { logLevel, pretty } = this.#opts;
    const devices = config.devices.filter((d) => this.topology.device(d.name)?.lunWorker === l);
    const ram: Record<string, SharedArrayBuffer> = {};
    for (const d of devices) {
      const m = this.#ramMemory.get(d.name);
      if (m !== undefined) ram[d.name] = m;
    }
    const alua = this.topology.alua(config);
    const data: LunWorkerData = {
      index: l,
      clusterId: config.clusterId,
      stateDir: config.stateDir,
      maxTransferLength: config.iscsi.maxTransferLength,
      devices,
      ...(config.cluster === undefined ? {} : { cluster: true }),
      ramMemory: ram,
      unitIndexes: devices.map((d) => this.topology.device(d.name)!.luIndex),
      alua: this.cluster === null ? alua : { ...alua, states: this.cluster.aluaTable().map(({ group, state }) => ({ group, state })) },
      doorbell: this.dataPlane.lunDoorbells[l]!.sab,
      sessions: this.dataPlane.sessionLinks(l),
      heartbeat: { sab: this.dataPlane.heartbeats, slot: heartbeatSlot(HeartbeatKind.lun, l) },
      // The same counters for a replacement: they go on counting.
      metrics: this.metrics.lun[l]!,
      ...(INLINE_IO ? { grants: this.dataPlane.grants[l]! } : {}),
      logLevel,
      pretty,
    };
    const cluster = this.cluster;
    const prs = this.#prs;
    const notClustered = () => Promise.reject(new ControlError(ControlErrorCode.UNSUPPORTED, 'not a cluster node'));
    return new WorkerHandle(
      'lun',
      l,
      LUN_CONTROL,
      data,
      [],
      {
        requests: {
          // Reservations live here, not in the LUN worker: in Redis (cluster) or in the
          // supervisor's embedded store, so they outlive a worker that crashes (issue 12).
          prLoad: (m) => (cluster === null ? prs.loadPr(m.lu).then((state) => ({ state })) : cluster.prLoad(l, m.lu)),
          prTransition: (m) => (cluster === null ? prs.transition(m.lu, m.request) : cluster.prTransition(m.lu, m.request)).then((result) => ({ result })),
          luReset: (m) => (cluster === null ? Promise.resolve() : cluster.reset(m.lus, m.fn)),
          lockLu: (m) => (cluster === null ? notClustered() : cluster.lockLu(m.lu).then((token) => ({ token }))),
          unlockLu: (m) => (cluster === null ? notClustered() : cluster.unlockLu(m.lu, m.token)),
          uaLoad: (m) => (cluster === null ? Promise.resolve({ entries: [] }) : cluster.loadUa(m.lu).then((entries) => ({ entries }))),
          setAlua: (m) => (cluster === null ? notClustered() : cluster.setExplicitAlua(m.states.map((x) => ({ group: x.group, state: x.state as AluaStateValue })))),
        },
        notes: {
          uaSnapshot: (m) => void cluster?.saveUa(m.lu, m.entries).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'could not keep unit attentions in Redis')),
          capacityChanged: (m) =>
            void cluster?.publishCapacity(m.lu, m.bytes).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'could not tell the other nodes about a grown LU')),
          inlineFile: (m) => {
            const f: InlineFile = { lunWorker: l, luIndex: m.luIndex, path: m.path };
            this.#inlineFiles.set(`${l}/${m.luIndex}`, f);
            for (const h of this.#sessions) if (h.alive) h.control.notify('inlineFile', f);
          },
          modesChanged: (m) =>
            void cluster?.publishModes(m.lu, m.pages).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'could not carry mode pages to the other nodes')),
        },
        handles: {
          ramMemory: (m, memory) => {
            if (!(memory instanceof SharedArrayBuffer)) return;
            this.#ramMemory.set(m.device, memory);
            const inline = { lunWorker: l, luIndex: m.luIndex, gen: m.gen, memory, device: m.device };
            this.#inlineMemory.set(`${l}/${m.luIndex}`, inline);
            for (const h of this.#sessions) if (h.alive) h.control.transfer('inlineMemory', { lunWorker: l, luIndex: m.luIndex, gen: m.gen }, memory, false);
          },
        },
      },
      this.log,
      (h, code) => this.#onExit(h, code),
    );
  }

  async #startSessionWorkers(handoff: MessageChannel[][]): Promise<void> {
    this.#sessions = Array.from({ length: this.dataPlane.sessionWorkers }, (_, s) =>
      this.#spawnSession(
        s,
        handoff.map((perPortal) => perPortal[s]!.port2),
      ),
    );
    await Promise.all(this.#sessions.map((h) => this.#startOne(() => h.control.request('start', {}, START_TIMEOUT_MS), `session worker ${h.index}`)));
  }

  /** Session worker `s` with one handoff port per portal (also its replacement). */
  #spawnSession(s: number, portalPorts: MessagePort[]): SessionHandle {
    const config = this.#running;
    const { logLevel, pretty } = this.#opts;
    const dir = this.#sessionsDir;
    const data: SessionWorkerData = {
      index: s,
      slab: this.dataPlane.slabs[s]!,
      slabMinBlock: SLAB_MIN_BLOCK,
      doorbell: this.dataPlane.sessionDoorbells[s]!.sab,
      nexusTable: this.dataPlane.nexusTables[s]!,
      channels: this.dataPlane.lunChannels(s),
      routes: this.topology.routes(config),
      targetSlots: this.topology.targetSlots(config),
      tuning: config.iscsi,
      ...(config.discovery.auth === undefined ? {} : { discoveryAuth: config.discovery.auth }),
      cmdWindow: CMD_WINDOW,
      sessionCounts: this.dataPlane.sessionCounts,
      tsihTable: this.dataPlane.tsihTable,
      pollBudgetUs: Number(process.env['SPINDLE_POLL_US'] ?? POLL_BUDGET_US),
      heartbeat: { sab: this.dataPlane.heartbeats, slot: heartbeatSlot(HeartbeatKind.session, s) },
      metrics: this.metrics.session[s]!,
      inlineMetrics: this.metrics.inline[s]!,
      inlineMemory: [...this.#inlineMemory.values()],
      inlineFiles: [...this.#inlineFiles.values()],
      logLevel,
      pretty,
      portalPorts,
    };
    return new WorkerHandle(
      'session',
      s,
      SESSION_CONTROL,
      data,
      portalPorts,
      {
        requests: {
          authFailure: (m) => dir.authFailure(m.key),
          sessionFind: (m) => dir.find(m.key),
        },
        notes: {
          authSuccess: (m) => dir.authSuccess(m.key),
          sessionUp: (m) => dir.sessionUp(s, m.key, m.tsih),
          sessionDown: (m) => dir.sessionDown(s, m.key),
        },
      },
      this.log,
      (h, code) => this.#onExit(h, code),
    );
  }

  async #startPortals(handoff: MessageChannel[][]): Promise<void> {
    this.#portals = this.topology.portals.map((_, i) => this.#spawnPortal(i, handoff[i]!.map((c) => c.port1)));
    await Promise.all(this.#portals.map((h, i) => this.#startOne(() => h.control.request('start', {}, START_TIMEOUT_MS), `portal ${displayPortal(this.topology.portals[i]!)}`)));
  }

  /** Portal worker `i` (also its replacement), handing connections over `sessionPorts`. */
  #spawnPortal(i: number, sessionPorts: MessagePort[]): PortalHandle {
    const config = this.#running;
    const p = this.topology.portals[i]!;
    const data: PortalWorkerData = {
      index: i,
      host: p.host,
      port: p.port,
      portalIndex: i,
      maxConnections: config.iscsi.maxConnectionsPerPortal,
      ...(config.iscsi.maxConnectionsPerAddress === undefined ? {} : { maxConnectionsPerAddress: config.iscsi.maxConnectionsPerAddress }),
      acceptRate: ACCEPT_RATE,
      acceptBurst: ACCEPT_BURST,
      sessionPorts,
      heartbeat: { sab: this.dataPlane.heartbeats, slot: heartbeatSlot(HeartbeatKind.portal, i) },
      logLevel: this.#opts.logLevel,
      pretty: this.#opts.pretty,
    };
    return new WorkerHandle('portal', i, PORTAL_CONTROL, data, sessionPorts, { requests: {}, notes: {} }, this.log, (h, code) => this.#onExit(h, code));
  }

  /** Run `req` against a freshly spawned worker; its failure names the worker. */
  async #startOne(req: () => Promise<unknown>, what: string): Promise<void> {
    try {
      await req();
    } catch (err) {
      throw new Error(`${what}: ${errorMessage(err)}`, { cause: err });
    }
  }

  // ---- worker supervision (issue 12) ----

  /**
   * A worker ended while serving (crashed, or terminated because it hung): replace it
   * without stopping the node. One recovery at a time, in the order the exits came.
   */
  #onExit(h: { kind: string; index: number; name: string }, code: number): void {
    if (this.#stopping) return;
    if (h.kind === 'lun' || h.kind === 'session' || h.kind === 'portal') this.workerRestarts[h.kind]++;
    this.log.error({ worker: h.name, code }, 'worker ended unexpectedly: replacing it');
    // Inline I/O (shared/ring/inline-grants.ts): nothing is served under a dead LUN
    // worker's grants (it cannot act on what happens until its successor is up); a dead
    // session worker is copying nothing any more.
    if (h.kind === 'lun') this.#voidGrants(h.index);
    if (h.kind === 'session') for (const g of this.dataPlane.grants) new InlineGrants(g).clearWorker(h.index);
    this.#recovering = this.#recovering.then(() => this.#recover(h.kind, h.index)).catch((err: unknown) => {
      this.log.fatal({ worker: h.name, err: errorMessage(err) }, 'could not replace the worker: stopping the target');
      void this.stop(1);
    });
  }

  async #recover(kind: string, index: number): Promise<void> {
    if (this.#stopping) return;
    const t0 = performance.now();
    if (kind === 'lun') await this.#recoverLun(index);
    else if (kind === 'session') await this.#recoverSession(index);
    else await this.#recoverPortal(index);
    this.log.warn({ worker: `${kind}-${index}`, ms: Math.round(performance.now() - t0) }, 'worker replaced');
  }

  /**
   * LUN worker `l`: the session workers end the commands it held (retryable: 06/29/04)
   * and queue new ones; a new worker opens the same units at the same indexes (RAM
   * contents and reservations were kept outside it), over fresh rings; the session workers
   * switch to them and the queued commands go on.
   */
  async #recoverLun(l: number): Promise<void> {
    await Promise.all(this.#sessions.filter((h) => h.alive).map((h) => h.control.request('lunLost', { lunWorker: l }).catch(() => undefined)));
    this.dataPlane.replaceLunWorker(l);
    const h = this.#spawnLun(l);
    this.#luns[l] = h;
    await h.control.request('start', {}, START_TIMEOUT_MS);
    for (const s of this.#sessions) if (s.alive) s.control.transfer('lunChannel', { lunWorker: l }, this.dataPlane.lunChannel(s.index, l), false);
  }

  /**
   * Session worker `s`: its connections died with it (initiators reconnect). The LUN
   * workers abort its commands and lose its I_T nexuses; its TSIHs and session counts are
   * freed; a new worker starts over fresh rings and slab, and the portals hand it
   * connections again.
   */
  async #recoverSession(s: number): Promise<void> {
    await Promise.all(this.#portals.filter((h) => h.alive).map((h) => h.control.request('sessionLost', { session: s }).catch(() => undefined)));
    await Promise.all(this.#luns.filter((h) => h.alive).map((h) => h.control.request('sessionLost', { session: s }).catch(() => undefined)));
    this.#sessionsDir.workerGone(s);
    this.dataPlane.replaceSessionWorker(s);
    const channels = this.#portals.map(() => new MessageChannel());
    const h = this.#spawnSession(
      s,
      channels.map((c) => c.port2),
    );
    this.#sessions[s] = h;
    for (const l of this.#luns) if (l.alive) l.control.transfer('sessionLink', { session: s }, this.dataPlane.sessionLink(s, l.index), false);
    await h.control.request('start', {}, START_TIMEOUT_MS);
    this.#portals.forEach((p, i) => p.control.transfer('sessionPort', { session: s }, channels[i]!.port1));
  }

  /** A portal worker: a new one listens on the same portal (connections already handed over live on). */
  async #recoverPortal(i: number): Promise<void> {
    // The old handoff ports died with it: new channels to every session worker.
    const channels = this.#sessions.map(() => new MessageChannel());
    for (const s of this.#sessions) if (s.alive) s.control.transfer('portalPort', { portal: i }, channels[s.index]!.port2);
    const h = this.#spawnPortal(
      i,
      channels.map((c) => c.port1),
    );
    this.#portals[i] = h;
    await h.control.request('start', {}, START_TIMEOUT_MS);
  }

  /** How long a heartbeat may stand still before the worker counts as hung. */
  get hangTimeoutMs(): number {
    return this.#hangTimeoutMs;
  }

  /**
   * When the watchdog last saw this worker's heartbeat move (Date.now(); 0: not yet).
   * The admin API's readiness and the worker_up metric read liveness here, so there is
   * one heartbeat per worker and one judge of it.
   */
  lastBeatMs(name: string): number {
    return this.#beats.get(name)?.wallMs ?? 0;
  }

  /**
   * Hung workers: a heartbeat that has not moved for hangTimeoutMs means the worker's
   * thread no longer reaches its event loop; it is terminated, and #onExit replaces it.
   */
  #watchHeartbeats(): void {
    const seen = this.#beats;
    const tick = (): void => {
      if (this.#stopping) return;
      const now = performance.now();
      const all: { h: { name: string; alive: boolean; terminate(): Promise<number> }; slot: number }[] = [
        ...this.#luns.map((h) => ({ h, slot: heartbeatSlot(HeartbeatKind.lun, h.index) })),
        ...this.#sessions.map((h) => ({ h, slot: heartbeatSlot(HeartbeatKind.session, h.index) })),
        ...this.#portals.map((h) => ({ h, slot: heartbeatSlot(HeartbeatKind.portal, h.index) })),
      ];
      for (const { h, slot } of all) {
        if (!h.alive) continue;
        const beat = readHeartbeat(this.dataPlane.heartbeats, slot);
        const last = seen.get(h.name);
        if (last === undefined || last.beat !== beat) {
          seen.set(h.name, { beat, at: now, wallMs: Date.now() });
          continue;
        }
        if (now - last.at > this.#hangTimeoutMs) {
          seen.delete(h.name);
          this.log.error({ worker: h.name, silentMs: Math.round(now - last.at) }, 'worker hung (no heartbeat): terminating it');
          void h.terminate();
        }
      }
    };
    // At once too: the workers have just answered `start`, so they count as alive now.
    tick();
    this.#watchdog = setInterval(tick, Math.min(500, this.#hangTimeoutMs / 4));
    this.#watchdog.unref();
  }

  /**
   * Tests (SPINDLE_TEST_FAULTS=1 with SPINDLE_FAULT_FILE): a line "crash|hang lun|session|portal N"
   * appended to the file makes that worker crash or hang, so supervision is tested against
   * a real target under load.
   */
  #watchFaultFile(): void {
    const file = process.env['SPINDLE_FAULT_FILE'];
    if (process.env['SPINDLE_TEST_FAULTS'] !== '1' || file === undefined) return;
    let done = 0;
    const timer = setInterval(() => {
      let lines: string[];
      try {
        lines = readFileSync(file, 'utf8').split('\n').filter((x) => x.trim() !== '');
      } catch {
        return;
      }
      for (; done < lines.length; done++) {
        const [mode, kind, n] = lines[done]!.trim().split(/\s+/);
        const index = Number(n);
        const h = kind === 'lun' ? this.#luns[index] : kind === 'session' ? this.#sessions[index] : kind === 'portal' ? this.#portals[index] : undefined;
        if (h === undefined || (mode !== 'crash' && mode !== 'hang')) {
          this.log.warn({ line: lines[done] }, 'fault file: not understood');
          continue;
        }
        this.log.warn({ worker: h.name, mode }, 'injecting a fault (test)');
        void (h.control as { request(t: 'fault', b: { mode: 'crash' | 'hang' }): Promise<void> }).request('fault', { mode }).catch(() => undefined);
      }
    }, 100);
    timer.unref();
  }

  /** What the cluster asks of this node's workers. */
  #clusterHost(): ClusterHost {
    // Requests for a LUN worker that is down are skipped.
    const live = (worker: number) => {
      const h = this.#luns[worker];
      return h !== undefined && h.alive ? h : undefined;
    };
    // Before a change from the cluster reaches a LUN worker, its inline I/O grants are
    // void: should the worker be dead, hung or slow, session workers still serve nothing
    // under the state the change replaces (inline-grants.ts).
    const voided = (worker: number) => {
      this.#voidGrants(worker);
      return live(worker);
    };
    return {
      applyPr: async (worker, lu, state, effects, reload = false) => {
        await voided(worker)?.control.request('prApply', { lu, state, effects: [...effects], reload }, 60_000);
      },
      applyCapacity: async (worker, lu, bytes) => {
        await voided(worker)?.control.request('growApply', { lu, bytes });
      },
      applyModes: async (worker, lu, pages) => {
        await voided(worker)?.control.request('modeApply', { lu, pages: [...pages] });
      },
      applyReset: async (worker, lu, fn) => {
        await voided(worker)?.control.request('resetApply', { lu, fn }, 60_000);
      },
      applyHold: async (worker, lu, id, ttlMs) => {
        await voided(worker)?.control.request('holdApply', { lu, id, ttlMs }, ttlMs);
      },
      releaseHold: async (worker, lu, id) => {
        await live(worker)?.control.request('holdRelease', { lu, id });
      },
      aluaStates: async (states) => {
        const body = { remove: [], states: states.map((s) => ({ group: s.group, state: s.state as number })) };
        for (let l = 0; l < this.#luns.length; l++) this.#voidGrants(l);
        await Promise.all(this.#luns.filter((h) => h.alive).map((h) => h.control.request('commit', body).catch(() => undefined)));
      },
      adminChanged: (state) => void this.#onAdmin(state),
    };
  }

  /**
   * The operator changed this node's state (spindle node drain|undrain|fence). Drain: the
   * port group is already TRANSITIONING (cluster-node.ts); initiators are asked to log out
   * and in-flight commands finish, then the node reports itself drained (STANDBY). Fence:
   * every connection is closed at once (the group is UNAVAILABLE).
   */
  async #onAdmin(state: AdminState): Promise<void> {
    const cluster = this.cluster;
    if (cluster === null) return;
    if (state === AdminState.DRAINING) {
      this.log.warn({}, 'node drain: asking initiators to log out, finishing in-flight commands');
      const deadline = Date.now() + NODE_DRAIN_TIMEOUT_MS;
      for (;;) {
        const answers = await Promise.all(this.#sessions.filter((h) => h.alive).map((h) => h.control.request('logoutAll', { time2WaitSec: 2 }).catch(() => ({ tasks: 0 }))));
        const tasks = answers.reduce((n, a) => n + a.tasks, 0);
        if (tasks === 0 || Date.now() > deadline || cluster.admin(cluster.node) !== AdminState.DRAINING) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      if (cluster.admin(cluster.node) === AdminState.DRAINING) {
        await cluster.setAdmin(cluster.node, AdminState.DRAINED).catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'could not report the node drained'));
        this.log.warn({}, 'node drained: port group in standby');
      }
    } else if (state === AdminState.FENCED) {
      this.log.error({}, 'node fenced by an operator: closing every connection');
      await Promise.all(this.#sessions.filter((h) => h.alive).map((h) => h.control.request('closeAll', { reason: 'node fenced' }).catch(() => undefined)));
    } else if (state === AdminState.ACTIVE) {
      this.log.info({}, 'node undrained: serving again');
    }
  }

  /** Void every inline I/O grant of LUN worker `l`'s units (shared/ring/inline-grants.ts). */
  #voidGrants(l: number): void {
    const g = this.dataPlane.grants[l];
    if (g !== undefined) new InlineGrants(g).voidAll();
  }

  /**
   * Unit `luIndex` of LUN worker `w` was removed: a RAM disk's memory is let go here and
   * in every session worker, so it can be freed, and a file's descriptors there are
   * closed (unit indexes are never reused).
   */
  #forgetInline(w: number, luIndex: number): void {
    const key = `${w}/${luIndex}`;
    const m = this.#inlineMemory.get(key);
    if (m === undefined && !this.#inlineFiles.has(key)) return;
    this.#inlineMemory.delete(key);
    this.#inlineFiles.delete(key);
    if (m !== undefined) this.#ramMemory.delete(m.device);
    for (const h of this.#sessions) if (h.alive) h.control.notify('forgetUnit', { lunWorker: w, luIndex });
  }

  /** The reload plan's view of the workers (reload.ts). */
  #bus(): WorkerBus {
    const settle = (p: Promise<unknown>): Promise<string | undefined> => p.then(
      () => undefined,
      (err: unknown) => errorMessage(err),
    );
    return {
      lunWorkers: this.#luns.length,
      sessionWorkers: this.#sessions.length,
      prepare: (w, body) => settle(this.#luns[w]!.control.request('prepare', body, START_TIMEOUT_MS)),
      commit: async (w, body) => {
        const failed = await settle(this.#luns[w]!.control.request('commit', body, START_TIMEOUT_MS));
        if (failed === undefined) for (const i of body.remove) this.#forgetInline(w, i);
        return failed;
      },
      routes: async (next) => {
        const body = {
          routes: this.topology.routes(next),
          targetSlots: this.topology.targetSlots(next),
          ...(next.discovery.auth === undefined ? {} : { discoveryAuth: next.discovery.auth }),
        };
        const errs = await Promise.all(this.#sessions.map((h) => settle(h.control.request('routes', body))));
        return errs.find((e) => e !== undefined);
      },
    };
  }

  /**
   * What every worker holds now: connections, tasks and slab bytes per session worker,
   * units and commands in flight per LUN worker (SIGUSR2 logs it; leak checks in tests).
   */
  async stats(): Promise<{
    sessions: { worker: number; connections: number; tasks: number; slabInUse: number }[];
    luns: { worker: number; units: number; inflight: number }[];
    restarts: number;
  }> {
    const sessions = await Promise.all(
      this.#sessions.filter((h) => h.alive).map(async (h) => ({ worker: h.index, ...(await h.control.request('stats', {}, 5000)) })),
    );
    const luns = await Promise.all(this.#luns.filter((h) => h.alive).map(async (h) => ({ worker: h.index, ...(await h.control.request('stats', {}, 5000)) })));
    return { sessions, luns, restarts: this.workerRestarts.lun + this.workerRestarts.session + this.workerRestarts.portal };
  }

  /** Re-read and apply the configuration (SIGHUP); one reload at a time, in order. */
  reload(): Promise<void> {
    return this.reloadWithReport().then(() => undefined);
  }

  /** reload(), resolving with what happened (admin API: POST /api/v1/reload). */
  reloadWithReport(): Promise<ReloadReport> {
    const load = this.#opts.reloadConfig;
    if (load === undefined) return Promise.resolve({ outcome: 'refused', problems: [{ path: '', message: 'this target was not started from a configuration file' }] });
    if (this.#stopping) return Promise.resolve({ outcome: 'refused', problems: [{ path: '', message: 'the target is shutting down' }] });
    const run = this.#reloading.then(() => this.#reloadOnce(load));
    void run.then((r) => this.reloadCounts[r.outcome]++, () => undefined);
    this.#reloading = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #reloadOnce(load: () => Promise<SpindleConfig>): Promise<ReloadReport> {
    const log = this.log;
    let next: SpindleConfig;
    try {
      next = await load();
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'configuration reload refused: the file is invalid; the running configuration stays');
      return refusedByLoad(err);
    }
    const planned = planReload(this.#running, next, this.topology);
    if ('problems' in planned) {
      for (const p of planned.problems) log.error({ field: p.path }, `configuration reload refused: ${p.path}: ${p.message}`);
      log.error({ problems: planned.problems.length }, 'configuration reload refused; the running configuration stays');
      return { outcome: 'refused', problems: planned.problems };
    }
    const plan = planned.plan;
    if (plan.empty) {
      log.info({}, 'configuration reloaded: nothing changed');
      return { outcome: 'unchanged', problems: [] };
    }
    const error = await applyReload(plan, this.#running, next, this.topology, this.#bus());
    if (error !== undefined) {
      log.error({ err: error }, 'configuration reload failed; the running configuration stays');
      return { outcome: 'failed', problems: [{ path: '', message: error }] };
    }
    this.#running = next;
    const changes = { added: plan.add.map((d) => d.name), removed: plan.remove, grown: plan.grow.map((g) => g.name), routes: plan.routesChanged, alua: plan.aluaChanged };
    log.info(changes, 'configuration reloaded');
    return { outcome: 'applied', problems: [], changes };
  }

  // ---- admin API (admin/node-admin.ts) ----

  /** start() has finished and stop() has not begun. */
  get serving(): boolean {
    return this.#started && !this.#stopping;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** The worker threads, for the admin API's requests to them. */
  get handles(): { readonly lun: readonly LunHandle[]; readonly session: readonly SessionHandle[]; readonly portal: readonly PortalHandle[] } {
    return { lun: this.#luns, session: this.#sessions, portal: this.#portals };
  }

  /**
   * Admin API: set target port group `group` to `state`. One node: like a reload that
   * changes `aluaStates` (implicit transition, ASYMMETRIC ACCESS STATE CHANGED), held until
   * the next reload or restart, where the file's `aluaStates` applies again. In a cluster:
   * an explicit state, as SET TARGET PORT GROUPS sets it, for every node.
   * Serialized with reloads. Rejects with a RangeError for an unknown group or state.
   */
  setAluaState(group: number, state: AluaStateValue): Promise<void> {
    const run = this.#reloading.then(async () => {
      if (this.cluster !== null) {
        if (!this.topology.clusterGroups.some((g) => g.id === group)) throw new RangeError(`no target port group ${group}`);
        if (state === AluaState.TRANSITIONING) throw new RangeError('transitioning is the target\'s own state; it cannot be set');
        await this.cluster.setExplicitAlua([{ group, state }]);
        this.log.warn({ group, state }, 'target port group state set by an operator');
        return;
      }
      const portal = this.topology.portals.find((p) => p.tag === group);
      if (portal === undefined) throw new RangeError(`no target port group ${group}`);
      const name = ALUA_NAMES[state];
      if (name === undefined) throw new RangeError(`unsupported asymmetric access state ${state}`);
      const body = { remove: [], states: [{ group, state: state as number }] };
      const errors = await Promise.all(this.#luns.filter((h) => h.alive).map((h) => h.control.request('commit', body).then(() => undefined, (err: unknown) => errorMessage(err))));
      const failed = errors.find((e) => e !== undefined);
      if (failed !== undefined) throw new Error(failed);
      const running = this.#running;
      const others = running.aluaStates.filter((s) => this.topology.portalIndex(s.portal) !== this.topology.portalIndex(portal));
      this.#running = Object.freeze({ ...running, aluaStates: Object.freeze([...others, Object.freeze({ portal: { host: portal.host, port: portal.port }, state: name })]) });
      this.log.warn({ group, state: name }, 'target port group state set by an operator (until the next reload)');
    });
    this.#reloading = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Shut down in order: portals stop accepting; session workers ask initiators to log
   * out and let in-flight commands finish; LUN workers flush and close their stores.
   */
  async stop(code: number): Promise<number> {
    if (this.#stopping) return this.exited;
    this.#stopping = true;
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    const log = this.log;
    log.info({}, 'shutting down: no new logins, finishing in-flight commands');
    const settle = (p: Promise<unknown>) => p.catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'shutdown step did not complete'));
    await Promise.all(this.#portals.filter((h) => h.alive).map((h) => settle(h.control.request('stop', {}, 5000))));
    await Promise.all(
      this.#sessions.filter((h) => h.alive).map((h) => settle(h.control.request('drain', { timeoutMs: DRAIN_TIMEOUT_MS }, DRAIN_TIMEOUT_MS + 2000))),
    );
    await Promise.all(this.#luns.filter((h) => h.alive).map((h) => settle(h.control.request('stop', {}, 15_000))));
    await this.#terminateAll();
    await this.cluster?.stop().catch(() => undefined);
    await this.#prs.close().catch(() => undefined);
    log.info({}, 'stopped');
    this.#resolveExit(code);
    return code;
  }

  async #terminateAll(): Promise<void> {
    await Promise.all([...this.#portals, ...this.#sessions, ...this.#luns].map((h) => h.terminate()));
  }
}
