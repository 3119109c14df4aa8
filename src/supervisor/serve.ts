/**
 * The supervisor's `serve`: builds the data plane (doorbells, rings, slabs), spawns
 * LUN workers, session workers and one fabric port worker per portal, and runs until
 * SIGTERM/SIGINT. Startup is all-or-nothing: if any worker fails to come up (a backing
 * file cannot be opened, a portal cannot be bound) everything is torn down and serve
 * resolves non-zero, so a bad config never leaves half a target running.
 */
import os from 'node:os';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { SpindleConfig } from '../shared/config-types.ts';
import { createLogger, type Logger } from '../shared/logging.ts';
import { decodeControl, encodeControl, type ControlMessage, type LunCommit, type LunPrepare, type RoutesUpdate } from '../shared/messages.ts';
import { Doorbell } from '../shared/ring/doorbell.ts';
import { SpscRing } from '../shared/ring/spsc-ring.ts';
import { CMD_DESC_BYTES, CPL_DESC_BYTES } from '../shared/ring/descriptors.ts';
import { NexusTable } from '../shared/ring/nexus-table.ts';
import { TsihTable } from '../shared/iscsi/tsih-table.ts';
import { AuthThrottle } from '../workers/session/iscsi/login/auth-throttle.ts';
import type { LunWorkerData } from '../workers/lun/lun-worker.ts';
import type { AluaWire } from '../workers/lun/alua/port-groups.ts';
import type { SessionWorkerData } from '../workers/session/session-worker.ts';
import type { PortalWorkerData } from '../workers/fabric/iscsi/portal-worker.ts';
import { MAX_TARGET_SLOTS, Topology } from './topology.ts';
import { applyReload, planReload, type WorkerBus } from './reload.ts';
import type { LunChannelInit } from '../workers/session/lun-channel.ts';

const RING_CAPACITY = 1024;
const SLAB_MIN_BLOCK = 4096;
const CMD_WINDOW = 128;
const DRAIN_TIMEOUT_MS = 15_000;
/** Session workers poll for completions this long after submitting (see pollCompletions). */
const POLL_BUDGET_US = 50;

const WORKER_URL = {
  lun: new URL('../workers/lun/lun-worker.ts', import.meta.url),
  session: new URL('../workers/session/session-worker.ts', import.meta.url),
  portal: new URL('../workers/fabric/iscsi/portal-worker.ts', import.meta.url),
};

interface Spawned {
  kind: string;
  index: number;
  worker: Worker;
}

export interface ServeOptions {
  pretty: boolean;
  logLevel?: string;
  /** Resolve once the target is ready (tests); serve() itself resolves at exit. */
  onReady?: (handle: RunningTarget) => void;
  /** Install SIGTERM/SIGINT (and, with reloadConfig, SIGHUP) handlers (default true). */
  handleSignals?: boolean;
  /**
   * Re-read the configuration file (SIGHUP). Rejects with a ConfigError (its message
   * names every bad field) when the file is invalid.
   */
  reloadConfig?: () => Promise<SpindleConfig>;
}

