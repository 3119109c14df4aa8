/**
 * The admin API, /metrics and the CLI over them, against a real target (startTarget) with
 * a token on loopback: every endpoint, the token refused or missing, bad input answered
 * with a 4xx naming the field (and nothing changed), metric values after known I/O
 * through the TypeScript initiator, logout and close of a live session, ALUA state
 * changes seen by the initiator, reload reports, and sanitize progress through
 * `spindle luns --wait`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MAIN, REPO, cleanup, freePort, startTarget, type StartedTarget } from '../helpers/target.ts';
import { Opcode, Status, TEST_UNIT_READY, connectAndLogin, read10, type Initiator } from '../helpers/initiator.ts';
import { metric } from '../helpers/metrics.ts';

const TOKEN = 'test-token-0123456789abcdef';
const INITIATOR = 'iqn.2026-11.io.spindle:admin-api';

let t: StartedTarget;
let apiPort: number;
let cfgPath: string;

function yaml(ctx: { port: number; iqn: string; dir: string }, extra = ''): string {
  return `
clusterId: api-test
stateDir: ${ctx.dir}/state
workers: { session: 2, lun: 2 }
api: { listen: "127.0.0.1:${apiPort}", tokenFile: ${ctx.dir}/token }
devices:
  - { name: r, ram: { size: 16MiB } }
  - { name: big, ram: { size: 256MiB } }
${extra}
targets:
  - iqn: ${ctx.iqn}
    alias: api
    portals: ['127.0.0.1:${ctx.port}']
    luns: { 0: r, 1: big }
`;
}

interface Reply<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

async function call<T = any>(method: string, url: string, o: { token?: string | null; body?: unknown; raw?: string; contentType?: string } = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = {};
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  if (o.body !== undefined || o.raw !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
  const res = await fetch(`http://127.0.0.1:${apiPort}${url}`, {
    method,
    headers,
    ...(o.raw !== undefined ? { body: o.raw } : o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body: body as T, text, headers: res.headers };
}

/**
 * The real CLI, as an operator runs it. `onOutput` sees stdout as it grows (to act while
 * the command waits).
 */
