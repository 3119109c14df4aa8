/**
 * The cluster test infrastructure against the real things: redis-server and
 * redis-sentinel binaries on free loopback ports, ioredis as the client, the TCP proxy
 * cutting a client off from Redis, and spindle nodes on 127.0.0.1 / 127.0.0.2 started by
 * the cluster launcher.
 *
 * Every wait is on a condition with a generous bound (a loaded two-core machine), except
 * where a test asserts that something does NOT happen: that needs a bounded wait.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import {
  RedisReplyError,
  parseInfo,
  redisTlsSupport,
  respCommand,
  startRedis,
  type RedisServer,
} from '../helpers/redis.ts';
import { startSentinel, type SentinelSetup } from '../helpers/sentinel.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { startCluster, type StartedCluster } from '../helpers/cluster.ts';
import { Initiator, Status, read10, write10 } from '../helpers/initiator.ts';

/** ioredis clients made by a test; all disconnected after it. */
const clients: Redis[] = [];
function client(opts: RedisOptions): Redis {
  const c = new Redis({ lazyConnect: false, ...opts });
  // Reconnects and refused connections are expected here; unhandled 'error' events are not.
  c.on('error', () => {});
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

/** The pid is gone (or a zombie nobody reaped). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------

describe('redis-server helper', () => {
  let r: RedisServer;
  afterAll(async () => {
    await r?.close();
  });

  it('starts on a free loopback port in its own directory and answers PING, through ioredis too', async () => {
    r = await startRedis();
    expect(r.backend).toBe('binary');
    expect(r.host).toBe('127.0.0.1');
    expect(r.url).toBe(`redis://127.0.0.1:${r.port}/0`);
    expect(r.running).toBe(true);
    expect(await r.command('PING')).toBe('PONG');
    // The durable defaults.
    expect(await r.command('CONFIG', 'GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await r.command('CONFIG', 'GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
    expect(await r.command('CONFIG', 'GET', 'save')).toEqual(['save', '']);
    expect(await r.command('CONFIG', 'GET', 'dir')).toEqual(['dir', path.join(r.dir, 'data')]);
    const c = client(r.clientOptions());
    expect(await c.set('k', 'v')).toBe('OK');
    expect(await c.get('k')).toBe('v');
  });

  it('keeps acknowledged data across SIGTERM and across kill -9 (AOF, fsync always), on the same port', async () => {
    const port = r.port;
    await r.command('SET', 'before-stop', '1');
    let mark = r.output().length;
    await r.stop();
    expect(r.output().slice(mark)).toMatch(/ready to exit, bye bye/);
    expect(r.running).toBe(false);
    await expect(respCommand(r.endpoint(), ['PING'], 1_000)).rejects.toThrow();
    await r.restart();
    expect(r.port).toBe(port);
    expect(await r.command('GET', 'before-stop')).toBe('1');

    const pid = r.pid!;
    await r.command('SET', 'before-kill', '2');
    mark = r.output().length;
    await r.kill();
    expect(gone(pid)).toBe(true);
    // A crash, not a shutdown: no chance to flush anything.
    expect(r.output().slice(mark)).not.toMatch(/SIGTERM|bye bye/);
    await r.restart();
    expect(r.pid).not.toBe(pid);
    expect(await r.command('GET', 'before-kill')).toBe('2');
    expect(await r.command('GET', 'k')).toBe('v');
  });

  it('restart({ empty: true }) comes back without its data', async () => {
    expect(Number(await r.command('DBSIZE'))).toBeGreaterThan(0);
    await r.restart({ empty: true });
    expect(await r.command('DBSIZE')).toBe(0);
    expect(await r.command('GET', 'before-kill')).toBeNull();
    // Still durable afterwards.
    await r.command('SET', 'after-empty', '3');
    await r.kill();
    await r.restart();
    expect(await r.command('GET', 'after-empty')).toBe('3');
  });

  it('an ACL user: commands without credentials or with a wrong password are refused', async () => {
    const password = randomBytes(12).toString('hex');
    const acl = await startRedis({ auth: { username: 'spindle', password } });
    try {
      expect(acl.passwordFile).toBeDefined();
      const anon = client({ host: acl.host, port: acl.port, maxRetriesPerRequest: 0 });
      await expect(anon.get('x')).rejects.toThrow(/NOAUTH/);
      const wrong = client({
        host: acl.host,
        port: acl.port,
        username: 'spindle',
        password: 'nope',
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
      });
      await expect(wrong.get('x')).rejects.toThrow(/WRONGPASS|invalid username-password/);
      // The default user is off: the password alone is not enough.
      const noUser = client({
        host: acl.host,
        port: acl.port,
        password,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
      });
      await expect(noUser.get('x')).rejects.toThrow(/WRONGPASS|invalid username-password/);
      const ok = client(acl.clientOptions());
      expect(await ok.set('x', '1')).toBe('OK');
      expect(await ok.call('ACL', 'WHOAMI')).toBe('spindle');
    } finally {
      await acl.close();
    }

    const rp = await startRedis({ auth: { password } });
    try {
      await expect(respCommand({ host: rp.host, port: rp.port }, ['GET', 'x'])).rejects.toThrow(
        RedisReplyError,
      );
      expect(await rp.command('PING')).toBe('PONG');
      expect(await rp.command('CONFIG', 'GET', 'requirepass')).toEqual(['requirepass', password]);
    } finally {
      await rp.close();
    }
  });

  it('TLS (mutual): a client with the CA and a client certificate connects, others do not', async (ctx) => {
    const support = await redisTlsSupport();
    if (!support.supported) return ctx.skip(support.reason);
    const t = await startRedis({ tls: true, appendonly: false });
    try {
      expect(t.url).toBe(`rediss://127.0.0.1:${t.port}/0`);
      const ok = client(t.clientOptions());
      expect(await ok.ping()).toBe('PONG');
      // TLS only: the plain port is closed.
      expect(await ok.config('GET', 'port')).toEqual(['port', '0']);
      expect(await ok.config('GET', 'tls-port')).toEqual(['tls-port', String(t.port)]);

      // Plain TCP to the TLS port: the server drops it (it gets no TLS handshake).
      await expect(respCommand({ host: t.host, port: t.port }, ['PING'], 5_000)).rejects.toThrow();
      // No client certificate: refused (tls-auth-clients yes).
      const tlsNoCert = { ...t.endpoint(), tls: { ca: t.endpoint().tls!.ca } };
      await expect(respCommand(tlsNoCert, ['PING'], 5_000)).rejects.toThrow();
      // The server certificate is not trusted without the test CA.
      const tlsNoCa = { ...t.endpoint(), tls: { cert: t.endpoint().tls!.cert, key: t.endpoint().tls!.key } };
      await expect(respCommand(tlsNoCa, ['PING'], 5_000)).rejects.toThrow(
        /self[- ]signed|unable to (verify|get local issuer)/i,
      );
    } finally {
      await t.close();
    }
  });

  it('close() leaves no process behind', async () => {
    const x = await startRedis({ appendonly: false });
    const pid = x.pid!;
    await x.close();
    expect(gone(pid)).toBe(true);
    await x.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe('Sentinel helper', () => {
  let s: SentinelSetup;
  const password = randomBytes(12).toString('hex');
  beforeAll(async () => {
    s = await startSentinel({ auth: { username: 'spindle', password } });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('runs a master, a replica and three sentinels on distinct free ports', async () => {
    expect(s.masterName).toBe('spindle');
    expect(s.sentinels).toHaveLength(3);
    for (const a of s.sentinels) expect(a).toMatch(/^127\.0\.0\.1:\d+$/);
    const ports = new Set([...s.servers.map((x) => x.port), ...s.sentinelServers.map((x) => x.port)]);
    expect(ports.size).toBe(5);
    expect(await s.master()).toEqual({ host: '127.0.0.1', port: s.servers[0]!.port });
    expect(parseInfo(String(await s.servers[1]!.command('INFO', 'replication')))['role']).toBe('slave');
    expect(await respCommand(s.sentinelServers[0]!.endpoint(), ['SENTINEL', 'CKQUORUM', 'spindle'])).toMatch(
      /^OK/,
    );
  });

  it('SENTINEL FAILOVER: observed by an ioredis subscriber; a Sentinel-aware client keeps working on the new master', async () => {
    const c = client({ ...s.clientOptions(), failoverDetector: true });
    await c.set('before', 'failover');
    // Acknowledged by the replica: the failover cannot lose it.
    expect(await c.wait(1, 10_000)).toBeGreaterThanOrEqual(1);
    const oldPort = Number(parseInfo(await c.info('server'))['tcp_port']);
    expect(oldPort).toBe(s.servers[0]!.port);

    const sub = client({ ...s.sentinelEndpoints[1]! });
    const switched = new Promise<string>((resolve) =>
      sub.on('message', (_ch: string, msg: string) => resolve(msg)),
    );
    await sub.subscribe('+switch-master');

    const { from, to } = await s.failover();
    expect(from).toBe(s.servers[0]);
    expect(to).toBe(s.servers[1]);
    // "<master name> <old ip> <old port> <new ip> <new port>"
    expect(await switched).toBe(`spindle 127.0.0.1 ${from.port} 127.0.0.1 ${to.port}`);

    expect(await c.set('after', 'failover')).toBe('OK');
    expect(await c.get('before')).toBe('failover');
    expect(Number(parseInfo(await c.info('server'))['tcp_port'])).toBe(to.port);
    // The old master was demoted and follows the new one.
    await s.waitReplica(from);
  });

  it('master killed: the sentinels promote the replica, the client follows, the old master rejoins as replica', async () => {
    const c = client(s.clientOptions());
    await c.set('k', '1');
    expect(await c.wait(1, 10_000)).toBeGreaterThanOrEqual(1);
    const { from, to } = await s.failover({ mode: 'kill' });
    expect(from.running).toBe(false);
    expect(to.running).toBe(true);
    expect(await c.get('k')).toBe('1');
    expect(await c.incr('k')).toBe(2);
    expect(Number(parseInfo(await c.info('server'))['tcp_port'])).toBe(to.port);

    await from.restart();
    // Sentinel converts a returning old master only after it has reported the wrong role
    // for a few publish periods and the new master looks sane to it; a loaded CI machine
    // can stretch that, so this waits longer than the helper's default.
    await s.waitReplica(from, 60_000);
    expect(await from.command('GET', 'k')).toBe('2');
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------

describe('TCP proxy between ioredis and Redis', () => {
  let r: RedisServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    r = await startRedis({ appendonly: false });
    proxy = await startTcpProxy({ target: { host: r.host, port: r.port } });
  });
  afterAll(async () => {
    await proxy?.close();
    await r?.close();
  });

  it('forwards; cut() times out the proxied client while a direct one works; restore() heals', async () => {
    const viaProxy = client({ host: proxy.host, port: proxy.port, commandTimeout: 500 });
    const direct = client(r.clientOptions());
    expect(await viaProxy.set('x', '1')).toBe('OK');
    expect(proxy.bytesToTarget).toBeGreaterThan(0);
    expect(proxy.bytesToClient).toBeGreaterThan(0);

    proxy.cut('blackhole');
    const toTarget = proxy.bytesToTarget;
    await expect(viaProxy.get('x')).rejects.toThrow(/timed out/i);
    expect(await direct.get('x')).toBe('1');
    expect(await direct.set('y', '2')).toBe('OK');
    expect(proxy.bytesToTarget).toBe(toTarget);
    // Nothing told the client the link is gone: its socket is still open.
    expect(viaProxy.status).toBe('ready');

    proxy.restore();
    expect(await viaProxy.get('y')).toBe('2');
  });

  it("cut('reset') drops the client's connection; it reconnects after restore()", async () => {
    const viaProxy = client({ host: proxy.host, port: proxy.port, commandTimeout: 2_000 });
    const direct = client(r.clientOptions());
    expect(await viaProxy.ping()).toBe('PONG');
    const closed = new Promise<void>((res) => viaProxy.once('close', () => res()));
    proxy.cut('reset');
    await closed;
    expect(await direct.ping()).toBe('PONG');
    proxy.restore();
    expect(await viaProxy.set('z', '3')).toBe('OK');
    expect(await direct.get('z')).toBe('3');
  });
});

// ---------------------------------------------------------------------------------------------

/** Logs in on node `i` of `c` and runs one SCSI command on LUN 0. */
async function onNode(c: StartedCluster, i: number, fn: (ini: Initiator) => Promise<void>): Promise<void> {
  const n = c.nodes[i]!;
  const ini = await Initiator.connect(n.port, n.host, 10_000);
  try {
    const r = await ini.login({ targetName: c.iqn, initiatorName: `iqn.2026-11.io.spindle:infra-${n.id}` });
    expect(r.ok).toBe(true);
    await fn(ini);
  } finally {
    ini.close();
  }
}

describe('cluster launcher', () => {
  it("standalone mode (today's spindle): two nodes on 127.0.0.1 and 127.0.0.2 serve one shared file; kill, stop, restart", async () => {
    const c = await startCluster({ nodes: 2, redis: { url: 'redis://127.0.0.1:1/0' }, standalone: true });
    try {
      expect(c.nodes.map((n) => n.host)).toEqual(['127.0.0.1', '127.0.0.2']);
      expect(c.url(1)).toBe(`iscsi://127.0.0.2:${c.nodes[1]!.port}/iqn.2026-11.io.spindle:cluster/0`);
      expect(c.url(0, 3)).toMatch(/^iscsi:\/\/127\.0\.0\.1:\d+\/iqn\.2026-11\.io\.spindle:cluster\/3$/);
      expect(c.nodes.every((n) => n.running && n.output().includes('target ready'))).toBe(true);

      // Written through node a, read back through node b: one medium.
      const block = randomBytes(512);
      await onNode(c, 0, async (ini) => {
        const w = await ini.scsi(write10(7, 1), { write: true, edtl: 512, data: block });
        expect(w.status).toBe(Status.GOOD);
      });
      await onNode(c, 1, async (ini) => {
        const r = await ini.scsi(read10(7, 1), { read: true, edtl: 512 });
        expect(r.status).toBe(Status.GOOD);
        expect(r.data.equals(block)).toBe(true);
      });

      // Node b crashes: its portal is gone, node a still serves.
      const pid = c.nodes[1]!.proc!.pid!;
      await c.kill(1);
      expect(c.nodes[1]!.running).toBe(false);
      expect(gone(pid)).toBe(true);
      const refused = await new Promise<string | undefined>((res) => {
        const s = net.connect({ host: '127.0.0.2', port: c.nodes[1]!.port });
        s.once('connect', () => (s.destroy(), res(undefined)));
        s.once('error', (e: NodeJS.ErrnoException) => res(e.code));
      });
      expect(refused).toBe('ECONNREFUSED');
      await onNode(c, 0, async (ini) => {
        expect((await ini.scsi(read10(7, 1), { read: true, edtl: 512 })).data.equals(block)).toBe(true);
      });

      // Back on the same address and port, with the data.
      await c.start(1);
      await onNode(c, 1, async (ini) => {
        expect((await ini.scsi(read10(7, 1), { read: true, edtl: 512 })).data.equals(block)).toBe(true);
      });
      await c.restart(0);
      expect(c.nodes[0]!.output().match(/--- start node a/g)).toHaveLength(2);
      expect(await c.stop(0)).toBe(0);
    } finally {
      await c.close();
    }
  });

  it('cluster mode: one file, --node, Redis through a per-node proxy', async () => {
    const r = await startRedis({ appendonly: false });
    try {
      const c = await startCluster({ nodes: 2, redis: r, proxyPerNode: true });
      try {
        expect(c.nodes.every((n) => n.running)).toBe(true);
        // Each node reaches Redis only through its own proxy.
        expect(c.nodes.every((n) => n.proxy !== undefined && n.proxy.bytesToTarget > 0)).toBe(true);
        const block = randomBytes(512);
        await onNode(c, 0, async (ini) => {
          expect((await ini.scsi(write10(1, 1), { write: true, edtl: 512, data: block })).status).toBe(
            Status.GOOD,
          );
        });
        await onNode(c, 1, async (ini) => {
          expect((await ini.scsi(read10(1, 1), { read: true, edtl: 512 })).data.equals(block)).toBe(true);
        });
      } finally {
        await c.close();
      }
    } finally {
      await r.close();
    }
  });
});