export interface RunningTarget {
  stop(): Promise<number>;
  /** Re-read and apply the configuration, as SIGHUP does. */
  reload(): Promise<void>;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** The per-session-worker slab: room for many max-size transfers at once. */
function slabBytes(config: SpindleConfig): number {
  return nextPow2(Math.max(64 * 1024 * 1024, 8 * config.iscsi.maxTransferLength));
}

export async function serve(config: SpindleConfig, opts: ServeOptions): Promise<number> {
  const level = opts.logLevel ?? config.logging.level;
  const log = createLogger({ name: 'supervisor', level, pretty: opts.pretty, bindings: { node: config.nodeId } });
  const nLun = Math.max(1, Math.min(config.workers.lun, config.devices.length || 1));
  const nSession = Math.max(1, config.workers.session);

  // ---- placement: devices round-robin over LUN workers; one port worker per portal ----
  const topology = new Topology(config, nLun);
  const portals = topology.portals;
  const routes = topology.routes(config);
  const alua: AluaWire = topology.alua(config);
  const devicesOf = (w: number) => config.devices.filter((d) => topology.device(d.name)!.lunWorker === w);

  // ---- data plane ----
  const lunDoorbells = Array.from({ length: nLun }, () => new Doorbell());
  const sessionDoorbells = Array.from({ length: nSession }, () => new Doorbell());
  const slabSize = slabBytes(config);
  const slabs = Array.from({ length: nSession }, () => new SharedArrayBuffer(slabSize));
  const sessionCounts = new SharedArrayBuffer(4 * MAX_TARGET_SLOTS);
  const nexusTables = Array.from({ length: nSession }, () => NexusTable.create().sab);
  const tsihTable = TsihTable.createBuffer();
  // rings[s][l]: the command and completion rings of session worker s with LUN worker l.
  const rings = Array.from({ length: nSession }, () =>
    Array.from({ length: nLun }, () => ({
      cmd: SpscRing.create(RING_CAPACITY, CMD_DESC_BYTES).sab,
      cpl: SpscRing.create(RING_CAPACITY, CPL_DESC_BYTES).sab,
    })),
  );

  const spawned: Spawned[] = [];
  const pretty = opts.pretty;
  const spawn = (kind: 'lun' | 'session' | 'portal', index: number, workerData: unknown, transferList: MessagePort[] = []) => {
    const worker = new Worker(WORKER_URL[kind], { workerData, transferList, name: `${kind}-${index}` });
    spawned.push({ kind, index, worker });
    return worker;
  };

  let stopping = false;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));

  const waitFor = (w: Worker, want: ControlMessage['type'], what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const onMsg = (raw: Uint8Array) => {
        const m = decodeControl(raw);
        if (m.type === want) {
          w.off('message', onMsg);
          resolve();
        } else if (m.type === 'error') {
          w.off('message', onMsg);
          reject(new Error(`${what}: ${m.message}`));
        }
      };
      w.on('message', onMsg);
      w.once('error', (e: Error) => reject(new Error(`${what}: ${e.message}`)));
      w.once('exit', (code) => reject(new Error(`${what} exited with code ${code}`)));
    });

  const terminateAll = async () => {
    await Promise.all(spawned.map((s) => s.worker.terminate().catch(() => 0)));
  };

  try {
    // 1. LUN workers open their backing stores.
    const lunWorkers = Array.from({ length: nLun }, (_, l) => {
      const devices = devicesOf(l);
      const wd: LunWorkerData = {
        index: l,
        clusterId: config.clusterId,
        stateDir: config.stateDir,
        maxTransferLength: config.iscsi.maxTransferLength,
        devices,
        alua,
        doorbell: lunDoorbells[l].sab,
        sessions: Array.from({ length: nSession }, (_, s) => ({
          cmdRing: rings[s][l].cmd,
          cplRing: rings[s][l].cpl,
          capacity: RING_CAPACITY,
          slab: slabs[s],
          slabMinBlock: SLAB_MIN_BLOCK,
          doorbell: sessionDoorbells[s].sab,
          nexusTable: nexusTables[s],
        })),
        logLevel: level,
        pretty,
      };
      return spawn('lun', l, wd);
    });
    await Promise.all(lunWorkers.map((w, i) => waitFor(w, 'ready', `LUN worker ${i}`)));

    // 2. Session workers, each with a MessagePort per fabric port worker.
    const channels = portals.map(() => Array.from({ length: nSession }, () => new MessageChannel()));
    const sessionWorkers = Array.from({ length: nSession }, (_, s) => {
      const portalPorts = portals.map((_, p) => channels[p][s].port2);
      const wd: SessionWorkerData = {
        index: s,
        slab: slabs[s],
        slabMinBlock: SLAB_MIN_BLOCK,
        doorbell: sessionDoorbells[s].sab,
        nexusTable: nexusTables[s],
        channels: Array.from({ length: nLun }, (_, l): LunChannelInit => ({
          cmdRing: rings[s][l].cmd,
          cplRing: rings[s][l].cpl,
          capacity: RING_CAPACITY,
          peerDoorbell: lunDoorbells[l].sab,
        })),
        routes,
        targetSlots: topology.targetSlots(config),
        tuning: config.iscsi,
        discoveryAuth: config.discovery.auth,
        cmdWindow: CMD_WINDOW,
        sessionCounts,
        tsihTable,
        pollBudgetUs: Number(process.env.SPINDLE_POLL_US ?? POLL_BUDGET_US),
        logLevel: level,
        pretty,
        portalPorts,
      };
      return spawn('session', s, wd, portalPorts);
    });
    await Promise.all(sessionWorkers.map((w, i) => waitFor(w, 'ready', `session worker ${i}`)));

    // 3. Fabric port workers: listening starts last, when everything behind is ready.
    const portalWorkers = portals.map((p, i) => {
      const sessionPorts = channels[i].map((c) => c.port1);
      const wd: PortalWorkerData = {
        index: i,
        host: p.host,
        port: p.port,
        portalIndex: i,
        maxConnections: config.iscsi.maxConnectionsPerPortal,
        acceptRate: 200,
        acceptBurst: 100,
        sessionPorts,
        logLevel: level,
        pretty,
      };
      return spawn('portal', i, wd, sessionPorts);
    });
    await Promise.all(portalWorkers.map((w, i) => waitFor(w, 'ready', `portal ${portals[i].host}:${portals[i].port}`)));

    // Session reinstatement across session workers (RFC 7143 6.3.5): the supervisor
    // knows which worker holds each session identity and tells the old one to close
    // its session when a newer one logs in elsewhere.
    const sessionOwner = new Map<string, { worker: number; tsih: number }>();
    // One failed-authentication throttle for the whole node (RFC 7143 12.1.3 leaves
    // brute-force protection to the implementation): keyed by initiator and address.
    const throttle = AuthThrottle.fromConfig(config.iscsi.authBackoffMaxSec);
    sessionWorkers.forEach((w, i) => {
      w.on('message', (raw: Uint8Array) => {
        const m = decodeControl(raw);
        if (m.type === 'auth-failure') {
          const now = Date.now();
          const delayMs = throttle.failure(m.key, now);
          w.postMessage(encodeControl({ type: 'auth-delay', id: m.id, delayMs, failures: throttle.failures(m.key, now) }));
          return;
        }
        if (m.type === 'auth-success') {
          throttle.success(m.key);
          return;
        }
        if (m.type === 'session-up') {
          const prev = sessionOwner.get(m.key)?.worker;
          sessionOwner.set(m.key, { worker: i, tsih: m.tsih });
          if (prev !== undefined && prev !== i) sessionWorkers[prev].postMessage(encodeControl({ type: 'reinstate', key: m.key }));
        } else if (m.type === 'session-down') {
          if (sessionOwner.get(m.key)?.worker === i) sessionOwner.delete(m.key);
        } else if (m.type === 'session-find') {
          // Connection reinstatement landing on another worker than its session (RFC 7143 6.3.4).
          const o = sessionOwner.get(m.key);
          w.postMessage(encodeControl({ type: 'session-found', id: m.id, worker: o?.worker ?? -1, tsih: o?.tsih ?? 0 }));
        }
      });
    });

    // ---- configuration reload (SIGHUP, reload.ts) ----
    // Requests to workers carry an id; each answers with one `done`.
    let requestId = 0;
    const answers = new Map<number, (error: string | undefined) => void>();
    const onDone = (raw: Uint8Array) => {
      const m = decodeControl(raw);
      if (m.type !== 'done') return;
      const settle = answers.get(m.id);
      answers.delete(m.id);
      settle?.(m.error);
    };
    for (const w of [...lunWorkers, ...sessionWorkers]) w.on('message', onDone);
    const request = (w: Worker, msg: LunPrepare | LunCommit | RoutesUpdate) =>
      new Promise<string | undefined>((resolve) => {
        const id = ++requestId;
        answers.set(id, resolve);
        w.postMessage(encodeControl({ ...msg, id }));
      });
    const bus: WorkerBus = {
      lunWorkers: nLun,
      sessionWorkers: nSession,
      lun: (w, msg) => request(lunWorkers[w]!, msg),
      routes: async (next) => {
        const msg = { type: 'routes' as const, id: 0, routes: topology.routes(next), targetSlots: topology.targetSlots(next), ...(next.discovery.auth === undefined ? {} : { discoveryAuth: next.discovery.auth }) };
        const errs = await Promise.all(sessionWorkers.map((w) => request(w, msg)));
        return errs.find((e) => e !== undefined);
      },
    };
    let running: SpindleConfig = config;
    let reloading: Promise<void> = Promise.resolve();
    const reload = (): Promise<void> => {
      const load = opts.reloadConfig;
      if (load === undefined || stopping) return reloading;
      // One reload at a time, in the order the signals came.
      reloading = reloading.then(async () => {
        let next: SpindleConfig;
        try {
          next = await load();
        } catch (err) {
          log.error({ err: (err as Error).message }, 'configuration reload refused: the file is invalid; the running configuration stays');
          return;
        }
        const planned = planReload(running, next, topology);
        if ('problems' in planned) {
          for (const p of planned.problems) log.error({ field: p.path }, `configuration reload refused: ${p.path}: ${p.message}`);
          log.error({ problems: planned.problems.length }, 'configuration reload refused; the running configuration stays');
          return;
        }
        const plan = planned.plan;
        if (plan.empty) {
          log.info({}, 'configuration reloaded: nothing changed');
          return;
        }
        const error = await applyReload(plan, running, next, topology, bus);
        if (error !== undefined) {
          log.error({ err: error }, 'configuration reload failed; the running configuration stays');
          return;
        }
        running = next;
        log.info(
          { added: plan.add.map((d) => d.name), removed: plan.remove, grown: plan.grow.map((g) => g.name), routes: plan.routesChanged, alua: plan.aluaChanged },
          'configuration reloaded',
        );
      });
      return reloading;
    };

    // Any later worker death is fatal for now (restart with in-flight recovery is a
    // later issue): stop cleanly rather than serve with a hole in the data plane.
    for (const s of spawned) {
      s.worker.on('error', (err: Error) => log.error({ worker: `${s.kind}-${s.index}`, err: err.message }, 'worker crashed'));
      s.worker.on('exit', (code) => {
        if (!stopping) {
          log.fatal({ worker: `${s.kind}-${s.index}`, code }, 'worker exited unexpectedly: stopping the target');
          void stop(1);
        }
      });
    }

    const stop = async (code: number): Promise<number> => {
      if (stopping) return exited;
      stopping = true;
      log.info({}, 'shutting down: no new logins, finishing in-flight commands');
      const settle = <T>(p: Promise<T>) => p.catch(() => undefined);
      await Promise.all(portalWorkers.map((w) => settle(sendAndWait(w, { type: 'stop' }, 'stopped', 5000))));
      await Promise.all(
        sessionWorkers.map((w) => settle(sendAndWait(w, { type: 'drain', timeoutMs: DRAIN_TIMEOUT_MS }, 'drained', DRAIN_TIMEOUT_MS + 2000))),
      );
      await Promise.all(lunWorkers.map((w) => settle(sendAndWait(w, { type: 'stop' }, 'stopped', 15_000))));
      await terminateAll();
      log.info({}, 'stopped');
      resolveExit(code);
      return code;
    };

    const first = portals[0];
    const host = first ? (first.host.includes(':') ? `[${first.host}]` : first.host) : '127.0.0.1';
    log.info(
      {
        portals: portals.map((p) => `${p.host}:${p.port}`),
        targets: config.targets.map((t) => t.iqn),
        workers: { session: nSession, lun: nLun, portal: portals.length },
        cores: os.availableParallelism(),
      },
      `target ready; discover with: iscsi-ls -s iscsi://${host}:${first?.port ?? 3260}`,
    );

    if (opts.handleSignals !== false) {
      const onSignal = (sig: string) => {
        log.info({ signal: sig }, 'signal received');
        void stop(0);
      };
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      process.once('SIGINT', () => onSignal('SIGINT'));
      if (opts.reloadConfig !== undefined) {
        process.on('SIGHUP', () => {
          log.info({ signal: 'SIGHUP' }, 'reloading the configuration');
          void reload();
        });
      }
    }
    opts.onReady?.({ stop: () => stop(0), reload });
    return await exited;
  } catch (err) {
    log.error({ err: (err as Error).message }, 'startup failed: nothing is served');
    stopping = true;
    await terminateAll();
    return 1;
  }
}

function sendAndWait(w: Worker, msg: ControlMessage, want: ControlMessage['type'], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      w.off('message', onMsg);
      reject(new Error(`timeout waiting for ${want}`));
    }, timeoutMs);
    const onMsg = (raw: Uint8Array) => {
      if (decodeControl(raw).type === want) {
        clearTimeout(timer);
        w.off('message', onMsg);
        resolve();
      }
    };
    w.on('message', onMsg);
    w.postMessage(encodeControl(msg));
  });
}

export type { Logger };
