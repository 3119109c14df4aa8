/**
 * The Prometheus exporter of one node (`GET /metrics` on the admin API).
 *
 * Nothing here is on the I/O path. Workers count events in shared memory as they happen
 * (shared/metrics/: plain increments, no message per command); a scrape reads those
 * buffers, the ring indexes and the supervisor's own state, and formats them with
 * prom-client. Per connection series need to know who holds each counter slot, which
 * only the session workers know: one `sessions` control request per worker per scrape,
 * bounded by a short timeout (a stuck worker costs its connections' series, never the
 * scrape).
 *
 * Every metric is declared once in METRICS (name, type, labels, help): the README's list
 * is checked against it (test/unit/metrics/exporter.test.ts).
 */
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { LATENCY_BOUNDS_S } from '../../shared/metrics/latency.ts';
import { OP_CLASS_NAMES, type LunCountersView } from '../../shared/metrics/lun-counters.ts';
import { REJECT_REASON_NAMES, SessionField, type SessionCountersView } from '../../shared/metrics/session-counters.ts';
import { ALUA_STATE_TEXT, type ConnectionInfo } from '../../shared/wire/admin-info.ts';
import type { ReloadOutcome } from '../reload-report.ts';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDef {
  readonly type: MetricType;
  readonly labels: readonly string[];
  readonly help: string;
}

