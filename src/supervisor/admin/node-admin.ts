/**
 * The node behind the admin API: what each endpoint reads or does, over the supervisor
 * (its configuration, topology, worker threads, cluster membership) and the counters in
 * shared memory. server.ts only maps HTTP to this (AdminHost), so the API can be tested
 * against a fake host and this against a real node.
 *
 * Worker data (units, connections) comes from control requests with a short timeout:
 * a worker that does not answer leaves its part out (and readiness says why) rather
 * than hanging the request.
 */
import type { SpindleConfig } from '../../shared/config-types.ts';
import { errorMessage } from '../../shared/control/errors.ts';
import { SpscRing } from '../../shared/ring/spsc-ring.ts';
import { AluaState, type AluaStateValue } from '../../shared/scsi/alua.ts';
import { ALUA_STATE_TEXT, type AluaStateText, type ConnectionInfo, type UnitInfo } from '../../shared/wire/admin-info.ts';
import type { Supervisor } from '../supervisor.ts';
import { displayPortal } from '../config/portals.ts';
import { RING_CAPACITY } from '../data-plane.ts';
import { AdminState } from '../cluster/cluster-node.ts';
import { MetricsExporter, heartbeatFresh, type ExporterSource } from '../metrics/exporter.ts';
import type { ReloadReport } from '../reload-report.ts';
import { ApiError, ApiErrorCode, badRequest, notFound } from './errors.ts';
import { ConnectionRates } from './rates.ts';
import type {
  ClusterView,
  HealthView,
  LunView,
  OperationView,
  PortGroupView,
  ReadinessCheck,
  ReadinessView,
  SessionView,
  StatusView,
  TargetView,
} from './views.ts';

/** What the HTTP layer (server.ts) asks of the node. */
export interface AdminHost {
  health(): HealthView;
  readiness(): ReadinessView;
  status(): Promise<StatusView>;
  targets(): Promise<TargetView[]>;
  luns(): Promise<LunView[]>;
  sessions(): Promise<SessionView[]>;
  portGroups(): PortGroupView[];
  reload(): Promise<ReloadReport>;
  /** False when no session with this TSIH lives on the node. */
  logoutSession(tsih: number, time2WaitSec: number): Promise<boolean>;
  closeSession(tsih: number, reason: string): Promise<boolean>;
  setPortGroupState(group: number, state: AluaStateText): Promise<PortGroupView>;
  metrics(): Promise<string>;
  readonly metricsContentType: string;
  close(): void;
}

/** How long the API waits for a worker's answer. */
const WORKER_REQUEST_MS = 5000;

const STATE_CODES: Readonly<Record<AluaStateText, AluaStateValue>> = {
  'active-optimized': AluaState.ACTIVE_OPTIMIZED,
  'active-non-optimized': AluaState.ACTIVE_NON_OPTIMIZED,
  standby: AluaState.STANDBY,
  unavailable: AluaState.UNAVAILABLE,
  transitioning: AluaState.TRANSITIONING,
};

function stateText(code: number): AluaStateText {
  return ALUA_STATE_TEXT[code] ?? 'unavailable';
}

export class NodeAdmin implements AdminHost {
  readonly #s: Supervisor;
  readonly #version: string;
  readonly #startedAt = Date.now();
  readonly #exporter: MetricsExporter;
  readonly #rates: ConnectionRates;

  constructor(supervisor: Supervisor, opts: { version: string; processMetrics?: boolean }) {
    this.#s = supervisor;
    this.#version = opts.version;
    this.#exporter = new MetricsExporter(this.#exporterSource(), opts.processMetrics === false ? { processMetrics: false } : {});
    this.#rates = new ConnectionRates(supervisor.metrics.sessionViews);
  }

  close(): void {
    this.#rates.close();
  }

