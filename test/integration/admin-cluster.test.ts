/**
 * The admin API in cluster mode, and the drain path an upgrade takes (the Kubernetes
 * preStop hook, the systemd ExecStop): two real nodes and a real redis-server, each node
 * with its admin API on its own loopback address. `spindle node drain` (through Redis)
 * moves node a to transitioning then standby, asks its initiators to log out, lets the
 * commands in flight finish, and node a's readiness fails until `spindle node undrain`.
 * Also: readiness reflects the lease, the cluster series of /metrics, explicit ALUA states
 * set through one node's API reaching the other.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { allocateNodes, startCluster, type StartedCluster } from '../helpers/cluster.ts';
import { MAIN, REPO, freePort } from '../helpers/target.ts';
import { Initiator, Opcode, Status, TEST_UNIT_READY, read10, type Pdu, type ScsiResult } from '../helpers/initiator.ts';

let redis: RedisServer;
let c: StartedCluster;
const apiPorts: number[] = [];

function api(i: number): string {
  return `http://${c.nodes[i]!.host}:${apiPorts[i]}`;
}

async function get<T = any>(i: number, url: string): Promise<{ status: number; body: T }> {
  const r = await fetch(`${api(i)}${url}`);
  const text = await r.text();
  return { status: r.status, body: (r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T };
}

async function put<T = any>(i: number, url: string, body: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(`${api(i)}${url}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as T };
}

function cli(args: string[], timeoutMs = 90_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function metric(text: string, line: string): number | undefined {
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m === undefined ? undefined : Number(m.slice(line.length + 1));
}

beforeAll(async () => {
  redis = await startRedis({ appendonly: false });
  const nodes = await allocateNodes(2);
  for (const n of nodes) apiPorts.push(await freePort(n.host));
  c = await startCluster({ nodes, redis, args: (i) => ['--api', `${nodes[i]!.host}:${apiPorts[i]}`] });
});

afterAll(async () => {
  await c?.close();
  await redis?.close();
});

describe('admin API of cluster nodes', () => {
  it('is ready with the lease held and the node active; reports the cluster and its series', async () => {
    for (const i of [0, 1]) {
      const r = await get(i, '/api/v1/ready');
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.checks.map((k: { name: string }) => k.name)).toEqual(['started', 'portals', 'workers', 'lease', 'admin']);
    }
    const s = await get(0, '/api/v1/status');
    expect(s.body.cluster).toMatchObject({ serving: true, leaseHeld: true, admin: 'active', epochLost: false });
    expect(s.body.cluster.nodes.map((n: { node: string; live: boolean; state: string }) => [n.node, n.live, n.state])).toEqual([
      ['a', true, 'active-optimized'],
      ['b', true, 'active-optimized'],
    ]);
    const groups = await get(1, '/api/v1/port-groups');
    expect(groups.body.map((g: { node: string; portals: string[] }) => [g.node, g.portals])).toEqual([
      ['a', [`127.0.0.1:${c.nodes[0]!.port}`]],
      ['b', [`127.0.0.2:${c.nodes[1]!.port}`]],
    ]);
    const m = (await get(0, '/metrics')).body as string;
    expect(metric(m, 'spindle_cluster_lease_held')).toBe(1);
    expect(metric(m, 'spindle_cluster_serving')).toBe(1);
    expect(metric(m, 'spindle_cluster_lease_remaining_seconds')).toBeGreaterThan(0);
    expect(metric(m, 'spindle_cluster_redis_rtt_seconds')).toBeGreaterThan(0);
    expect(metric(m, 'spindle_cluster_peer_live{node="b"}')).toBe(1);
    expect(metric(m, 'spindle_cluster_admin_state{node="a",state="active"}')).toBe(1);
    // spindle status through the node's API, from the same file and --api.
    const st = await cli(['status', '--config', c.configPath, '--api', `127.0.0.2:${apiPorts[1]}`]);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/cluster: serving, lease \d+\.\ds left/);
  });

  it('sets an explicit ALUA state through one node, seen by every node; refuses transitioning', async () => {
    const groups = (await get(0, '/api/v1/port-groups')).body as { group: number; node: string }[];
    const gb = groups.find((g) => g.node === 'b')!.group;
    const r = await put(0, `/api/v1/port-groups/${gb}`, { state: 'active-non-optimized' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body).toMatchObject({ group: gb, node: 'b', state: 'active-non-optimized' });
    await until('node b to see the explicit state', async () => ((await get(1, '/api/v1/port-groups')).body as { group: number; state: string }[]).find((g) => g.group === gb)?.state === 'active-non-optimized');
    const lu = (await get(1, '/api/v1/luns')).body[0];
    expect(lu.alua).toContainEqual({ group: gb, state: 'active-non-optimized' });
    const bad = await put(0, `/api/v1/port-groups/${gb}`, { state: 'transitioning' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('state');
    expect((await put(0, `/api/v1/port-groups/${gb}`, { state: 'active-optimized' })).status).toBe(200);
  });
});

describe('draining a node (preStop / ExecStop)', () => {
  it('drain: logout requested, commands in flight finish, standby, not ready; undrain: ready again', async () => {
    const n = c.nodes[0]!;
    const ini = await Initiator.connect(n.port, n.host, 10_000);
    const seen: Pdu[] = [];
    try {
      expect((await ini.login({ targetName: c.iqn, initiatorName: 'iqn.2026-11.io.spindle:drain-host', keys: [['MaxRecvDataSegmentLength', '65536']] })).ok).toBe(true);
      for (let i = 0; i < 4 && (await ini.scsi(TEST_UNIT_READY, { edtl: 0 })).status !== Status.GOOD; i++);

      // A host reading through node a all along: every command gets an answer.
      let stop = false;
      let answered = 0;
      const results: ScsiResult[] = [];
      const reader = (async () => {
        while (!stop) {
          const r = await ini.scsi(read10(answered % 1000, 8), { read: true, edtl: 4096, rawUnitAttention: true, timeoutMs: 10_000 });
          results.push(r);
          answered++;
          seen.push(...r.pdus);
        }
      })();
      await until('reads flowing', () => Promise.resolve(answered > 20));

      const drain = await cli(['node', 'drain', 'a', '--config', c.configPath, '--wait', '60']);
      expect(drain.code, drain.stderr + drain.stdout).toBe(0);
      expect(drain.stdout).toContain('node a: drained');
      // The host keeps reading through the drained node a little longer (standby now).
      const after = answered;
      await until('reads answered in standby', () => Promise.resolve(answered > after + 3));
      stop = true;
      await reader;

      // RFC 7143 11.9.1: the node asked the initiator to log out (AsyncEvent 1).
      expect(seen.some((p) => p.opcode === Opcode.ASYNC_MESSAGE && p.bhs[36] === 1)).toBe(true);
      // Nothing was lost: each command ended GOOD or, once the group was transitioning or
      // standby, with NOT READY (04/0A, 04/0B) or the ASYMMETRIC ACCESS STATE CHANGED unit
      // attention, which multipath answers by moving to another path.
      for (const r of results) {
        if (r.status === Status.GOOD) continue;
        expect(r.status).toBe(Status.CHECK_CONDITION);
        expect([[0x02, 0x04, 0x0a], [0x02, 0x04, 0x0b], [0x06, 0x2a, 0x06]]).toContainEqual([r.sense[2]! & 0x0f, r.sense[12], r.sense[13]]);
      }
      expect(results.filter((r) => r.status === Status.GOOD).length).toBeGreaterThan(20);

      const ready = await get(0, '/api/v1/ready');
      expect(ready.status).toBe(503);
      expect(ready.body.checks.find((k: { name: string }) => k.name === 'admin')).toEqual({ name: 'admin', ok: false, detail: 'node a is drained' });
      expect((await get(1, '/api/v1/ready')).status).toBe(200);
      const groups = (await get(1, '/api/v1/port-groups')).body as { node: string; state: string }[];
      expect(groups.find((g) => g.node === 'a')?.state).toBe('standby');
      const m = (await get(0, '/metrics')).body as string;
      expect(metric(m, 'spindle_cluster_admin_state{node="a",state="drained"}')).toBe(1);
      expect(metric(m, 'spindle_ready')).toBe(0);
      const st = await cli(['status', '--config', c.configPath, '--api', `127.0.0.1:${apiPorts[0]}`]);
      expect(st.code).toBe(1);
      expect(st.stdout).toContain('admin    FAIL  node a is drained');

      const undrain = await cli(['node', 'undrain', 'a', '--config', c.configPath]);
      expect(undrain.code, undrain.stderr).toBe(0);
      await until('node a ready again', async () => (await get(0, '/api/v1/ready')).status === 200);
      const waited = await cli(['status', '--config', c.configPath, '--api', `127.0.0.1:${apiPorts[0]}`, '--wait', '30']);
      expect(waited.code, waited.stderr).toBe(0);
      expect((await get(1, '/api/v1/port-groups')).body.find((g: { node: string }) => g.node === 'a').state).toBe('active-optimized');
    } finally {
      ini.close();
    }
  });
});
