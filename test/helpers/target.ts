/**
 * Starts the real spindle target (the CLI entry, as an operator would) on free
 * loopback ports with a generated config, and waits until it reports ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN = path.join(REPO, 'src/supervisor/main.ts');

/**
 * A port that was free on `host` a moment ago (the kernel's pick, released at once; a
 * racing process may still take it, so launchers that can retry do). Ports are per
 * address: 127.0.0.2 is a separate address from 127.0.0.1 (all of 127/8 is loopback on
 * Linux), so a cluster test can give every node its own address.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface StartedTarget {
  port: number;
  iqn: string;
  dir: string;
  proc: ChildProcess;
  /** All output so far (JSON log lines). */
  output(): string;
  /** iscsi://127.0.0.1:PORT/IQN/LUN */
  url(lun?: number, auth?: { user: string; secret: string }): string;
  /** Send a signal and resolve with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface TargetOptions {
  /** YAML for `devices:` items and target extras; a default 64 MiB RAM disk otherwise. */
  yaml?: (ctx: { port: number; iqn: string; dir: string }) => string;
  iqn?: string;
  readyTimeoutMs?: number;
  /** Extra environment for the target process. */
  env?: Record<string, string>;
}

export function defaultYaml(ctx: { port: number; iqn: string; dir: string }): string {
  return `
clusterId: test
logging: { level: info }
workers: { session: 2, lun: 2 }
devices:
  - name: ram0
    ram: { size: 64MiB }
  - name: file0
    file: { path: ${ctx.dir}/file0.img, size: 32MiB }
    blockSize: 4096
targets:
  - iqn: ${ctx.iqn}
    alias: test
    portals: ['127.0.0.1:${ctx.port}']
    luns: { 0: ram0, 1: file0 }
`;
}

/**
 * A config with one RAM disk `r` (of `size`) as LUN 0 of the test target, after `extra`
 * top-level YAML (e.g. `iscsi: { ... }` or `workers: { ... }` lines).
 */
export function ramDiskYaml(extra: string, size = '16MiB'): (ctx: { port: number; iqn: string }) => string {
  return ({ port, iqn }) => `
${extra}
devices: [{ name: r, ram: { size: ${size} } }]
targets:
  - iqn: ${iqn}
    portals: ['127.0.0.1:${port}']
    luns: { 0: r }
`;
}

export async function startTarget(opts: TargetOptions = {}): Promise<StartedTarget> {
  const port = await freePort();
  const iqn = opts.iqn ?? 'iqn.2026-11.io.spindle:test';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-test-'));
  const cfgPath = path.join(dir, 'spindle.yaml');
  writeFileSync(cfgPath, (opts.yaml ?? defaultYaml)({ port, iqn, dir }));
  return startWithConfig(cfgPath, { port, iqn, dir, readyTimeoutMs: opts.readyTimeoutMs, env: opts.env });
}

export async function startWithConfig(
  cfgPath: string,
  o: { port: number; iqn: string; dir: string; readyTimeoutMs?: number; env?: Record<string, string> },
): Promise<StartedTarget> {
  const proc = spawn(process.execPath, [MAIN, 'serve', '--config', cfgPath, '--json'], {
    cwd: REPO,
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const t: StartedTarget = {
    port: o.port,
    iqn: o.iqn,
    dir: o.dir,
    proc,
    output: () => out,
    url: (lun = 0, auth) =>
      `iscsi://${auth ? `${encodeURIComponent(auth.user)}%${encodeURIComponent(auth.secret)}@` : ''}127.0.0.1:${o.port}/${o.iqn}/${lun}`,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const code = await exited;
      return code;
    },
  };
  const deadline = Date.now() + (o.readyTimeoutMs ?? 30_000);
  while (!out.includes('target ready')) {
    if (proc.exitCode !== null) throw new Error(`target exited with ${proc.exitCode} before ready:\n${out}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`target not ready in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return t;
}

export function cleanup(t: StartedTarget | undefined): void {
  if (!t) return;
  rmSync(t.dir, { recursive: true, force: true });
}
