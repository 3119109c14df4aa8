/**
 * Makes sure what test helpers leave behind goes away with the test process, however it
 * goes: the processes they start (redis-server, redis-sentinel, spindle nodes) and their
 * temporary directories. On a shared machine an orphaned redis-server keeps its port,
 * memory and CPU until someone notices.
 *
 * Processes, three layers, because each covers a way of dying the others miss:
 * 1. `process.on('exit')`: a normal end, `process.exit()`, an uncaught exception.
 *    Synchronous SIGKILL to every tracked pid.
 * 2. SIGINT / SIGTERM / SIGHUP handlers. Node runs no 'exit' handlers when a signal's
 *    default action kills it, and vitest stops its fork workers with SIGTERM (a timed-out
 *    run, Ctrl-C). The handler kills the children and, if it was the only listener,
 *    re-raises the signal so the process still dies of it as it would have.
 * 3. A watchdog `sh` in its own session that reads "+PID" / "-PID" lines on a pipe from
 *    this process. When the pipe closes (this process is gone, even by SIGKILL or an OOM
 *    kill) it kills what is still listed. Pids leave the list when their process exits,
 *    so a recycled pid is never hit.
 *
 * Directories registered with {@link removeOnExit} are deleted by layers 1 and 2 (a
 * SIGKILLed test process leaves them in the temp dir, where the OS cleans up).
 *
 * Helpers still stop and delete their own things (afterAll); this is the safety net.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const tracked = new Set<ChildProcess>();
let watchdog: ChildProcess | undefined;
let installed = false;

const WATCHDOG_SCRIPT = `
pids=' '
while IFS= read -r line; do
  case "$line" in
    +*) pids="$pids\${line#+} " ;;
    -*) id=\${line#-}
        case "$pids" in *" $id "*) pids="\${pids%% $id *} \${pids#* $id }" ;; esac ;;
  esac
done
for p in $pids; do kill -9 "$p" 2>/dev/null; done
`;

const dirs = new Set<string>();

/** Kills every tracked child at once (SIGKILL) and deletes the directories: the process is going away. */
function killAll(): void {
  for (const child of tracked) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
  for (const dir of dirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {}
  }
}

function onSignal(signal: NodeJS.Signals): void {
  killAll();
  // Only ours: keep the default behaviour (die of the signal). Others: they decide.
  if (process.listenerCount(signal) === 1) {
    process.off(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

function install(): void {
  installed = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  try {
    watchdog = spawn('sh', ['-c', WATCHDOG_SCRIPT], {
      stdio: ['pipe', 'ignore', 'ignore'],
      // Own session: a Ctrl-C to the terminal's process group must not kill the watchdog
      // before the test process (its SIGINT handler may not get to run first).
      detached: true,
    });
    watchdog.on('error', () => (watchdog = undefined));
    watchdog.stdin!.on('error', () => {});
    // Neither the watchdog nor its pipe may keep the test process alive.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  } catch {
    watchdog = undefined;
  }
}

/** Tracks `child` until it exits: it is killed if the test process goes away first. */
export function reapOnExit(child: ChildProcess): void {
  if (!installed) install();
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  tracked.add(child);
  watchdog?.stdin?.write(`+${pid}\n`);
  child.once('exit', () => {
    tracked.delete(child);
    if (watchdog?.stdin?.writable) watchdog.stdin.write(`-${pid}\n`);
  });
}

/** Deletes `dir` when the test process ends, unless {@link removeNow} did it first. */
export function removeOnExit(dir: string): void {
  if (!installed) install();
  dirs.add(dir);
}

/** Deletes a directory registered with {@link removeOnExit} now. */
export function removeNow(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** Pids currently tracked (for tests of the helpers). */
export function trackedPids(): number[] {
  return [...tracked].map((c) => c.pid!);
}