/** Every metric this exporter produces (besides prom-client's process_* and nodejs_* ones). */
export const METRICS = {
  spindle_info: { type: 'gauge', labels: ['version', 'node', 'cluster_id'], help: 'Always 1; the labels say which node and version this is.' },
  spindle_ready: { type: 'gauge', labels: [], help: '1 when the node is ready (portals bound, workers alive, in a cluster the lease held and the node active).' },
  spindle_config_reloads_total: { type: 'counter', labels: ['outcome'], help: 'Configuration reloads (SIGHUP or the admin API) by outcome: applied, unchanged, refused, failed.' },
  spindle_worker_up: { type: 'gauge', labels: ['kind', 'worker'], help: '1 while the worker thread runs and its heartbeat is fresh.' },
  spindle_worker_heartbeat_age_seconds: { type: 'gauge', labels: ['kind', 'worker'], help: 'Seconds since the watchdog last saw the worker heartbeat move (under 1 s while healthy).' },
  spindle_worker_restarts_total: { type: 'counter', labels: ['kind'], help: 'Worker threads restarted after a crash (a crash stops the target today, so 0).' },
  spindle_lu_reads_total: { type: 'counter', labels: ['device'], help: 'READ commands completed by the logical unit.' },
  spindle_lu_inline_reads_total: {
    type: 'counter',
    labels: ['device'],
    help: 'Of those READs, the ones a session worker served itself (a RAM disk, or a file through the page cache), with no hop to the LUN worker.',
  },
  spindle_lu_inline_writes_total: {
    type: 'counter',
    labels: ['device'],
    help: 'Of the WRITEs, the ones a session worker served itself (a RAM disk, or a file through the page cache), with no hop to the LUN worker.',
  },
  spindle_lu_writes_total: { type: 'counter', labels: ['device'], help: 'WRITE commands completed by the logical unit.' },
  spindle_lu_other_commands_total: { type: 'counter', labels: ['device'], help: 'Commands other than READ and WRITE completed by the logical unit.' },
  spindle_lu_read_bytes_total: { type: 'counter', labels: ['device'], help: 'Bytes read with GOOD status.' },
  spindle_lu_write_bytes_total: { type: 'counter', labels: ['device'], help: 'Bytes written with GOOD status.' },
  spindle_lu_command_status_total: {
    type: 'counter',
    labels: ['device', 'status'],
    help: 'Commands completed with a status other than GOOD: check-condition, task-set-full, busy, reservation-conflict, aborted.',
  },
  spindle_lu_queue_depth: { type: 'gauge', labels: ['device'], help: 'Commands the logical unit holds now (executing or waiting in its task set).' },
  spindle_lu_latency_seconds: { type: 'histogram', labels: ['device', 'op'], help: 'Command latency in the LUN worker, from the ring to the completion, by op: read, write, other.' },
  spindle_lu_size_bytes: { type: 'gauge', labels: ['device'], help: 'Configured capacity of the logical unit.' },
  spindle_lun_worker_inflight: { type: 'gauge', labels: ['worker'], help: 'Commands a LUN worker holds.' },
  spindle_iscsi_connections: { type: 'gauge', labels: ['worker'], help: 'iSCSI connections on a session worker (login phase included).' },
  spindle_iscsi_connections_accepted_total: { type: 'counter', labels: [], help: 'iSCSI connections accepted.' },
  spindle_iscsi_logins_total: { type: 'counter', labels: [], help: 'Logins that reached full feature phase.' },
  spindle_iscsi_login_failures_total: { type: 'counter', labels: ['reason'], help: 'Failed logins by Login Response status (RFC 7143 11.13.5), or timeout.' },
  spindle_iscsi_rejects_total: { type: 'counter', labels: ['reason'], help: 'Reject PDUs sent, by reason (RFC 7143 11.17.1).' },
  spindle_iscsi_digest_errors_total: { type: 'counter', labels: ['kind'], help: 'Header and data digest (CRC32C) errors.' },
  spindle_session_tasks: { type: 'gauge', labels: ['worker'], help: 'Task objects in use on a session worker.' },
  spindle_slab_bytes_in_use: { type: 'gauge', labels: ['worker'], help: 'Bytes of a session worker\'s data slab allocated to commands.' },
  spindle_slab_bytes: { type: 'gauge', labels: ['worker'], help: 'Size of a session worker\'s data slab.' },
  spindle_ring_occupancy: { type: 'gauge', labels: ['session_worker', 'lun_worker', 'ring'], help: 'Descriptors waiting on a ring (command: session to LUN worker; completion: back).' },
  spindle_ring_capacity: { type: 'gauge', labels: [], help: 'Descriptors one ring holds.' },
  spindle_session_commands_total: { type: 'counter', labels: ['initiator', 'isid', 'target', 'tsih'], help: 'SCSI commands answered on the session.' },
  spindle_session_data_in_bytes_total: { type: 'counter', labels: ['initiator', 'isid', 'target', 'tsih'], help: 'Bytes sent to the initiator in Data-In.' },
  spindle_session_data_out_bytes_total: { type: 'counter', labels: ['initiator', 'isid', 'target', 'tsih'], help: 'Bytes received from the initiator (immediate data and Data-Out).' },
  spindle_session_rejects_total: { type: 'counter', labels: ['initiator', 'isid', 'target', 'tsih'], help: 'Reject PDUs sent on the session.' },
  spindle_session_digest_errors_total: { type: 'counter', labels: ['initiator', 'isid', 'target', 'tsih'], help: 'Digest errors on the session.' },
  spindle_session_commands_in_flight: { type: 'gauge', labels: ['initiator', 'isid', 'target', 'tsih'], help: 'Commands received on the session and not yet answered.' },
  spindle_port_group_state: { type: 'gauge', labels: ['group', 'state'], help: '1 for the asymmetric access state each target port group is in.' },
  spindle_cluster_lease_held: { type: 'gauge', labels: [], help: 'Cluster mode: 1 while this node holds its lease.' },
  spindle_cluster_serving: { type: 'gauge', labels: [], help: 'Cluster mode: 1 while this node holds its lease and is in sync (it may serve I/O).' },
  spindle_cluster_lease_remaining_seconds: { type: 'gauge', labels: [], help: 'Cluster mode: lease time left by this node\'s clock.' },
  spindle_cluster_redis_rtt_seconds: { type: 'gauge', labels: [], help: 'Cluster mode: Redis round-trip time of the last lease renewal.' },
  spindle_cluster_epoch_lost: { type: 'gauge', labels: [], help: 'Cluster mode: 1 when Redis lost the cluster state (PR OUT refused until spindle cluster recover).' },
  spindle_cluster_pr_unreplicated_total: { type: 'counter', labels: [], help: 'Cluster mode: reservation changes reported although fewer Redis replicas than cluster.redis.waitReplicas confirmed them in time.' },
  spindle_cluster_peer_live: { type: 'gauge', labels: ['node'], help: 'Cluster mode: 1 while a peer node\'s lease is live.' },
  spindle_cluster_admin_state: { type: 'gauge', labels: ['node', 'state'], help: 'Cluster mode: 1 for each node\'s operator state (active, draining, drained, fenced).' },
} as const satisfies Record<string, MetricDef>;

export type MetricName = keyof typeof METRICS;

type Labels = Record<string, string>;
interface Sample {
  readonly value: number;
  readonly labels: Labels;
  /** For histogram parts: name_bucket, name_sum, name_count. */
  readonly metricName?: string;
}

/**
 * Is a worker's heartbeat fresh: seen (`lastMs` > 0, Date.now() when the watchdog last
 * saw it move) and no older than `staleMs` at `nowMs`? The one judgement behind both
 * spindle_worker_up and the admin API's readiness.
 */