  get #config(): SpindleConfig {
    return this.#s.config;
  }

  // ---- health and readiness ----

  health(): HealthView {
    return { status: 'ok', node: this.#config.nodeId, version: this.#version, uptimeSec: Math.round((Date.now() - this.#startedAt) / 1000) };
  }

  readiness(): ReadinessView {
    const s = this.#s;
    const checks: ReadinessCheck[] = [];
    checks.push({ name: 'started', ok: s.serving, detail: s.stopping ? 'shutting down' : s.serving ? 'every worker started' : 'starting' });
    const portals = s.handles.portal;
    const down = s.topology.portals.filter((_p, i) => portals[i]?.alive !== true).map(displayPortal);
    checks.push({
      name: 'portals',
      ok: s.serving && down.length === 0,
      detail: down.length === 0 ? `listening on ${s.topology.portals.map(displayPortal).join(', ')}` : `not listening on ${down.join(', ')}`,
    });
    const stale = this.#workerStates().filter((w) => !w.ok).map((w) => w.name);
    checks.push({ name: 'workers', ok: s.serving && stale.length === 0, detail: stale.length === 0 ? 'every worker alive' : `not alive or not responding: ${stale.join(', ')}` });
    const c = s.cluster;
    if (c !== null) {
      checks.push({
        name: 'lease',
        ok: c.serving,
        detail: c.serving ? 'lease held, in sync with the cluster' : c.members.holding ? 'resynchronizing with the cluster' : 'lease not held (Redis unreachable or the node fenced)',
      });
      const admin = c.admin(c.node);
      // A drained node is healthy but must not count as an available path: a rolling
      // update waits here until an operator undrains it (README "Upgrading a node").
      checks.push({ name: 'admin', ok: admin === AdminState.ACTIVE, detail: `node ${c.node} is ${admin}` });
    }
    return { ready: checks.every((k) => k.ok), checks };
  }

  #workerStates(): { name: string; ok: boolean }[] {
    const s = this.#s;
    const now = Date.now();
    return [...s.handles.lun, ...s.handles.session, ...s.handles.portal].map((h) => ({
      name: h.name,
      ok: h.alive && heartbeatFresh(s.lastBeatMs(h.name), now, s.hangTimeoutMs),
    }));
  }

  // ---- what the node serves ----

  async status(): Promise<StatusView> {
    const [luns, sessions] = await Promise.all([this.luns(), this.sessions()]);
    const r = this.readiness();
    const config = this.#config;
    const operations: OperationView[] = [];
    for (const l of luns) {
      for (const op of l.operations) {
        operations.push(
          op.kind === 'sanitize'
            ? { device: l.name, kind: 'sanitize', state: op.state, progress: op.progress, detail: `${op.doneBlocks}/${op.totalBlocks} blocks` }
            : { device: l.name, kind: 'extended-copy', state: 'running', progress: null, detail: `${op.segmentsProcessed} segments, ${op.bytesTransferred} bytes` },
        );
      }
    }
    const h = this.#s.handles;
    return {
      node: config.nodeId,
      clusterId: config.clusterId,
      version: this.#version,
      uptimeSec: Math.round((Date.now() - this.#startedAt) / 1000),
      ready: r.ready,
      checks: r.checks,
      portals: this.#s.topology.portals.map(displayPortal),
      workers: { lun: h.lun.length, session: h.session.length, portal: h.portal.length },
      counts: {
        targets: config.targets.length,
        luns: config.devices.length,
        sessions: sessions.filter((x) => x.phase === 'full-feature' && x.sessionType === 'Normal').length,
        connections: sessions.length,
      },
      operations,
      cluster: this.#clusterView(),
    };
  }

  #clusterView(): ClusterView | null {
    const c = this.#s.cluster;
    if (c === null) return null;
    const table = c.aluaTable();
    return {
      serving: c.serving,
      leaseHeld: c.members.holding,
      leaseRemainingMs: Math.round(c.members.remainingMs),
      redisRttMs: c.members.lastRoundTripMs,
      epochLost: c.epochLost,
      admin: c.admin(c.node),
      nodes: table.map((t) => ({
        node: t.node,
        live: t.node === c.node ? c.members.holding : (c.members.peer(t.node)?.live ?? false),
        admin: c.admin(t.node),
        group: t.group,
        state: stateText(t.state),
      })),
    };
  }

  async targets(): Promise<TargetView[]> {
    const sessions = await this.#connections();
    return this.#config.targets.map((t) => ({
      iqn: t.iqn,
      alias: t.alias ?? null,
      portals: t.portals.map(displayPortal),
      luns: lunList(t.luns),
      auth: { chap: t.auth?.chap !== undefined, mutualChap: t.auth?.mutualChap !== undefined },
      acls: (t.acls ?? []).map((a) => ({ initiators: [...a.initiators], luns: lunList(a.luns), chap: a.auth?.chap !== undefined })),
      defaultAccess: t.defaultAccess ?? (t.acls === undefined ? 'allow' : 'deny'),
      sessions: sessions.filter((c) => c.phase === 'full-feature' && c.targetName === t.iqn).length,
    }));
  }

  async luns(): Promise<LunView[]> {
    const s = this.#s;
    const answers = await Promise.all(
      s.handles.lun.map((h) =>
        h.alive
          ? h.control.request('units', {}, WORKER_REQUEST_MS).then(
              (r) => r.units,
              () => [] as UnitInfo[],
            )
          : ([] as UnitInfo[]),
      ),
    );
    const units = new Map(answers.flat().map((u) => [u.name, u]));
    const config = this.#config;
    const out: LunView[] = [];
    for (const d of config.devices) {
      const u = units.get(d.name);
      if (u === undefined) continue; // its worker did not answer (readiness shows it)
      const exportsOf: LunView['exports'] = [];
      for (const t of config.targets) {
        for (const [lun, dev] of Object.entries(t.luns)) if (dev === d.name) exportsOf.push({ target: t.iqn, lun: Number(lun), acl: false });
        for (const a of t.acls ?? []) for (const [lun, dev] of Object.entries(a.luns)) if (dev === d.name) exportsOf.push({ target: t.iqn, lun: Number(lun), acl: true });
      }
      const place = s.topology.device(d.name);
      const c = place === undefined ? undefined : s.metrics.lunViews[place.lunWorker]?.lu(place.luIndex);
      out.push({
        ...u,
        exports: exportsOf,
        counters:
          c === undefined
            ? null
            : {
                reads: c.reads,
                writes: c.writes,
                otherCommands: c.others,
                readBytes: c.readBytes,
                writeBytes: c.writeBytes,
                queueDepth: Math.max(0, c.arrived - c.completed),
                taskSetFull: c.taskSetFull,
                busy: c.busy,
                checkCondition: c.checkCondition,
                reservationConflict: c.reservationConflict,
              },
      });
    }
    return out;
  }

  /** Every connection of every session worker that answers. */
  async #connections(): Promise<ConnectionInfo[]> {
    const answers = await Promise.all(
      this.#s.handles.session.map((h) =>
        h.alive
          ? h.control.request('sessions', {}, WORKER_REQUEST_MS).then(
              (r) => r.connections,
              () => [] as ConnectionInfo[],
            )
          : ([] as ConnectionInfo[]),
      ),
    );
    return answers.flat();
  }

  async sessions(): Promise<SessionView[]> {
    const views = this.#s.metrics.sessionViews;
    const list = await this.#connections();
    return list.map((c) => {
      const k = c.slot > 0 ? views[c.worker]?.connection(c.slot) : undefined;
      const mine = k !== undefined && k.inUse && k.generation === c.generation;
      return {
        ...c,
        id: c.tsih === 0 ? '' : String(c.tsih),
        counters: mine ? { commands: k.commands, dataInBytes: k.dataInBytes, dataOutBytes: k.dataOutBytes, rejects: k.rejects, digestErrors: k.digestErrors } : null,
        rates: mine ? this.#rates.rates(c.worker, c.slot, c.generation) : null,
      };
    });
  }

  portGroups(): PortGroupView[] {
    const s = this.#s;
    const config = this.#config;
    const c = s.cluster;
    if (c !== null) {
      return c.aluaTable().map((t) => ({
        group: t.group,
        node: t.node,
        portals: (config.cluster?.nodes.find((n) => n.id === t.node)?.portals ?? []).map(displayPortal),
        state: stateText(t.state),
      }));
    }
    return s.topology.aluaStates(config).map((g) => ({
      group: g.group,
      node: config.nodeId,
      portals: s.topology.portals.filter((p) => p.tag === g.group).map(displayPortal),
      state: stateText(g.state),
    }));
  }

  // ---- actions ----

  reload(): Promise<ReloadReport> {
    return this.#s.reloadWithReport();
  }

  async logoutSession(tsih: number, time2WaitSec: number): Promise<boolean> {
    const found = await Promise.all(
      this.#s.handles.session.filter((h) => h.alive).map((h) => h.control.request('logoutSession', { tsih, time2WaitSec }, WORKER_REQUEST_MS).then((r) => r.found, () => false)),
    );
    return found.some((f) => f);
  }

  async closeSession(tsih: number, reason: string): Promise<boolean> {
    const found = await Promise.all(
      this.#s.handles.session.filter((h) => h.alive).map((h) => h.control.request('closeSession', { tsih, reason }, WORKER_REQUEST_MS).then((r) => r.found, () => false)),
    );
    return found.some((f) => f);
  }

  async setPortGroupState(group: number, state: AluaStateText): Promise<PortGroupView> {
    const code = STATE_CODES[state];
    if (code === undefined) throw badRequest('state', `unknown state "${state}" (expected ${Object.keys(STATE_CODES).join(', ')})`);
    if (!this.portGroups().some((g) => g.group === group)) throw notFound('group', `no target port group ${group} (see GET /api/v1/port-groups)`);
    if (this.#s.cluster !== null && code === AluaState.TRANSITIONING) {
      throw badRequest('state', 'transitioning is a state the cluster sets itself (node drain); it cannot be set explicitly (SPC-4 6.44)');
    }
    try {
      await this.#s.setAluaState(group, code);
    } catch (err) {
      if (err instanceof RangeError) throw badRequest('state', err.message);
      throw new ApiError(503, ApiErrorCode.UNAVAILABLE, `the state could not be changed: ${errorMessage(err)}`);
    }
    return this.portGroups().find((g) => g.group === group)!;
  }

  // ---- metrics ----

  metrics(): Promise<string> {
    return this.#exporter.scrape();
  }

  get metricsContentType(): string {
    return this.#exporter.contentType;
  }

  #exporterSource(): ExporterSource {
    const s = this.#s;
    return {
      version: this.#version,
      node: this.#config.nodeId,
      clusterId: this.#config.clusterId,
      ready: () => this.readiness().ready,
      reloads: () => s.reloadCounts,
      workerRestarts: () => s.workerRestarts,
      heartbeatStaleMs: s.hangTimeoutMs,
      workers: () =>
        (['lun', 'session', 'portal'] as const).flatMap((kind) =>
          s.handles[kind].map((h, i) => ({ kind, index: i, alive: h.alive, heartbeatMs: s.lastBeatMs(h.name) })),
        ),
      devices: () =>
        this.#config.devices.flatMap((d) => {
          const place = s.topology.device(d.name);
          return place === undefined ? [] : [{ name: d.name, lunWorker: place.lunWorker, luIndex: place.luIndex, sizeBytes: 'size' in d.backing && typeof d.backing.size === 'number' ? d.backing.size : 0 }];
        }),
      lunCounters: s.metrics.lunViews,
      sessionCounters: s.metrics.sessionViews,
      rings: () => {
        const out: { sessionWorker: number; lunWorker: number; command: number; completion: number }[] = [];
        for (let l = 0; l < s.dataPlane.lunWorkers; l++) {
          s.dataPlane.sessionLinks(l).forEach((link, w) => out.push({ sessionWorker: w, lunWorker: l, command: SpscRing.fillOf(link.cmdRing), completion: SpscRing.fillOf(link.cplRing) }));
        }
        return out;
      },
      ringCapacity: RING_CAPACITY,
      connections: () => this.#connections(),
      portGroups: () => this.portGroups().map((g) => ({ group: g.group, state: STATE_CODES[g.state] })),
      cluster: () => {
        const c = s.cluster;
        if (c === null) return null;
        const nodes = this.#config.cluster?.nodes.map((n) => n.id) ?? [];
        return {
          holding: c.members.holding,
          serving: c.serving,
          remainingMs: c.members.remainingMs,
          rttMs: c.members.lastRoundTripMs,
          epochLost: c.epochLost,
          unreplicated: c.prs.unreplicated,
          peers: nodes.filter((n) => n !== c.node).map((n) => ({ node: n, live: c.members.peer(n)?.live ?? false })),
          admin: nodes.map((n) => ({ node: n, state: c.admin(n) })),
        };
      },
    };
  }
}

function lunList(luns: Readonly<Record<number, string>>): { lun: number; device: string }[] {
  return Object.entries(luns)
    .map(([lun, device]) => ({ lun: Number(lun), device }))
    .sort((a, b) => a.lun - b.lun);
}