function cli(args: string[], timeoutMs = 60_000, onOutput?: (stdout: string) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      onOutput?.(stdout);
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function login(isidByte: number): Promise<Initiator> {
  const ini = await connectAndLogin(t.port, t.iqn, {
    initiatorName: INITIATOR,
    isid: Buffer.from([0x80, 0, 0, 0, 0, isidByte]),
    keys: [['MaxRecvDataSegmentLength', '65536']],
  });
  const tur = await ini.scsi(TEST_UNIT_READY, { edtl: 0 });
  expect(tur.status).toBe(Status.GOOD);
  return ini;
}

beforeAll(async () => {
  apiPort = await freePort();
  t = await startTarget({
    yaml: (ctx) => {
      writeFileSync(path.join(ctx.dir, 'token'), `${TOKEN}\n`);
      return yaml(ctx);
    },
  });
  cfgPath = path.join(t.dir, 'spindle.yaml');
});

afterAll(async () => {
  await t?.stop();
  cleanup(t);
});

describe('health, readiness and authentication', () => {
  it('answers health and readiness without the token (kubelet probes), everything else only with it', async () => {
    const h = await call('GET', '/api/v1/health', { token: null });
    expect(h.status).toBe(200);
    expect(h.body).toMatchObject({ status: 'ok', node: expect.any(String), version: expect.any(String) });
    const r = await call('GET', '/api/v1/ready', { token: null });
    expect(r.status).toBe(200);
    expect(r.body.ready).toBe(true);
    expect(r.body.checks.map((c: { name: string }) => c.name)).toEqual(['started', 'portals', 'workers']);
    for (const url of ['/api/v1/status', '/api/v1/targets', '/api/v1/luns', '/api/v1/sessions', '/api/v1/port-groups', '/metrics']) {
      const none = await call('GET', url, { token: null });
      expect(none.status, url).toBe(401);
      expect(none.body.error.code).toBe('ERR_API_UNAUTHORIZED');
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const wrong = await call('GET', url, { token: 'not-the-token-0123456789' });
      expect(wrong.status, url).toBe(401);
    }
    // An action without the token changes nothing.
    const put = await call('PUT', '/api/v1/port-groups/1', { token: null, body: { state: 'standby' } });
    expect(put.status).toBe(401);
    expect((await call('GET', '/api/v1/port-groups')).body[0].state).toBe('active-optimized');
  });

  it('serves an OpenAPI document listing every endpoint', async () => {
    const r = await call('GET', '/api/v1/openapi.json', { token: null });
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    expect(Object.keys(r.body.paths)).toEqual(
      expect.arrayContaining(['/api/v1/health', '/api/v1/ready', '/api/v1/luns/{name}', '/api/v1/sessions/{id}/logout', '/api/v1/port-groups/{group}', '/metrics']),
    );
  });

  it('answers unknown endpoints with a JSON 404', async () => {
    const r = await call('GET', '/api/v1/nothing');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('ERR_API_NOT_FOUND');
  });
});

describe('what the node serves', () => {
  it('status, targets, LUs and port groups', async () => {
    const s = await call('GET', '/api/v1/status');
    expect(s.status).toBe(200);
    expect(s.body).toMatchObject({ clusterId: 'api-test', ready: true, portals: [`127.0.0.1:${t.port}`], workers: { lun: 2, session: 2, portal: 1 }, cluster: null });
    expect(s.body.counts).toMatchObject({ targets: 1, luns: 2 });

    const targets = await call('GET', '/api/v1/targets');
    expect(targets.body).toEqual([
      expect.objectContaining({
        iqn: t.iqn,
        alias: 'api',
        portals: [`127.0.0.1:${t.port}`],
        luns: [
          { lun: 0, device: 'r' },
          { lun: 1, device: 'big' },
        ],
        auth: { chap: false, mutualChap: false },
        defaultAccess: 'allow',
      }),
    ]);
    expect(JSON.stringify(targets.body)).not.toContain(TOKEN);

    const luns = await call('GET', '/api/v1/luns');
    expect(luns.body.map((l: { name: string }) => l.name)).toEqual(['r', 'big']);
    const r = luns.body[0];
    expect(r).toMatchObject({
      name: 'r',
      sizeBytes: 16 * 1024 * 1024,
      blockSize: 512,
      blocks: 32768,
      backing: { type: 'ram' },
      readOnly: false,
      queueDepth: 128,
      exports: [{ target: t.iqn, lun: 0, acl: false }],
      reservations: { registrations: [], reservation: null, spc2: null },
      alua: [{ group: 1, state: 'active-optimized' }],
      operations: [],
    });
    expect(r.naa).toMatch(/^6[0-9a-f]{31}$/);

    const one = await call('GET', '/api/v1/luns/big');
    expect(one.body.sizeBytes).toBe(256 * 1024 * 1024);
    const missing = await call('GET', '/api/v1/luns/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error.field).toBe('name');

    const groups = await call('GET', '/api/v1/port-groups');
    expect(groups.body).toEqual([{ group: 1, node: s.body.node, portals: [`127.0.0.1:${t.port}`], state: 'active-optimized' }]);
  });
});

describe('sessions and metrics after known I/O', () => {
  it('counts exactly the reads an initiator made, per LU and per session', async () => {
    const before = await call('GET', '/metrics');
    expect(before.headers.get('content-type')).toMatch(/^text\/plain/);
    const reads0 = metric(before.text, 'spindle_lu_reads_total', { device: 'r' }) ?? 0;
    const bytes0 = metric(before.text, 'spindle_lu_read_bytes_total', { device: 'r' }) ?? 0;
    const lat0 = metric(before.text, 'spindle_lu_latency_seconds_count', { device: 'r', op: 'read' }) ?? 0;
    const logins0 = metric(before.text, 'spindle_iscsi_logins_total') ?? 0;

    const ini = await login(1);
    try {
      const N = 37;
      for (let i = 0; i < N; i++) {
        const r = await ini.scsi(read10(i * 8, 8), { read: true, edtl: 4096 });
        expect(r.status).toBe(Status.GOOD);
      }
      const after = await call('GET', '/metrics');
      expect(metric(after.text, 'spindle_lu_reads_total', { device: 'r' })).toBe(reads0 + N);
      expect(metric(after.text, 'spindle_lu_read_bytes_total', { device: 'r' })).toBe(bytes0 + N * 4096);
      expect(metric(after.text, 'spindle_lu_latency_seconds_count', { device: 'r', op: 'read' })).toBe(lat0 + N);
      expect(metric(after.text, 'spindle_lu_latency_seconds_bucket', { device: 'r', op: 'read', le: '+Inf' })).toBe(lat0 + N);
      expect(metric(after.text, 'spindle_lu_writes_total', { device: 'r' })).toBe(0);
      expect(metric(after.text, 'spindle_lu_queue_depth', { device: 'r' })).toBe(0);
      expect(metric(after.text, 'spindle_iscsi_logins_total')).toBe(logins0 + 1);

      const sessions = await call('GET', '/api/v1/sessions');
      const mine = sessions.body.find((s: { initiatorName: string; phase: string }) => s.initiatorName === INITIATOR && s.phase === 'full-feature');
      expect(mine).toMatchObject({
        id: String(ini.tsih),
        tsih: ini.tsih,
        isid: '800000000001',
        targetName: t.iqn,
        sessionType: 'Normal',
        portal: { host: '127.0.0.1', port: t.port },
        headerDigest: 'None',
        dataDigest: 'None',
        commandsInFlight: 0,
        negotiated: expect.objectContaining({ MaxRecvDataSegmentLength: 65536, ErrorRecoveryLevel: 0 }),
      });
      expect(mine.counters.dataInBytes).toBe(N * 4096);
      expect(mine.counters.commands).toBeGreaterThanOrEqual(N + 1);
      // The per session series carry the same numbers.
      const labels = { initiator: INITIATOR, tsih: String(ini.tsih) };
      expect(metric(after.text, 'spindle_session_data_in_bytes_total', labels)).toBe(N * 4096);
      expect(metric(after.text, 'spindle_session_commands_total', labels)).toBe(mine.counters.commands);

      const one = await call('GET', `/api/v1/sessions/${ini.tsih}`);
      expect(one.body.tsih).toBe(ini.tsih);
      // Rates come from one-second samples: after a while they are there (0 when idle).
      await new Promise((r) => setTimeout(r, 2200));
      const again = await call('GET', `/api/v1/sessions/${ini.tsih}`);
      expect(again.body.rates).toEqual({ commandsPerSec: 0, dataInBytesPerSec: 0, dataOutBytesPerSec: 0 });

      const cliSessions = await cli(['sessions', '--config', cfgPath]);
      expect(cliSessions.code, cliSessions.stderr).toBe(0);
      expect(cliSessions.stdout).toMatch(new RegExp(`^${ini.tsih}\\s+${INITIATOR.replaceAll('.', '\\.')}\\s+800000000001`, 'm'));
      const cliJson = await cli(['sessions', '--config', cfgPath, '--json']);
      expect(JSON.parse(cliJson.stdout).some((s: { tsih: number }) => s.tsih === ini.tsih)).toBe(true);
    } finally {
      ini.close();
    }
  });

  it('exports the worker, ring, slab and login failure series', async () => {
    // A login to a target that does not exist: a failure by reason.
    const { Initiator } = await import('../helpers/initiator.ts');
    const bad = await Initiator.connect(t.port);
    try {
      const r = await bad.login({ initiatorName: INITIATOR, targetName: 'iqn.2026-11.io.spindle:missing' });
      expect(r.ok).toBe(false);
    } finally {
      bad.close();
    }
    await new Promise((r) => setTimeout(r, 200));
    const m = await call('GET', '/metrics');
    expect(metric(m.text, 'spindle_iscsi_login_failures_total', { reason: 'not-found' })).toBeGreaterThanOrEqual(1);
    for (const kind of ['lun', 'session', 'portal']) expect(metric(m.text, 'spindle_worker_up', { kind, worker: '0' })).toBe(1);
    expect(metric(m.text, 'spindle_worker_restarts_total', { kind: 'lun' })).toBe(0);
    expect(metric(m.text, 'spindle_ring_capacity')).toBe(1024);
    expect(metric(m.text, 'spindle_ring_occupancy', { session_worker: '0', lun_worker: '1', ring: 'command' })).toBe(0);
    expect(metric(m.text, 'spindle_slab_bytes', { worker: '0' })).toBeGreaterThan(0);
    expect(metric(m.text, 'spindle_slab_bytes_in_use', { worker: '1' })).toBe(0);
    expect(metric(m.text, 'spindle_ready')).toBe(1);
    expect(metric(m.text, 'spindle_port_group_state', { group: '1', state: 'active-optimized' })).toBe(1);
    expect(metric(m.text, 'spindle_cluster_serving')).toBeUndefined(); // one node: no cluster series
    expect(m.text).toContain('process_cpu_seconds_total');
  });
});

describe('actions', () => {
  it('asks a live session to log out (Async Message, AsyncEvent 1), through the API and the CLI', async () => {
    const ini = await login(2);
    try {
      const r = await call('POST', `/api/v1/sessions/${ini.tsih}/logout`, { body: { time2WaitSec: 7 } });
      expect(r.status).toBe(202);
      expect(r.body).toEqual({ id: String(ini.tsih), logoutRequested: true, time2WaitSec: 7 });
      const msg = await ini.waitFor((p) => p.opcode === Opcode.ASYNC_MESSAGE, 5000);
      // RFC 7143 11.9.1: AsyncEvent 1, Parameter3 = Time2Wait.
      expect(msg.bhs[36]).toBe(1);
      expect(msg.bhs.readUInt16BE(42)).toBe(7);

      const c = await cli(['logout', String(ini.tsih), '--config', cfgPath]);
      expect(c.code, c.stderr).toBe(0);
      expect(c.stdout).toContain(`session ${ini.tsih}: the initiator was asked to log out`);
      const again = await ini.waitFor((p) => p.opcode === Opcode.ASYNC_MESSAGE, 5000);
      expect(again.bhs[36]).toBe(1);

      // The initiator obeys: logout --wait sees the session go.
      let asked!: () => void;
      const waitingStarted = new Promise<void>((r) => (asked = r));
      const waiting = cli(['logout', String(ini.tsih), '--config', cfgPath, '--wait', '20'], 60_000, (out) => {
        if (out.includes('waiting for it to go')) asked();
      });
      await waitingStarted;
      await ini.waitFor((p) => p.opcode === Opcode.ASYNC_MESSAGE, 5000);
      const lo = await ini.logout();
      expect(lo.opcode).toBe(Opcode.LOGOUT_RESPONSE);
      const w = await waiting;
      expect(w.code, w.stderr + w.stdout).toBe(0);
      expect(w.stdout).toContain('logged out');
    } finally {
      ini.close();
    }
  });

  it('closes a session (API, and spindle logout --force)', async () => {
    const a = await login(3);
    const b = await login(4);
    try {
      const r = await call('POST', `/api/v1/sessions/${a.tsih}/close`, { body: { reason: 'test' } });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ id: String(a.tsih), closed: true });
      expect(await a.waitClosed(5000)).toBe(true);
      const c = await cli(['logout', String(b.tsih), '--force', '--config', cfgPath]);
      expect(c.code, c.stderr).toBe(0);
      expect(await b.waitClosed(5000)).toBe(true);
      expect((await call('GET', `/api/v1/sessions/${a.tsih}`)).status).toBe(404);
    } finally {
      a.close();
      b.close();
    }
  });

  it('refuses bad requests with a 4xx naming the field, and changes nothing', async () => {
    const cases: [string, string, { body?: unknown; raw?: string; contentType?: string }, number, string | undefined][] = [
      ['PUT', '/api/v1/port-groups/1', { body: { state: 'sideways' } }, 400, 'state'],
      ['PUT', '/api/v1/port-groups/1', { body: {} }, 400, 'state'],
      ['PUT', '/api/v1/port-groups/1', { body: { state: 'standby', extra: 1 } }, 400, 'extra'],
      ['PUT', '/api/v1/port-groups/1', { body: { state: 2 } }, 400, 'state'],
      ['PUT', '/api/v1/port-groups/1', { raw: '{"state":', contentType: 'application/json' }, 400, 'body'],
      ['PUT', '/api/v1/port-groups/1', { raw: 'state=standby', contentType: 'application/x-www-form-urlencoded' }, 415, 'body'],
      ['PUT', '/api/v1/port-groups/abc', { body: { state: 'standby' } }, 400, 'group'],
      ['PUT', '/api/v1/port-groups/99', { body: { state: 'standby' } }, 404, 'group'],
      ['POST', '/api/v1/sessions/0/logout', { body: {} }, 400, 'id'],
      ['POST', '/api/v1/sessions/x/logout', { body: {} }, 400, 'id'],
      ['POST', '/api/v1/sessions/999/logout', { body: {} }, 404, 'id'],
      ['POST', '/api/v1/sessions/999/logout', { body: { time2WaitSec: -1 } }, 400, 'time2WaitSec'],
      ['POST', '/api/v1/sessions/999/close', { body: { reason: '' } }, 400, 'reason'],
      ['POST', '/api/v1/reload', { body: { now: true } }, 400, 'now'],
    ];
    for (const [method, url, o, status, field] of cases) {
      const r = await call(method, url, o);
      expect(r.status, `${method} ${url} ${JSON.stringify(o)}`).toBe(status);
      expect(r.body.error.field, `${method} ${url}`).toBe(field);
      expect(r.body.error.message).toEqual(expect.any(String));
    }
    expect((await call('GET', '/api/v1/port-groups')).body[0].state).toBe('active-optimized');
  });

  it('changes a port group\'s ALUA state: initiators see ASYMMETRIC ACCESS STATE CHANGED, then NOT READY in standby', async () => {
    const ini = await login(5);
    try {
      const r = await call('PUT', '/api/v1/port-groups/1', { body: { state: 'standby' } });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ group: 1, state: 'standby' });
      const ua = await ini.scsi(TEST_UNIT_READY, { edtl: 0, rawUnitAttention: true });
      expect(ua.status).toBe(Status.CHECK_CONDITION);
      expect([ua.sense[2]! & 0x0f, ua.sense[12], ua.sense[13]]).toEqual([0x06, 0x2a, 0x06]);
      const nr = await ini.scsi(read10(0, 1), { read: true, edtl: 512 });
      expect([nr.sense[2]! & 0x0f, nr.sense[12], nr.sense[13]]).toEqual([0x02, 0x04, 0x0b]);
      expect((await call('GET', '/api/v1/luns/r')).body.alua).toEqual([{ group: 1, state: 'standby' }]);
      const m = await call('GET', '/metrics');
      expect(metric(m.text, 'spindle_port_group_state', { group: '1', state: 'standby' })).toBe(1);
      // Until the next reload: the file says active/optimized, and a reload applies it again.
      const reload = await call('POST', '/api/v1/reload');
      expect(reload.status).toBe(200);
      expect(reload.body).toMatchObject({ outcome: 'applied', changes: { alua: true } });
      expect((await call('GET', '/api/v1/port-groups')).body[0].state).toBe('active-optimized');
    } finally {
      ini.close();
    }
  });

  it('reloads: unchanged, applied (a grown LU), refused with every problem by field', async () => {
    const same = await call('POST', '/api/v1/reload');
    expect(same.status).toBe(200);
    expect(same.body).toEqual({ outcome: 'unchanged', problems: [] });
    const unchangedCli = await cli(['reload', '--config', cfgPath]);
    expect(unchangedCli.code, unchangedCli.stderr).toBe(0);
    expect(unchangedCli.stdout).toContain('nothing changed');

    const original = readFileSync(cfgPath, 'utf8');
    try {
      writeFileSync(cfgPath, original.replace('{ name: r, ram: { size: 16MiB } }', '{ name: r, ram: { size: 32MiB } }'));
      const grown = await cli(['reload', '--config', cfgPath, '--json']);
      expect(grown.code, grown.stderr).toBe(0);
      expect(JSON.parse(grown.stdout)).toMatchObject({ outcome: 'applied', changes: { grown: ['r'] } });
      expect((await call('GET', '/api/v1/luns/r')).body.sizeBytes).toBe(32 * 1024 * 1024);

      // Invalid, and a fixed setting changed: refused as a whole, each problem by path.
      writeFileSync(cfgPath, original.replace('{ name: r, ram: { size: 16MiB } }', '{ name: r, ram: { size: 8MiB } }').replace('workers: { session: 2, lun: 2 }', 'workers: { session: 1, lun: 2 }'));
      const refused = await call('POST', '/api/v1/reload');
      expect(refused.status).toBe(422);
      expect(refused.body.outcome).toBe('refused');
      expect(refused.body.problems.map((p: { path: string }) => p.path).sort()).toEqual(['devices[0].ram.size', 'workers']);
      const refusedCli = await cli(['reload', '--config', cfgPath]);
      expect(refusedCli.code).toBe(1);
      expect(refusedCli.stderr).toContain('configuration reload refused');
      expect(refusedCli.stderr).toContain('workers:');

      writeFileSync(cfgPath, original.replace('luns: { 0: r, 1: big }', 'luns: { 0: r, 1: big, 2: nothing }'));
      const invalid = await call('POST', '/api/v1/reload');
      expect(invalid.status).toBe(422);
      expect(invalid.body.problems[0].path).toBe('targets[0].luns.2');
      expect(invalid.body.problems[0].message).toMatch(/line \d+/);
      expect((await call('GET', '/api/v1/luns/r')).body.sizeBytes).toBe(32 * 1024 * 1024);
    } finally {
      writeFileSync(cfgPath, original.replace('{ name: r, ram: { size: 16MiB } }', '{ name: r, ram: { size: 32MiB } }'));
    }
    const m = await call('GET', '/metrics');
    expect(metric(m.text, 'spindle_config_reloads_total', { outcome: 'refused' })).toBeGreaterThanOrEqual(3);
    expect(metric(m.text, 'spindle_config_reloads_total', { outcome: 'applied' })).toBeGreaterThanOrEqual(2);
  });
});

