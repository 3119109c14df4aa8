/**
 * CPU placement of targets and clients (`--pin-clients`): every target process (spindle,
 * tgtd, and Redis in cluster mode) on CPU 0, every client (qemu-img, the latency probe)
 * on the other CPUs, through taskset(1) at spawn, so every thread a process starts later
 * inherits the mask.
 *
 * Unpinned, on a small machine the clients compete with the target for the same cores:
 * a target that serves 5× tgtd's IOPS has clients that need 5× the CPU, and the host
 * scheduler, not the target, then decides which session runs (per-session fairness) and
 * how much of the target's CPU time is spent waiting for a core (docs/design-notes.md,
 * Performance: fairness). Pinned, the numbers describe the target. Off by default: a
 * default run measures what a user of this machine would see.
 */

export interface Placement {
  /** taskset CPU list for targets. */
  readonly target: string;
  /** taskset CPU list for clients. */
  readonly clients: string;
}

/** Targets on CPU 0, clients on the rest; throws on a machine with one core. */
export function placementFor(cores: number): Placement {
  if (!(cores >= 2)) throw new Error(`--pin-clients needs at least 2 cores, this machine has ${cores}`);
  return { target: '0', clients: cores === 2 ? '1' : `1-${cores - 1}` };
}

let current: Placement | null = null;

/** Set the placement for every process spawned from now on (null: none). */
export function usePlacement(p: Placement | null): void {
  current = p;
}

export function currentPlacement(): Placement | null {
  return current;
}

/** The command line that runs `cmd args` as a target (pinned when a placement is set). */
export function asTarget(cmd: string, args: readonly string[]): [string, string[]] {
  return current === null ? [cmd, [...args]] : ['taskset', ['-c', current.target, cmd, ...args]];
}

/** The command line that runs `cmd args` as a client (pinned when a placement is set). */
export function asClient(cmd: string, args: readonly string[]): [string, string[]] {
  return current === null ? [cmd, [...args]] : ['taskset', ['-c', current.clients, cmd, ...args]];
}
