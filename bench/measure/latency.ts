/**
 * Per-command latency, by running bench/latency-probe.ts (its own process) against a
 * target: the same client against both targets, so the comparison is fair.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { ProbeOutput } from '../latency-probe.ts';
import { ProbeOp } from '../probe/iscsi-client.ts';
import { REPO, run } from '../harness/processes.ts';
import type { RunningTarget } from '../harness/target.ts';
import type { Workload } from '../workloads.ts';
import { asClient } from '../harness/placement.ts';

const PROBE = path.join(REPO, 'bench', 'latency-probe.ts');

export interface ProbeRequest {
  readonly op: ProbeOp;
  readonly size: number;
  readonly depth: number;
  readonly step: number;
  readonly count: number;
  readonly lu?: number;
}

export function probeRequestFor(w: Workload, count: number): ProbeRequest {
  return { op: w.write ? ProbeOp.WRITE : ProbeOp.READ, size: w.size, depth: w.depth, step: w.step, count };
}

export async function runProbe(target: RunningTarget, req: ProbeRequest): Promise<ProbeOutput> {
  const lu = target.lus[req.lu ?? 0];
  if (lu === undefined) throw new Error(`${target.name} has no LU ${req.lu ?? 0}`);
  if (target.syncFiles.length > 0) execFileSync('sync', [...target.syncFiles]);
  // prettier-ignore
  const args = [
    PROBE, '--host', target.host, '--port', String(target.port), '--iqn', target.iqn,
    '--lun', String(lu.lun), '--op', req.op, '--size', String(req.size), '--depth', String(req.depth),
    '--step', String(req.step), '--count', String(req.count),
  ];
  const r = await run(...asClient(process.execPath, args), 300_000);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) {
    throw new Error(
      `latency probe against ${target.name} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`,
    );
  }
  return JSON.parse(line) as ProbeOutput;
}
