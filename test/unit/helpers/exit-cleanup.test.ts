/**
 * exit-cleanup kills tracked children whichever way the test process ends: a normal exit,
 * a SIGTERM (vitest stopping a worker), and a SIGKILL (only the watchdog can act); and it
 * deletes registered directories on the first two.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { reapOnExit, trackedPids } from '../../helpers/exit-cleanup.ts';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/reaper-parent.ts');

/** Alive = exists and is not a zombie waiting for its (new) parent to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitDead(pid: number, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/** Runs the fixture; resolves with the grandchild's pid, the fixture's dir and how it ended. */
async function runParent(how: string): Promise<{ pid: number; dir: string; signal: string | null }> {
  const p = spawn(process.execPath, [FIXTURE, how], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const signal = await new Promise<string | null>((r) => p.once('exit', (_code, sig) => r(sig)));
  const [pidText, dir] = out.trim().split(' ');
  const pid = Number(pidText);
  expect(pid).toBeGreaterThan(0);
  expect(dir).toMatch(/spindle-exit-cleanup-/);
  return { pid, dir: dir!, signal };
}

describe('exit cleanup', () => {
  it('kills tracked children and deletes registered directories on a normal exit', async () => {
    const { pid, dir, signal } = await runParent('exit');
    expect(signal).toBeNull();
    expect(await waitDead(pid)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it('does the same on SIGTERM, and the process still dies of the signal', async () => {
    const { pid, dir, signal } = await runParent('sigterm');
    expect(signal).toBe('SIGTERM');
    expect(await waitDead(pid)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it('kills tracked children when the process is SIGKILLed (the watchdog)', async () => {
    const { pid, dir, signal } = await runParent('sigkill');
    rmSync(dir, { recursive: true, force: true });
    expect(signal).toBe('SIGKILL');
    expect(await waitDead(pid)).toBe(true);
  });

  it('forgets a child once it has exited', async () => {
    const c = spawn('sleep', ['60'], { stdio: 'ignore' });
    reapOnExit(c);
    expect(trackedPids()).toContain(c.pid);
    c.kill('SIGKILL');
    await new Promise((r) => c.once('exit', r));
    expect(trackedPids()).not.toContain(c.pid);
  });
});