describe('the CLI', () => {
  it('status: a human summary (exit 0 when ready), JSON with --json', async () => {
    const h = await cli(['status', '--config', cfgPath]);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toMatch(/^node .* READY$/m);
    expect(h.stdout).toContain(`portals: 127.0.0.1:${t.port}`);
    const j = await cli(['status', '--config', cfgPath, '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ ready: true, clusterId: 'api-test' });
  });

  it('exit codes: unreachable 3, no such session 1, a wrong token 2, bad usage 2', async () => {
    const unreachable = await cli(['status', '--config', cfgPath, '--api', `127.0.0.1:${await freePort()}`]);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('cannot reach the admin API');
    const none = await cli(['logout', '4242', '--config', cfgPath]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no session 4242');
    const wrongToken = path.join(t.dir, 'wrong.yaml');
    writeFileSync(path.join(t.dir, 'wrong-token'), 'wrong-token-0123456789abcdef\n');
    writeFileSync(wrongToken, readFileSync(cfgPath, 'utf8').replace(`${t.dir}/token`, `${t.dir}/wrong-token`));
    const refused = await cli(['luns', '--config', wrongToken]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('API token');
    const usage = await cli(['logout', 'abc', '--config', cfgPath]);
    expect(usage.code).toBe(2);
  });

  it('luns --wait follows a sanitize\'s progress until it ends', async () => {
    const ini = await login(6);
    try {
      // SANITIZE OVERWRITE (SBC-4 5.30.2), IMMED = 1, 31 passes of a 4-byte pattern over 256 MiB.
      const list = Buffer.from([0x1f, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef]);
      const cdb = Buffer.from([0x48, 0x81, 0, 0, 0, 0, 0, 0, list.length, 0]);
      const s = await ini.scsi(cdb, { lun: 1, write: true, edtl: list.length, data: list });
      expect(s.status).toBe(Status.GOOD);
      const lu = await call('GET', '/api/v1/luns/big');
      expect(lu.body.operations).toEqual([
        expect.objectContaining({ kind: 'sanitize', state: 'running', action: 1, totalBlocks: 31 * 524288 }),
      ]);
      expect(lu.body.operations[0].progress).toBeGreaterThanOrEqual(0);
      expect(lu.body.operations[0].progress).toBeLessThan(1);
      const status = await call('GET', '/api/v1/status');
      expect(status.body.operations).toEqual([expect.objectContaining({ device: 'big', kind: 'sanitize', state: 'running' })]);
      const w = await cli(['luns', '--config', cfgPath, '--wait', '120'], 150_000);
      expect(w.code, w.stderr).toBe(0);
      expect(w.stdout).toMatch(/big: sanitize \d+\.\d%/);
      expect(w.stdout).toContain('no long operation running');
      expect((await call('GET', '/api/v1/luns/big')).body.operations).toEqual([]);
    } finally {
      ini.close();
    }
  });
});
