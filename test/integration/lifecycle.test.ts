/**
 * Operator-facing behaviour with real initiators: CHAP and header digests through
 * libiscsi, graceful shutdown that keeps acknowledged data, and configurations that
 * must not start (a bad field, a portal that cannot be bound).
 */
import { describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MAIN, REPO, cleanup, freePort, startTarget } from '../helpers/target.ts';
import { run } from '../helpers/run.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

const CHAP = { user: 'host-a', secret: 'correct-horse-battery' };

describe('CHAP with libiscsi', () => {
  it('logs in with the right secret and is refused with a wrong or missing one', async () => {
    const t = await startTarget({
      yaml: ({ port, iqn }) => `
devices: [{ name: r, ram: { size: 16MiB } }]
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: r }
    auth: { chap: { user: ${CHAP.user}, secret: ${CHAP.secret} } }
`,
    });
    try {
      const ok = await run('iscsi-inq', [t.url(0, CHAP)]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain('Vendor:SPINDLE');
      const wrong = await run('iscsi-inq', [t.url(0, { user: CHAP.user, secret: 'wrong-secret-123' })]);
      expect(wrong.code).not.toBe(0);
      const none = await run('iscsi-inq', [t.url(0)]);
      expect(none.code).not.toBe(0);
      // The failure is logged with the initiator's name; the secrets never are.
      expect(t.output()).toMatch(/CHAP|authentication/i);
      expect(t.output()).not.toContain(CHAP.secret);
      expect(t.output()).not.toContain('wrong-secret-123');
    } finally {
      await t.stop();
      cleanup(t);
    }
  });
});

describe('header digests with QEMU', () => {
  it('negotiates HeaderDigest=CRC32C and moves 16 MiB both ways intact', async () => {
    const t = await startTarget();
    try {
      // Debian's libiscsi 1.19 takes no URL arguments; QEMU's driver has header-digest.
      const opts = [
        'driver=raw',
        'file.driver=iscsi',
        'file.transport=tcp',
        `file.portal=127.0.0.1:${t.port}`,
        `file.target=${t.iqn}`,
        'file.lun=0',
        'file.header-digest=crc32c',
      ].join(',');
      const src = path.join(t.dir, 'digest.img');
      writeFileSync(src, randomBytes(16 * 1024 * 1024));
      const conv = await run('qemu-img', ['convert', '-n', '-f', 'raw', src, '--target-image-opts', opts]);
      expect(conv.code, conv.stderr).toBe(0);
      const cmp = await run('qemu-img', ['compare', '--image-opts', `driver=raw,file.driver=file,file.filename=${src}`, opts]);
      expect(cmp.code, cmp.stdout + cmp.stderr).toBe(0);
      expect(cmp.stdout).toContain('Images are identical');
      expect(t.output()).toContain('"HeaderDigest":"CRC32C"');
    } finally {
      await t.stop();
      cleanup(t);
    }
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM exits 0 and the file-backed LUN holds every acknowledged write', async () => {
    const t = await startTarget();
    try {
      const src = path.join(t.dir, 'data.img');
      const data = randomBytes(8 * 1024 * 1024);
      writeFileSync(src, data);
      const conv = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, t.url(1)]);
      expect(conv.code, conv.stderr).toBe(0);
    } finally {
      const code = await t.stop('SIGTERM');
      expect(code).toBe(0);
    }
    const onDisk = readFileSync(path.join(t.dir, 'file0.img'));
    expect(onDisk.subarray(0, 8 * 1024 * 1024).equals(readFileSync(path.join(t.dir, 'data.img')))).toBe(true);
    expect(t.output()).toContain('stopped');
    cleanup(t);
  });

  it('SIGINT during a running write still exits 0 within the drain deadline', async () => {
    const t = await startTarget();
    const src = path.join(t.dir, 'big.img');
    writeFileSync(src, randomBytes(32 * 1024 * 1024));
    const writer = spawn('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, t.url(0)], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 150));
      const started = Date.now();
      const code = await t.stop('SIGINT');
      expect(code).toBe(0);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(t.output()).toContain('stopped');
    } finally {
      // QEMU's iSCSI driver retries a lost target forever; that is its business.
      writer.kill('SIGKILL');
      cleanup(t);
    }
  });
});

