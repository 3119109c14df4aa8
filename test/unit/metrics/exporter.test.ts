/**
 * The Prometheus exporter over a fake node: what each series reads, histograms made
 * cumulative, per session series only for slots still held by the listed connection,
 * cluster series only in cluster mode, and the README's metric list matching METRICS.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { LunCounters, LunCountersView, type CountedCommand } from '../../../src/shared/metrics/lun-counters.ts';
import { SessionCounters, SessionCountersView } from '../../../src/shared/metrics/session-counters.ts';
import type { ConnectionInfo } from '../../../src/shared/wire/admin-info.ts';
import { METRICS, MetricsExporter, type ExporterSource } from '../../../src/supervisor/metrics/exporter.ts';
import { README_PATH } from '../../../src/supervisor/config/docs.ts';

function cmd(op: number, o: Partial<CountedCommand> = {}): CountedCommand {
  return { cdb: Buffer.from([op]), status: 0, dataInLength: 0, dataOutWanted: 0, expectedLength: 0, dataOutLength: 0, aborted: false, metricLu: -1, startMs: 0, ...o };
}

function connection(o: Partial<ConnectionInfo>): ConnectionInfo {
  return {
    worker: 0, slot: 1, generation: 1, tsih: 7, isid: '800000000001', initiatorName: 'iqn.i', initiatorAlias: '', targetName: 'iqn.t', sessionType: 'Normal',
    phase: 'full-feature', portal: { host: '127.0.0.1', port: 3260, group: 1 }, peer: '127.0.0.1:5000', since: 0, negotiated: {}, headerDigest: 'None',
    dataDigest: 'None', commandsInFlight: 2, expCmdSN: 1, maxCmdSN: 128, statSN: 1, ...o,
  };
}

function fixture(cluster: ReturnType<ExporterSource['cluster']> = null) {
  const lun = new LunCounters();
  const sess = new SessionCounters();
  const conns: ConnectionInfo[] = [];
  const src: ExporterSource = {
    version: '9.9.9',
    node: 'n1',
    clusterId: 'c',
    ready: () => true,
    reloads: () => ({ applied: 1, unchanged: 0, refused: 2, failed: 0 }),
    workerRestarts: () => ({ lun: 0, session: 0, portal: 0 }),
    heartbeatStaleMs: 10_000,
    workers: () => [{ kind: 'lun', index: 0, alive: true, heartbeatMs: Date.now() }, { kind: 'session', index: 0, alive: true, heartbeatMs: Date.now() - 60_000 }],
    devices: () => [{ name: 'd0', lunWorker: 0, luIndex: 2, sizeBytes: 1 << 20 }],
    lunCounters: [new LunCountersView(lun.sab)],
    sessionCounters: [new SessionCountersView(sess.sab)],
    rings: () => [{ sessionWorker: 0, lunWorker: 0, command: 3, completion: 1 }],
    ringCapacity: 1024,
    connections: () => Promise.resolve(conns),
    portGroups: () => [{ group: 1, state: 0x2 }],
    cluster: () => cluster,
  };
  return { lun, sess, conns, exporter: new MetricsExporter(src, { processMetrics: false }) };
}

function lines(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(name));
}

describe('MetricsExporter', () => {
  it('reads LU counters into counters, gauges and a cumulative histogram', async () => {
    const { lun, exporter } = fixture();
    const fast = cmd(0x28, { dataInLength: 512, expectedLength: 512 });
    lun.arrive(fast, 2, 0);
    lun.complete(fast, 0.03); // <= 50 µs
    const slow = cmd(0x28, { dataInLength: 512, expectedLength: 512 });
    lun.arrive(slow, 2, 0);
    lun.complete(slow, 2); // <= 2.5 ms
    const waiting = cmd(0x2a);
    lun.arrive(waiting, 2, 0); // still held: queue depth 1
    const text = await exporter.scrape();
    expect(text).toContain('spindle_lu_reads_total{device="d0"} 2');
    expect(text).toContain('spindle_lu_read_bytes_total{device="d0"} 1024');
    expect(text).toContain('spindle_lu_queue_depth{device="d0"} 1');
    expect(text).toContain('spindle_lu_size_bytes{device="d0"} 1048576');
    expect(text).toContain('spindle_lu_latency_seconds_bucket{device="d0",op="read",le="0.00005"} 1');
    expect(text).toContain('spindle_lu_latency_seconds_bucket{device="d0",op="read",le="0.001"} 1');
    expect(text).toContain('spindle_lu_latency_seconds_bucket{device="d0",op="read",le="0.0025"} 2');
    expect(text).toContain('spindle_lu_latency_seconds_bucket{device="d0",op="read",le="+Inf"} 2');
    expect(text).toContain('spindle_lu_latency_seconds_count{device="d0",op="read"} 2');
    const sum = /^spindle_lu_latency_seconds_sum\{device="d0",op="read"\} (\S+)$/m.exec(text);
    expect(Number(sum?.[1])).toBeCloseTo(0.00203, 12);
    expect(text).toContain('# TYPE spindle_lu_latency_seconds histogram');
    expect(text).toContain('spindle_config_reloads_total{outcome="refused"} 2');
    expect(text).toContain('spindle_ring_occupancy{session_worker="0",lun_worker="0",ring="command"} 3');
    expect(text).toContain('spindle_port_group_state{group="1",state="standby"} 1');
    expect(text).toContain('spindle_port_group_state{group="1",state="active-optimized"} 0');
    // A worker whose heartbeat is a minute old is not up.
    expect(text).toContain('spindle_worker_up{kind="lun",worker="0"} 1');
    expect(text).toContain('spindle_worker_up{kind="session",worker="0"} 0');
  });

  it('exports per session series only for slots the listed connection still holds', async () => {
    const { sess, conns, exporter } = fixture();
    const base = sess.openConnection();
    sess.commandDone(base, { read: true, write: false, edtl: 4096, dataInLength: 4096, received: 0 });
    const slot = SessionCounters.slotOf(base);
    conns.push(connection({ slot, generation: 1, tsih: 7 }));
    let text = await exporter.scrape();
    expect(text).toContain('spindle_session_commands_total{initiator="iqn.i",isid="800000000001",target="iqn.t",tsih="7"} 1');
    expect(text).toContain('spindle_session_data_in_bytes_total{initiator="iqn.i",isid="800000000001",target="iqn.t",tsih="7"} 4096');
    expect(text).toContain('spindle_session_commands_in_flight{initiator="iqn.i",isid="800000000001",target="iqn.t",tsih="7"} 2');
    // The slot changed hands after the list was taken: no series rather than someone else's numbers.
    sess.closeConnection(base);
    sess.openConnection();
    text = await exporter.scrape();
    expect(lines(text, 'spindle_session_commands_total{')).toEqual([]);
  });

  it('sums node-wide iSCSI counters over workers by reason', async () => {
    const { sess, exporter } = fixture();
    sess.loginFailed(0x02, 0x01);
    sess.loginFailed(0x02, 0x01);
    sess.reject(sess.openConnection(), 0x04);
    const text = await exporter.scrape();
    expect(text).toContain('spindle_iscsi_login_failures_total{reason="authentication-failed"} 2');
    expect(text).toContain('spindle_iscsi_rejects_total{reason="protocol-error"} 1');
    expect(text).toContain('spindle_iscsi_connections_accepted_total 1');
  });

  it('has cluster series in cluster mode only', async () => {
    expect(await fixture().exporter.scrape()).not.toContain('spindle_cluster_');
    const { exporter } = fixture({
      holding: true,
      serving: false,
      remainingMs: 2500,
      rttMs: 0.75,
      epochLost: false,
      unreplicated: 3,
      peers: [{ node: 'b', live: false }],
      admin: [
        { node: 'a', state: 'draining' },
        { node: 'b', state: 'active' },
      ],
    });
    const text = await exporter.scrape();
    expect(text).toContain('spindle_cluster_lease_held 1');
    expect(text).toContain('spindle_cluster_serving 0');
    expect(text).toContain('spindle_cluster_lease_remaining_seconds 2.5');
    expect(text).toContain('spindle_cluster_redis_rtt_seconds 0.00075');
    expect(text).toContain('spindle_cluster_pr_unreplicated_total 3');
    expect(text).toContain('spindle_cluster_peer_live{node="b"} 0');
    expect(text).toContain('spindle_cluster_admin_state{node="a",state="draining"} 1');
    expect(text).toContain('spindle_cluster_admin_state{node="a",state="active"} 0');
  });

  it('declares every metric it exports, and the README lists exactly those', async () => {
    const { exporter } = fixture({ holding: true, serving: true, remainingMs: 1, rttMs: 1, epochLost: false, unreplicated: 0, peers: [], admin: [] });
    const text = await exporter.scrape();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
    expect([...exported].sort()).toEqual(Object.keys(METRICS).sort());
    const readme = readFileSync(README_PATH, 'utf8');
    const section = readme.slice(readme.indexOf('### Metrics'), readme.indexOf('### ', readme.indexOf('### Metrics') + 4));
    const listed = new Set([...section.matchAll(/^\| `(spindle_[a-z_]+)`/gm)].map((m) => m[1]!));
    expect([...listed].sort()).toEqual(Object.keys(METRICS).sort());
  });
});
