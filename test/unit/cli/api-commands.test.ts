/**
 * The admin API commands of the CLI: argument parsing, and each command against a real
 * HTTP server over a fake node (buildAdminApp), checking output and exit codes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { EXIT, parseCli } from '../../../src/supervisor/cli.ts';
import { buildAdminApp } from '../../../src/supervisor/admin/server.ts';
import type { AdminHost } from '../../../src/supervisor/admin/node-admin.ts';
import type { LunView, SessionView } from '../../../src/supervisor/admin/views.ts';
import { humanBytes, logoutCommand, lunsCommand, reloadCommand, sessionsCommand, statusCommand, type Output } from '../../../src/supervisor/api-commands.ts';
import type { ApiConfig } from '../../../src/shared/config-types.ts';

const TOKEN = 'cli-test-token-0123456789';

describe('parseCli: admin API commands', () => {
  it('parses each command with its options', () => {
    expect(parseCli(['status', '--config', 'f.yaml'])).toEqual({ kind: 'api', command: 'status', configPath: 'f.yaml', json: false, timeoutSec: 10 });
    expect(parseCli(['sessions', '-c', 'f.yaml', '--json', '--api', '127.0.0.1:9999', '--timeout', '3'])).toEqual({
      kind: 'api',
      command: 'sessions',
      configPath: 'f.yaml',
      json: true,
      timeoutSec: 3,
      api: '127.0.0.1:9999',
    });
    expect(parseCli(['luns', '--config', 'f', '--wait', '30'])).toMatchObject({ command: 'luns', waitSec: 30 });
    expect(parseCli(['logout', '17', '--config', 'f', '--force'])).toMatchObject({ command: 'logout', session: '17', force: true });
    expect(parseCli(['reload', '--config', 'f'])).toMatchObject({ command: 'reload' });
    expect(parseCli(['serve', '--config', 'f', '--api', '127.0.0.1:1'])).toMatchObject({ kind: 'serve', api: '127.0.0.1:1' });
  });

  it('refuses bad usage with a message', () => {
    const bad: [string[], RegExp][] = [
      [['status'], /needs --config/],
      [['logout', '--config', 'f'], /needs the session id/],
      [['logout', 'x', '--config', 'f'], /number 1-65535/],
      [['logout', '0', '--config', 'f'], /number 1-65535/],
      [['logout', '1', '2', '--config', 'f'], /unexpected argument "2"/],
      [['status', 'extra', '--config', 'f'], /unexpected argument/],
      [['status', '--config', 'f', '--force'], /--force applies to logout only/],
      [['sessions', '--config', 'f', '--wait', '3'], /--wait applies to status, luns and logout/],
      [['luns', '--config', 'f', '--wait', 'soon'], /--wait must be a number/],
      [['status', '--config', 'f', '--timeout', '0'], /--timeout must be a positive/],
      [['status', '--config', 'f', '--pretty'], /--pretty applies to serve only/],
    ];
    for (const [args, msg] of bad) {
      const c = parseCli(args);
      expect(c.kind, args.join(' ')).toBe('usage-error');
      if (c.kind === 'usage-error') expect(c.message).toMatch(msg);
    }
  });
});

function lun(name: string, operations: LunView['operations']): LunView {
  return {
    name, worker: 0, luIndex: 0, naa: '60', serial: 's', backing: { type: 'ram' }, blockSize: 512, blocks: 2048, sizeBytes: 1048576, readOnly: false,
    writeCache: 'writeback', thin: false, removable: false, mediumPresent: true, queueDepth: 128, taskSet: { size: 0, dormant: 0 },
    reservations: { generation: 3, aptpl: false, registrations: [{ key: '00000000000000ab', initiatorName: 'iqn.h', isid: '800000000001', relativeTargetPortId: 1, allTgPt: false }], reservation: { type: 1, typeName: 'write-exclusive', holder: { key: '00000000000000ab', initiatorName: 'iqn.h', isid: '800000000001', relativeTargetPortId: 1, allTgPt: false } }, spc2: null },
    alua: [{ group: 1, state: 'active-optimized' }], operations, exports: [{ target: 'iqn.t', lun: 0, acl: false }], counters: null,
  };
}

/** A node whose sanitize advances by a quarter at each look. */
function host(): AdminHost {
  let looks = 0;
  let sessionGone = false;
  return {
    health: () => ({ status: 'ok', node: 'n1', version: '1', uptimeSec: 3725 }),
    readiness: () => ({ ready: true, checks: [] }),
    status: () =>
      Promise.resolve({
        node: 'n1', clusterId: 'c', version: '1', uptimeSec: 3725, ready: false, checks: [{ name: 'workers', ok: false, detail: 'not alive: lun-1' }],
        portals: ['127.0.0.1:3260'], workers: { lun: 2, session: 1, portal: 1 }, counts: { targets: 1, luns: 1, sessions: 1, connections: 2 },
        operations: [{ device: 'd', kind: 'sanitize', state: 'running', progress: 0.5, detail: '1/2 blocks' }], cluster: null,
      }),
    targets: () => Promise.resolve([]),
    luns: () => {
      looks++;
      const p = Math.min(1, (looks - 1) * 0.25);
      return Promise.resolve([lun('d', p >= 1 ? [] : [{ kind: 'sanitize', state: 'running', action: 1, progress: p, doneBlocks: p * 100, totalBlocks: 100 }])]);
    },
    sessions: () =>
      Promise.resolve(
        sessionGone
          ? []
          : [{
              worker: 0, slot: 1, generation: 1, tsih: 5, id: '5', isid: '800000000001', initiatorName: 'iqn.host', initiatorAlias: '', targetName: 'iqn.t', sessionType: 'Normal',
              phase: 'full-feature', portal: { host: '127.0.0.1', port: 3260, group: 1 }, peer: '127.0.0.1:4000', since: 0, negotiated: {}, headerDigest: 'CRC32C', dataDigest: 'None',
              commandsInFlight: 3, expCmdSN: 1, maxCmdSN: 1, statSN: 1, counters: null, rates: { commandsPerSec: 1500, dataInBytesPerSec: 3 * 1048576, dataOutBytesPerSec: 0 },
            } satisfies SessionView],
      ),
    portGroups: () => [],
    reload: () => Promise.resolve({ outcome: 'applied', problems: [], changes: { added: ['x'], removed: [], grown: ['d'], routes: true, alua: false } }),
    logoutSession: (tsih) => {
      if (tsih === 5) setTimeout(() => (sessionGone = true), 300);
      return Promise.resolve(tsih === 5);
    },
    closeSession: (tsih) => Promise.resolve(tsih === 5),
    setPortGroupState: () => Promise.reject(new Error('unused')),
    metrics: () => Promise.resolve(''),
    metricsContentType: 'text/plain',
    close: () => {},
  };
}

