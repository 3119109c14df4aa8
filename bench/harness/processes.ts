/**
 * Processes the benchmark starts, and their teardown. Everything started is undone on a
 * normal exit, on failure and on Ctrl-C: daemons through a stack of undo actions (run in
 * reverse, once), short-lived commands (qemu-img, tgtadm, the latency probe) by SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { asTarget } from './placement.ts';

export const REPO = path.resolve(import.meta.dirname, '..', '..');

// ---------------------------------------------------------------------------------------------
// Cleanup: a stack of undo actions run once, on normal exit, error or signal.

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;

export function onCleanup(undo: () => Promise<void>): void {
  cleanups.push(undo);
}

/** A mark to unwind to: what was pushed after it is undone by {@link unwindTo}. */
export function cleanupMark(): number {
  return cleanups.length;
}

/** Undoes (in reverse) everything pushed since `mark`; errors are logged, not thrown. */
export async function unwindTo(mark: number): Promise<void> {
  while (cleanups.length > mark) {
    await cleanups.pop()!().catch((e: unknown) => console.error(`bench: cleanup step failed: ${String(e)}`));
  }
}

export function runCleanups(): Promise<void> {
  cleaning ??= unwindTo(0);
  return cleaning;
}

/** Short-lived commands in flight, killed first on abort. */
const active = new Set<ChildProcess>();
let aborted = false;

export function installSignalHandlers(): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\nbench: ${sig}, tearing down`);
      aborted = true; // no new commands start from here on
      for (const child of active) child.kill('SIGKILL');
      void runCleanups().finally(() => process.exit(130));
    });
  }
}

/** Whether Ctrl-C (or SIGTERM) is tearing the run down: failures from here on are expected. */
export function isAborted(): boolean {
  return aborted;
}

// ---------------------------------------------------------------------------------------------
// Commands

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (killed after timeoutMs). Never rejects for a non-zero exit. */
export function run(
  cmd: string,
  args: readonly string[],
  timeoutMs = 120_000,
  opts: { onSpawn?: (child: ChildProcess) => void } = {},
): Promise<RunResult> {
  if (aborted) return Promise.reject(new Error('aborted'));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO });
    active.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('spawn', () => opts.onSpawn?.(child));
    child.on('error', (err) => {
      active.delete(child);
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      active.delete(child);
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function mustRun(cmd: string, args: readonly string[], timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

/** Whether `cmd` is on the PATH. */
export function onPath(cmd: string): boolean {
  return process.env['PATH']?.split(':').some((dir) => existsSync(path.join(dir, cmd))) ?? false;
}

// ---------------------------------------------------------------------------------------------
// Daemons

/** Spawns a long-running daemon, logging to a file; cleanup stops it (TERM, then KILL). */
export async function startDaemon(
  cmd: string,
  args: readonly string[],
  logFile: string,
  env?: NodeJS.ProcessEnv,
): Promise<ChildProcess> {
  const log = await open(logFile, 'w');
  // Long-lived processes are the targets (and Redis): pinned with them under --pin-clients.
  const [file, argv] = asTarget(cmd, args);
  const child = spawn(file, argv, { stdio: ['ignore', log.fd, log.fd], cwd: REPO, env: env ?? process.env });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  try {
    await spawned;
  } finally {
    await log.close(); // the child has its own copy of the descriptor
  }
  onCleanup(() => stopChild(child));
  return child;
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (exited(child)) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timedOut = await Promise.race([done.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await done;
  }
}

/** A TCP port free on `host` right now (ports are per address: 127.0.0.2 has its own). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

export async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
