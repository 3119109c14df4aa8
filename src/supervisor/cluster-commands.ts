/**
 * The operator's cluster commands (spindle cluster status|recover, spindle node
 * drain|undrain|fence): human tables by default, JSON with --json, exit codes scripts
 * can rely on (cli.ts EXIT).
 */
import type { SpindleConfig } from '../shared/config-types.ts';
import { ClusterAdmin, type ClusterStatus } from './cluster/admin-client.ts';
import { AdminState } from './cluster/cluster-node.ts';
import { EXIT } from './cli.ts';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const STDIO: Output = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** A table with a header row, columns padded to their widest cell. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

const PR_TYPES: Record<number, string> = { 1: 'WE', 3: 'EA', 5: 'WE-RO', 6: 'EA-RO', 7: 'WE-AR', 8: 'EA-AR' };

export function formatStatus(s: ClusterStatus): string {
  let text = `cluster ${s.cluster}, epoch ${s.epoch ?? 'MISSING (Redis has no cluster state: see spindle cluster recover)'}\n\n`;
  text += table(
    ['NODE', 'LEASE', 'ADMIN', 'PORT GROUP', 'ALUA', 'PORTALS'],
    s.nodes.map((n) => [n.id + (n.sawLoss ? ' (saw state loss)' : ''), n.live ? `${(n.leaseMs / 1000).toFixed(1)}s` : 'dead', n.admin, String(n.portGroup), n.alua, n.portals.join(' ')]),
  );
  text += '\n';
  text += table(
    ['LU', 'VERSION', 'PRGEN', 'REGISTRATIONS', 'RESERVATION', 'HOLDER KEY', 'SPC-2'],
    s.lus.map((l) => [
      l.device,
      String(l.version),
      String(l.generation),
      String(l.registrations),
      l.reservation === null ? '-' : (PR_TYPES[l.reservation.type] ?? String(l.reservation.type)),
      l.reservation === null ? '-' : l.reservation.holder === null ? 'all registrants' : (l.reservation.key ?? '?'),
      l.spc2 ?? '-',
    ]),
  );
  return text;
}

async function connect(config: SpindleConfig, io: Output): Promise<ClusterAdmin | number> {
  try {
    return await ClusterAdmin.connect(config);
  } catch (err) {
    io.err(`spindle: cannot reach the cluster's Redis: ${(err as Error).message}\n`);
    return EXIT.unreachable;
  }
}

export async function clusterStatus(config: SpindleConfig, json: boolean, io: Output = STDIO): Promise<number> {
  const admin = await connect(config, io);
  if (typeof admin === 'number') return admin;
  try {
    const s = await admin.status();
    io.out(json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
    return EXIT.ok;
  } finally {
    await admin.close();
  }
}

export async function clusterRecover(config: SpindleConfig, apply: boolean, json: boolean, io: Output = STDIO): Promise<number> {
  const admin = await connect(config, io);
  if (typeof admin === 'number') return admin;
  try {
    const r = await admin.recover(apply);
    if (json) io.out(`${JSON.stringify(r, null, 2)}\n`);
    else {
      io.out(r.lus.length === 0 ? 'no node has left a recovery snapshot (no state loss was seen)\n' : table(['LU KEY', 'VERSION', 'FROM NODE'], r.lus.map((l) => [l.key, String(l.version), l.from])));
      io.out(r.applied ? `restored; new epoch ${r.epoch}: the nodes resynchronize and accept PR OUT again\n` : 'nothing changed: run again with --apply to restore these states\n');
    }
    return EXIT.ok;
  } finally {
    await admin.close();
  }
}

export async function nodeAdmin(
  config: SpindleConfig,
  action: 'drain' | 'undrain' | 'fence',
  node: string,
  waitSec: number,
  json: boolean,
  io: Output = STDIO,
): Promise<number> {
  const admin = await connect(config, io);
  if (typeof admin === 'number') return admin;
  try {
    const state = action === 'drain' ? AdminState.DRAINING : action === 'fence' ? AdminState.FENCED : AdminState.ACTIVE;
    try {
      await admin.setAdmin(node, state);
    } catch (err) {
      io.err(`spindle: ${(err as Error).message}\n`);
      return EXIT.failure;
    }
    if (action !== 'drain') {
      io.out(json ? `${JSON.stringify({ node, admin: state })}\n` : `node ${node}: ${state}\n`);
      return EXIT.ok;
    }
    // The node itself reports drained once its initiators logged out and commands finished.
    const deadline = Date.now() + waitSec * 1000;
    let last = '';
    for (;;) {
      const a = await admin.admin(node);
      if (!json && a !== last) io.out(`node ${node}: ${a}\n`);
      last = a;
      if (a === AdminState.DRAINED) {
        if (json) io.out(`${JSON.stringify({ node, admin: a })}\n`);
        return EXIT.ok;
      }
      if (a !== AdminState.DRAINING) {
        io.err(`spindle: node ${node} is ${a} (changed by someone else while draining)\n`);
        return EXIT.failure;
      }
      if (Date.now() > deadline) {
        io.err(`spindle: node ${node} did not report drained within ${waitSec}s (is it running?)\n`);
        return EXIT.timeout;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.close();
  }
}