function capture(): Output & { stdout: string; stderr: string } {
  const o = { stdout: '', stderr: '', out: (t: string) => void (o.stdout += t), err: (t: string) => void (o.stderr += t) };
  return o;
}

let server: FastifyInstance;
let api: ApiConfig;
const opts = { json: false, timeoutSec: 5, pollMs: 20 };

beforeAll(async () => {
  server = buildAdminApp(host(), { token: TOKEN });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const port = (server.server.address() as { port: number }).port;
  api = { listen: { host: '127.0.0.1', port }, token: TOKEN };
});

afterAll(async () => {
  await server?.close();
});

describe('the commands against a node', () => {
  it('status: a summary; exit 1 while not ready', async () => {
    const io = capture();
    expect(await statusCommand(api, opts, io)).toBe(EXIT.failure);
    expect(io.stdout).toContain('node n1 (cluster id c), spindle 1, up 1h2m: NOT READY');
    expect(io.stdout).toContain('workers  FAIL  not alive: lun-1');
    expect(io.stdout).toContain('d: sanitize running 50.0% (1/2 blocks)');
  });

  it('sessions: one row per connection with digests and rates', async () => {
    const io = capture();
    expect(await sessionsCommand(api, opts, io)).toBe(EXIT.ok);
    const [head, row] = io.stdout.trim().split('\n');
    expect(head).toMatch(/^ID\s+INITIATOR\s+ISID\s+TARGET/);
    expect(row).toMatch(/^5\s+iqn\.host\s+800000000001\s+iqn\.t\s+127\.0\.0\.1:3260\s+127\.0\.0\.1:4000\s+full-feature\s+H:CRC32C D:None\s+3\s+1500\s+3\.0MiB\s+0B$/);
  });

  it('luns --wait: prints progress until the operation ends', async () => {
    const io = capture();
    expect(await lunsCommand(api, { ...opts, waitSec: 30 }, io)).toBe(EXIT.ok);
    expect(io.stdout).toContain('write-exclusive by iqn.h (1 reg)');
    expect(io.stdout).toContain('d: sanitize 25.0%');
    expect(io.stdout).toContain('d: sanitize 50.0%');
    expect(io.stdout).toContain('d: sanitize 75.0%');
    expect(io.stdout.trim().endsWith('no long operation running')).toBe(true);
  });

  it('reload: what changed', async () => {
    const io = capture();
    expect(await reloadCommand(api, opts, io)).toBe(EXIT.ok);
    expect(io.stdout).toBe('configuration reloaded: added x; grown d; targets and LUN maps changed\n');
  });

  it('logout: asks, waits for the session to go; 1 for an unknown session', async () => {
    const io = capture();
    expect(await logoutCommand(api, '5', { ...opts, waitSec: 10 }, io)).toBe(EXIT.ok);
    expect(io.stdout).toContain('session 5: logged out');
    const none = capture();
    expect(await logoutCommand(api, '6', opts, none)).toBe(EXIT.failure);
    expect(none.stderr).toContain('no session 6');
  });

  it('maps a wrong token to 2, an unreachable API to 3, a silent one to 4', async () => {
    const wrong = capture();
    expect(await statusCommand({ ...api, token: 'wrong-token-0123456789' }, opts, wrong)).toBe(EXIT.usage);
    expect(wrong.stderr).toContain('API token');
    const closed = capture();
    expect(await statusCommand({ listen: { host: '127.0.0.1', port: 1 } }, opts, closed)).toBe(EXIT.unreachable);
    // A listener that accepts and never answers.
    const net = await import('node:net');
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const io = capture();
      const port = (silent.address() as { port: number }).port;
      expect(await statusCommand({ listen: { host: '127.0.0.1', port } }, { ...opts, timeoutSec: 0.3 }, io)).toBe(EXIT.timeout);
    } finally {
      silent.close();
    }
  });

  it('formats sizes in binary units', () => {
    expect([humanBytes(0), humanBytes(1023), humanBytes(1536), humanBytes(10 * 1048576), humanBytes(5.5 * 2 ** 40)]).toEqual(['0B', '1023B', '1.5KiB', '10MiB', '5.5TiB']);
  });
});

describe('status --wait', () => {
  it('waits for readiness and gives up with exit 4 (the node here stays not ready)', async () => {
    const io = capture();
    const started = Date.now();
    expect(await statusCommand(api, { ...opts, waitSec: 0.3 }, io)).toBe(EXIT.timeout);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(io.stderr).toContain('not ready after 0.3s');
  });

  it('waits out an API that is not listening yet', async () => {
    const net = await import('node:net');
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const late = buildAdminApp({ ...host(), status: async () => ({ ...(await host().status()), ready: true }) }, {});
    setTimeout(() => void late.listen({ host: '127.0.0.1', port }), 300);
    try {
      const io = capture();
      expect(await statusCommand({ listen: { host: '127.0.0.1', port } }, { ...opts, waitSec: 20 }, io)).toBe(EXIT.ok);
      expect(io.stdout).toContain(': READY');
    } finally {
      await late.close();
    }
  });
});