export function heartbeatFresh(lastMs: number, nowMs: number, staleMs: number): boolean {
  return lastMs > 0 && nowMs - lastMs < staleMs;
}

/** What the exporter reads; the supervisor provides it (admin/node-admin.ts). */
export interface ExporterSource {
  readonly version: string;
  readonly node: string;
  readonly clusterId: string;
  ready(): boolean;
  reloads(): Readonly<Record<ReloadOutcome, number>>;
  workerRestarts(): Readonly<Record<'lun' | 'session' | 'portal', number>>;
  /** Every worker thread: kind, index, running, and when its heartbeat last moved (ms since the epoch; 0: not yet). */
  workers(): { kind: 'lun' | 'session' | 'portal'; index: number; alive: boolean; heartbeatMs: number }[];
  /** A heartbeat older than this means the worker's event loop is stuck (the watchdog's hang timeout). */
  readonly heartbeatStaleMs: number;
  /** Device name -> where its counters are, and its configured size. */
  devices(): { name: string; lunWorker: number; luIndex: number; sizeBytes: number }[];
  readonly lunCounters: readonly LunCountersView[];
  readonly sessionCounters: readonly SessionCountersView[];
  /** Fill level of every ring pair. */
  rings(): { sessionWorker: number; lunWorker: number; command: number; completion: number }[];
  readonly ringCapacity: number;
  /** Every connection (for per-session labels), fetched once per scrape. */
  connections(): Promise<ConnectionInfo[]>;
  portGroups(): { group: number; state: number }[];
  cluster():
    | {
        holding: boolean;
        serving: boolean;
        remainingMs: number;
        rttMs: number;
        epochLost: boolean;
        /** Reservation changes reported without the replicas' confirmation (pr-store.ts). */
        unreplicated: number;
        peers: { node: string; live: boolean }[];
        admin: { node: string; state: string }[];
      }
    | null;
}

const CLUSTER_METRICS = new Set<string>(Object.keys(METRICS).filter((n) => n.startsWith('spindle_cluster_')));

/** A metric whose values are read from somewhere at scrape time. */
class SampledMetric {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly aggregator = 'sum';
  readonly #collect: () => Sample[];

  constructor(name: string, def: MetricDef, collect: () => Sample[]) {
    this.name = name;
    this.help = def.help;
    this.type = def.type;
    this.#collect = collect;
  }

  get(): Promise<{ name: string; help: string; type: MetricType; aggregator: string; values: Sample[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.#collect() });
  }

  reset(): void {}
}

/** Prometheus `le` bucket samples (cumulative) plus _sum and _count from raw bucket counts. */
function histogram(name: string, labels: Labels, buckets: readonly number[], sumS: number): Sample[] {
  const out: Sample[] = [];
  let total = 0;
  for (let i = 0; i < buckets.length; i++) {
    total += buckets[i]!;
    const le = i < LATENCY_BOUNDS_S.length ? String(LATENCY_BOUNDS_S[i]) : '+Inf';
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: total });
  }
  out.push({ metricName: `${name}_sum`, labels, value: sumS });
  out.push({ metricName: `${name}_count`, labels, value: total });
  return out;
}


export class MetricsExporter {
  readonly registry = new Registry();
  readonly #src: ExporterSource;
  /** The connections of the scrape in progress. */
  #connections: ConnectionInfo[] = [];

