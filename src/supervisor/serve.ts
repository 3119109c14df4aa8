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
import { decodeControl, encodeControl, type ControlMessage } from '../shared/messages.ts';
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
import type { LunRoute, PortalRoute, RoutesWire } from '../workers/session/routes.ts';
import type { LunChannelInit } from '../workers/session/lun-channel.ts';

const RING_CAPACITY = 1024;
const SLAB_MIN_BLOCK = 4096;
const CMD_WINDOW = 128;
const DRAIN_TIMEOUT_MS = 15_000;
/**
 * IMPLICIT TRANSITION TIME reported in REPORT TARGET PORT GROUPS (SPC-4 6.36.2): how long
 * an initiator should allow an implicit ALUA transition (cluster failover) to take.
 */
const ALUA_IMPLICIT_TRANSITION_SEC = 30;
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
  /** Install SIGTERM/SIGINT handlers (default true). */
  handleSignals?: boolean;
}

export interface RunningTarget {
  stop(): Promise<number>;
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

  // ---- placement: devices round-robin over LUN workers ----
  const deviceRoute = new Map<string, { lunWorker: number; luIndex: number }>();
  const lunDevices: SpindleConfig['devices'][number][][] = Array.from({ length: nLun }, () => []);
  config.devices.forEach((d, i) => {
    const w = i % nLun;
    deviceRoute.set(d.name, { lunWorker: w, luIndex: lunDevices[w].length });
    lunDevices[w].push(d);
  });

  // ---- portals: one fabric port worker per distinct host:port ----
  const portalKey = (h: string, p: number) => `${h}|${p}`;
  const portals: PortalRoute[] = [];
  const portalIndex = new Map<string, number>();
  for (const t of config.targets) {
    for (const p of t.portals) {
      const k = portalKey(p.host, p.port);
      if (!portalIndex.has(k)) {
        portalIndex.set(k, portals.length);
        // Each portal is its own target portal group for now (tag = index + 1).
        portals.push({ host: p.host, port: p.port, tag: portals.length + 1 });
      }
    }
  }
  const lunRoutes = (luns: Readonly<Record<number, string>>): [number, LunRoute][] =>
    Object.entries(luns).map(([lun, dev]): [number, LunRoute] => {
      const r = deviceRoute.get(dev)!;
      return [Number(lun), { lunWorker: r.lunWorker, luIndex: r.luIndex, device: dev }];
    });
  const routes: RoutesWire = {
    portals,
    targets: config.targets.map((t) => ({
      iqn: t.iqn,
      alias: t.alias,
      auth: t.auth,
      luns: lunRoutes(t.luns),
      portals: t.portals.map((p) => portalIndex.get(portalKey(p.host, p.port))!),
      // LUN masking (routes.ts routeFor): per-entry LUN maps, resolved like `luns`.
      ...(t.acls === undefined
        ? {}
        : {
            acls: t.acls.map((a) => ({
              initiators: [...a.initiators],
              luns: lunRoutes(a.luns),
              ...(a.auth === undefined ? {} : { auth: a.auth }),
            })),
          }),
      ...(t.defaultAccess === undefined ? {} : { defaultAccess: t.defaultAccess }),
    })),
  };

  // ---- ALUA (SPC-4 5.16): each portal is one target port and its own target port group,
  // both numbered by the portal's tag (as connection.ts registers nexuses). A device's
  // groups are the portals of every target that maps it (in `luns` or an ACL entry).
  const deviceGroups: Record<string, number[]> = {};
  for (const t of config.targets) {
    const tags = t.portals.map((p) => portals[portalIndex.get(portalKey(p.host, p.port))!].tag);
    const devices = new Set([...Object.values(t.luns), ...(t.acls ?? []).flatMap((a) => Object.values(a.luns))]);
    for (const dev of devices) {
      const groups = (deviceGroups[dev] ??= []);
      for (const tag of tags) if (!groups.includes(tag)) groups.push(tag);
    }
  }
  const alua: AluaWire = {
    implicitTransitionSec: ALUA_IMPLICIT_TRANSITION_SEC,
    groups: portals.map((p) => ({ id: p.tag, relativeTargetPortIds: [p.tag] })),
    deviceGroups,
  };

  // ---- data plane ----
  const lunDoorbells = Array.from({ length: nLun }, () => new Doorbell());
  const sessionDoorbells = Array.from({ length: nSession }, () => new Doorbell());
  const slabSize = slabBytes(config);
  const slabs = Array.from({ length: nSession }, () => new SharedArrayBuffer(slabSize));
  const sessionCounts = new SharedArrayBuffer(4 * Math.max(1, config.targets.length));
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
    const lunWorkers = lunDevices.map((devices, l) => {
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
    }
    opts.onReady?.({ stop: () => stop(0) });
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
