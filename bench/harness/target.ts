/** A target under test as the measurements see it: where its LUs are and its process. */
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited, run, tail } from './processes.ts';

export type TargetKind = 'spindle' | 'tgtd';

/** One data LU of a target. */
export interface Lu {
  /** iscsi://host:port/iqn/lun, for qemu-img. */
  readonly url: string;
  readonly lun: number;
}

export interface RunningTarget {
  /** What the tables call it: "spindle", "tgtd", "spindle s1/l2", "cluster node a". */
  readonly name: string;
  readonly kind: TargetKind;
  /** The process whose CPU time is charged to the target (all its threads). */
  readonly pid: number;
  readonly host: string;
  readonly port: number;
  readonly iqn: string;
  readonly lus: readonly Lu[];
  /** Files to flush (`sync FILE`) before each measured run, so no run pays for another's writeback. */
  readonly syncFiles: readonly string[];
  /** How it was set up, for the JSON result (config, tgtadm commands, files). */
  readonly setup: Readonly<Record<string, unknown>>;
}

export function luUrl(host: string, port: number, iqn: string, lun: number): string {
  return `iscsi://${host}:${port}/${iqn}/${lun}`;
}

/** Threads of a process right now (/proc/<pid>/task), for the record. */
export function threadCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return Number.NaN;
  }
}

/**
 * Waits until the LU answers READ CAPACITY(16) through a real login, which proves the
 * whole path works (not merely that a port is open), and checks its size.
 */
export async function waitForLu(
  url: string,
  child: ChildProcess,
  logFile: string,
  bytes: number,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (exited(child)) {
      throw new Error(
        `target exited (${child.exitCode ?? child.signalCode}) before serving:\n${await tail(logFile)}`,
      );
    }
    const r = await run('iscsi-readcapacity16', [url], 10_000);
    if (r.code === 0) {
      const m = /Total size:\s*(\d+)/.exec(r.stdout);
      if (m !== null && Number(m[1]) !== bytes) {
        throw new Error(`LU at ${url} has ${m[1]} bytes, expected ${bytes}`);
      }
      return;
    }
    last = (r.stderr || r.stdout).trim();
    await sleep(250);
  }
  throw new Error(`LU at ${url} not ready after ${timeoutMs} ms: ${last}\n${await tail(logFile)}`);
}