  constructor(src: ExporterSource, opts: { processMetrics?: boolean } = {}) {
    this.#src = src;
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    const collectors: Record<MetricName, () => Sample[]> = {
      spindle_info: () => [{ value: 1, labels: { version: src.version, node: src.node, cluster_id: src.clusterId } }],
      spindle_ready: () => [{ value: src.ready() ? 1 : 0, labels: {} }],
      spindle_config_reloads_total: () => Object.entries(src.reloads()).map(([outcome, n]) => ({ value: n, labels: { outcome } })),
      spindle_worker_up: () => this.#workers((w, now) => (w.alive && heartbeatFresh(w.heartbeatMs, now, src.heartbeatStaleMs) ? 1 : 0)),
      spindle_worker_heartbeat_age_seconds: () =>
        this.#workers((w, now) => (w.heartbeatMs > 0 ? (now - w.heartbeatMs) / 1000 : -1)).filter((s) => s.value >= 0),
      spindle_worker_restarts_total: () => Object.entries(src.workerRestarts()).map(([kind, n]) => ({ value: n, labels: { kind } })),
      spindle_lu_reads_total: () => this.#perLu((s) => s.reads),
      spindle_lu_inline_reads_total: () => this.#perLu((s) => s.inlineReads),
      spindle_lu_inline_writes_total: () => this.#perLu((s) => s.inlineWrites),
      spindle_lu_writes_total: () => this.#perLu((s) => s.writes),
      spindle_lu_other_commands_total: () => this.#perLu((s) => s.others),
      spindle_lu_read_bytes_total: () => this.#perLu((s) => s.readBytes),
      spindle_lu_write_bytes_total: () => this.#perLu((s) => s.writeBytes),
      spindle_lu_command_status_total: () => this.#luStatuses(),
      spindle_lu_queue_depth: () => this.#perLu((s) => Math.max(0, s.arrived - s.completed)),
      spindle_lu_latency_seconds: () => this.#latency(),
      spindle_lu_size_bytes: () => src.devices().map((d) => ({ value: d.sizeBytes, labels: { device: d.name } })),
      spindle_lun_worker_inflight: () => src.lunCounters.map((v, i) => ({ value: v.inflight, labels: { worker: String(i) } })),
      spindle_iscsi_connections: () => this.#perSessionWorker(SessionField.CONNECTIONS),
      spindle_iscsi_connections_accepted_total: () => [{ value: this.#sumSessionField(SessionField.CONNECTIONS_ACCEPTED), labels: {} }],
      spindle_iscsi_logins_total: () => [{ value: this.#sumSessionField(SessionField.LOGINS_OK), labels: {} }],
      spindle_iscsi_login_failures_total: () => this.#loginFailures(),
      spindle_iscsi_rejects_total: () => this.#rejects(),
      spindle_iscsi_digest_errors_total: () => [
        { value: this.#sumSessionField(SessionField.HEADER_DIGEST_ERRORS), labels: { kind: 'header' } },
        { value: this.#sumSessionField(SessionField.DATA_DIGEST_ERRORS), labels: { kind: 'data' } },
      ],
      spindle_session_tasks: () => this.#perSessionWorker(SessionField.TASKS),
      spindle_slab_bytes_in_use: () => this.#perSessionWorker(SessionField.SLAB_IN_USE),
      spindle_slab_bytes: () => this.#perSessionWorker(SessionField.SLAB_BYTES),
      spindle_ring_occupancy: () =>
        src.rings().flatMap((r) => [
          { value: r.command, labels: { session_worker: String(r.sessionWorker), lun_worker: String(r.lunWorker), ring: 'command' } },
          { value: r.completion, labels: { session_worker: String(r.sessionWorker), lun_worker: String(r.lunWorker), ring: 'completion' } },
        ]),
      spindle_ring_capacity: () => [{ value: src.ringCapacity, labels: {} }],
      spindle_session_commands_total: () => this.#perConnection((c) => c.commands),
      spindle_session_data_in_bytes_total: () => this.#perConnection((c) => c.dataInBytes),
      spindle_session_data_out_bytes_total: () => this.#perConnection((c) => c.dataOutBytes),
      spindle_session_rejects_total: () => this.#perConnection((c) => c.rejects),
      spindle_session_digest_errors_total: () => this.#perConnection((c) => c.digestErrors),
      spindle_session_commands_in_flight: () => this.#perConnection((_c, info) => info.commandsInFlight),
      spindle_port_group_state: () =>
        src.portGroups().flatMap((g) =>
          Object.entries(ALUA_STATE_TEXT).map(([code, state]) => ({ value: Number(code) === g.state ? 1 : 0, labels: { group: String(g.group), state } })),
        ),
      spindle_cluster_lease_held: () => this.#cluster((c) => [{ value: c.holding ? 1 : 0, labels: {} }]),
      spindle_cluster_serving: () => this.#cluster((c) => [{ value: c.serving ? 1 : 0, labels: {} }]),
      spindle_cluster_lease_remaining_seconds: () => this.#cluster((c) => [{ value: c.remainingMs / 1000, labels: {} }]),
      spindle_cluster_redis_rtt_seconds: () => this.#cluster((c) => [{ value: c.rttMs / 1000, labels: {} }]),
      spindle_cluster_epoch_lost: () => this.#cluster((c) => [{ value: c.epochLost ? 1 : 0, labels: {} }]),
      spindle_cluster_pr_unreplicated_total: () => this.#cluster((c) => [{ value: c.unreplicated, labels: {} }]),
      spindle_cluster_peer_live: () => this.#cluster((c) => c.peers.map((p) => ({ value: p.live ? 1 : 0, labels: { node: p.node } }))),
      spindle_cluster_admin_state: () =>
        this.#cluster((c) =>
          c.admin.flatMap((a) => ['active', 'draining', 'drained', 'fenced'].map((state) => ({ value: a.state === state ? 1 : 0, labels: { node: a.node, state } }))),
        ),
    };
    const clustered = src.cluster() !== null;
    for (const [name, collect] of Object.entries(collectors)) {
      // Cluster series exist only in cluster mode (an absent series, not a misleading 0).
      if (CLUSTER_METRICS.has(name) && !clustered) continue;
      const def: MetricDef = METRICS[name as MetricName];
      this.registry.registerMetric(new SampledMetric(name, def, collect) as unknown as Metric);
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One scrape: the connections first (one request per session worker), then everything. */
  async scrape(): Promise<string> {
    this.#connections = await this.#src.connections().catch(() => []);
    try {
      return await this.registry.metrics();
    } finally {
      this.#connections = [];
    }
  }

  #workers(value: (w: ReturnType<ExporterSource['workers']>[number], now: number) => number): Sample[] {
    const now = Date.now();
    return this.#src.workers().map((w) => ({ value: value(w, now), labels: { kind: w.kind, worker: String(w.index) } }));
  }

  #perLu(value: (s: NonNullable<ReturnType<LunCountersView['lu']>>) => number): Sample[] {
    const out: Sample[] = [];
    for (const d of this.#src.devices()) {
      const s = this.#src.lunCounters[d.lunWorker]?.lu(d.luIndex);
      if (s !== undefined) out.push({ value: value(s), labels: { device: d.name } });
    }
    return out;
  }

  #luStatuses(): Sample[] {
    const out: Sample[] = [];
    for (const d of this.#src.devices()) {
      const s = this.#src.lunCounters[d.lunWorker]?.lu(d.luIndex);
      if (s === undefined) continue;
      const by: [string, number][] = [
        ['check-condition', s.checkCondition],
        ['task-set-full', s.taskSetFull],
        ['busy', s.busy],
        ['reservation-conflict', s.reservationConflict],
        ['aborted', s.aborted],
      ];
      for (const [status, value] of by) out.push({ value, labels: { device: d.name, status } });
    }
    return out;
  }

  #latency(): Sample[] {
    const out: Sample[] = [];
    for (const d of this.#src.devices()) {
      const s = this.#src.lunCounters[d.lunWorker]?.lu(d.luIndex);
      if (s === undefined) continue;
      s.latency.forEach((h, cls) => out.push(...histogram('spindle_lu_latency_seconds', { device: d.name, op: OP_CLASS_NAMES[cls]! }, h.buckets, h.sumS)));
    }
    return out;
  }

  #perSessionWorker(field: number): Sample[] {
    return this.#src.sessionCounters.map((v, i) => ({ value: v.field(field), labels: { worker: String(i) } }));
  }

  #sumSessionField(field: number): number {
    let n = 0;
    for (const v of this.#src.sessionCounters) n += v.field(field);
    return n;
  }

  #loginFailures(): Sample[] {
    const by = new Map<string, number>();
    for (const v of this.#src.sessionCounters) for (const f of v.loginFailures()) by.set(f.reason, (by.get(f.reason) ?? 0) + f.count);
    return [...by].map(([reason, value]) => ({ value, labels: { reason } }));
  }

  #rejects(): Sample[] {
    const by = new Map<string, number>();
    for (const v of this.#src.sessionCounters) {
      for (const r of v.rejects()) {
        const reason = REJECT_REASON_NAMES[r.code] ?? `code-${r.code}`;
        by.set(reason, (by.get(reason) ?? 0) + r.count);
      }
    }
    return [...by].map(([reason, value]) => ({ value, labels: { reason } }));
  }

  #perConnection(value: (c: NonNullable<ReturnType<SessionCountersView['connection']>>, info: ConnectionInfo) => number): Sample[] {
    const out: Sample[] = [];
    for (const info of this.#connections) {
      if (info.tsih === 0 || info.slot <= 0) continue;
      const c = this.#src.sessionCounters[info.worker]?.connection(info.slot);
      // The slot changed hands since the list was taken: its counters are someone else's now.
      if (c === undefined || !c.inUse || c.generation !== info.generation) continue;
      out.push({ value: value(c, info), labels: { initiator: info.initiatorName, isid: info.isid, target: info.targetName, tsih: String(info.tsih) } });
    }
    return out;
  }

  #cluster(f: (c: NonNullable<ReturnType<ExporterSource['cluster']>>) => Sample[]): Sample[] {
    const c = this.#src.cluster();
    return c === null ? [] : f(c);
  }
}