describe('configurations that must not start', () => {
  it('SIGTERM while the node is still starting stops it gracefully (exit 0), not by the default action', async () => {
    const port = await freePort();
    const apiPort = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-cfg-'));
    const cfg = path.join(dir, 'early.yaml');
    writeFileSync(
      cfg,
      `devices: [{ name: r, ram: { size: 16MiB } }]
api: { listen: "127.0.0.1:${apiPort}" }
targets:
  - iqn: iqn.2026-11.io.spindle:early
    portals: ['127.0.0.1:${port}']
    luns: { 0: r }
`,
    );
    try {
      // The admin API listens before the workers start: signal the node right then.
      const { p, exited, output } = await serveUntilApiListens(['--config', cfg]);
      p.kill('SIGTERM');
      expect(await exited, output()).toBe(0);
      expect(output()).toContain('stopped');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM while a cluster node waits for Redis cancels the join: exit 0 at once, not after the connect timeout', async () => {
    const redisPort = await freePort(); // nothing listens there
    const { dir, cfg } = await oneNodeClusterConfig('cancel-join', redisPort);
    try {
      const { p, exited, output } = await serveUntilApiListens(['--config', cfg, '--node', 'a']);
      // Let the join reach its retry loop (Redis refuses every connection).
      await new Promise((r) => setTimeout(r, 600));
      const t0 = performance.now();
      p.kill('SIGTERM');
      expect(await exited, output()).toBe(0);
      // The join would have kept trying for 30 s (CLUSTER_CONNECT_TIMEOUT_MS).
      expect(performance.now() - t0, output()).toBeLessThan(10_000);
      expect(output()).toContain('stopped during startup');
      expect(output()).not.toContain('startup failed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a cluster node started before its Redis joins once Redis comes up (pods start in any order)', async () => {
    const redisPort = await freePort(); // nothing listens there yet
    const { dir, cfg } = await oneNodeClusterConfig('late-redis', redisPort);
    let redis: RedisServer | undefined;
    const { p, exited, output } = await serveUntilApiListens(['--config', cfg, '--node', 'a']);
    try {
      // Several rounds of refused connections (every client retries on its own meanwhile).
      await new Promise((r) => setTimeout(r, 2500));
      redis = await startRedis({ port: redisPort, appendonly: false });
      const deadline = performance.now() + 20_000;
      while (!output().includes('target ready') && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(output(), 'ready once Redis is up').toContain('target ready');
      expect(output()).not.toContain('startup failed');
    } finally {
      p.kill('SIGTERM');
      await exited;
      await redis?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad field exits 2 and names the path; nothing listens', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-cfg-'));
    const port = await freePort();
    const cfg = path.join(dir, 'bad.yaml');
    writeFileSync(
      cfg,
      `devices:
  - name: r
    ram: { size: 16MiB }
    blockSize: 1000
    cache: writeback
targets:
  - iqn: iqn.2026-11.io.spindle:bad
    portals: ['127.0.0.1:${port}']
    luns: { 0: r, 1: missing }
`,
    );
    const r = await runMain(['serve', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('devices[0].blockSize');
    expect(r.stderr).toContain('devices[0].cache');
    expect(r.stderr).toMatch(/targets\[0\]\.luns/);
    expect(await listening(port)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a portal that cannot be bound stops startup: exit 1 and the other portal is closed again', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as net.AddressInfo).port;
    const free = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-cfg-'));
    const cfg = path.join(dir, 'ports.yaml');
    writeFileSync(
      cfg,
      `devices: [{ name: r, ram: { size: 16MiB } }]
targets:
  - iqn: iqn.2026-11.io.spindle:ports
    portals: ['127.0.0.1:${free}', '127.0.0.1:${taken}']
    luns: { 0: r }
`,
    );
    try {
      const r = await runMain(['serve', '--config', cfg, '--json']);
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toContain(`127.0.0.1:${taken}`);
      expect(await listening(free)).toBe(false);
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('check-config validates without serving', async () => {
    const r = await runMain(['check-config', '--config', path.join(REPO, 'examples/demo.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('iqn.2026-11.io.spindle:demo');
  });
});

function runMain(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [MAIN, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A one-node cluster configuration in a fresh directory: Redis at `redisPort` (which the
 * caller may leave closed), a file device, the admin API on a free port.
 */
async function oneNodeClusterConfig(clusterId: string, redisPort: number): Promise<{ dir: string; cfg: string }> {
  const port = await freePort();
  const apiPort = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-cfg-'));
  const cfg = path.join(dir, `${clusterId}.yaml`);
  writeFileSync(
    cfg,
    `clusterId: ${clusterId}
stateDir: ${dir}/state-{node}
api: { listen: "127.0.0.1:${apiPort}" }
cluster:
  redis: { url: 'redis://127.0.0.1:${redisPort}' }
  nodes:
    - id: a
      portals: ['127.0.0.1:${port}']
devices: [{ name: shared, file: { path: ${dir}/shared.img, size: 16MiB } }]
targets:
  - iqn: iqn.2026-11.io.spindle:${clusterId}
    portals: ['127.0.0.1:${port}']
    luns: { 0: shared }
`,
  );
  return { dir, cfg };
}

/**
 * `spindle serve --json` with `args`, returned once its admin API listens (the workers
 * start after that), for signals sent while the node is still starting. `output` is
 * stdout and stderr so far.
 */
async function serveUntilApiListens(
  args: string[],
): Promise<{ p: ChildProcess; exited: Promise<number | null>; output: () => string }> {
  const p = spawn(process.execPath, [MAIN, 'serve', ...args, '--json'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve) => {
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('admin API listening')) resolve();
    });
  });
  return { p, exited, output: () => out };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('portals', () => {
  it('serves one target on IPv4 and IPv6 portals; SendTargets lists both with their group tags', async () => {
    const v6 = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(0, '::1', () => s.close(() => resolve(true)));
    });
    if (!v6) return; // no IPv6 loopback on this machine
    const t = await startTarget({
      yaml: ({ port, iqn }) => `
devices: [{ name: r, ram: { size: 16MiB } }]
targets:
  - iqn: ${iqn}
    alias: six
    portals: ['127.0.0.1:${port}', '[::1]:${port}']
    luns: { 0: r }
`,
    });
    try {
      const r = await run('iscsi-ls', ['-s', `iscsi://[::1]:${t.port}`]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Target:${t.iqn} Portal:[::1]:${t.port},2`);
      expect(r.stdout).toContain(`Target:${t.iqn} Portal:127.0.0.1:${t.port},1`);
      const inq = await run('iscsi-inq', [`iscsi://[::1]:${t.port}/${t.iqn}/0`]);
      expect(inq.code, inq.stderr).toBe(0);
    } finally {
      await t.stop();
      cleanup(t);
    }
  });
});
