/**
 * The operator's node commands over the admin API (spindle status, sessions, luns,
 * reload, logout): human tables by default, the API's JSON with --json, exit codes
 * scripts can rely on (cli.ts EXIT):
 *
 *   0 done (status: the node is ready)       3 the API cannot be reached
 *   1 failed (status: not ready; a reload     4 no answer in time (or --wait ran out)
 *     refused or failed; no such session)
 *   2 bad usage, or the configuration (or its token) is wrong
 */
import type { ApiConfig } from '../shared/config-types.ts';
import { ApiClient, ApiTimeout, ApiUnreachable, isApiError, type ApiResponse } from './api-client.ts';
import type { LunView, ReloadReport, SessionView, StatusView } from './admin/views.ts';
import { EXIT } from './cli.ts';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const STDIO: Output = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export interface ApiCommandOptions {
  readonly json: boolean;
  /** Seconds per request. */
  readonly timeoutSec: number;
  /** luns: wait this long for long operations to end, showing progress; logout: for the session to go. */
  readonly waitSec?: number;
  /** logout: close the connection instead of asking the initiator to log out. */
  readonly force?: boolean;
  /** Progress polling interval (tests shorten it). */
  readonly pollMs?: number;
}

/** A table with a header row, columns padded to their widest cell. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** 1536 -> "1.5KiB" (binary units, one decimal below 10). */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 || v >= 10 ? Math.round(v) : v.toFixed(1)}${units[u]}`;
}

function duration(sec: number): string {
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = Math.floor(sec % 60);
  return d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

function percent(p: number): string {
  return `${(p * 100).toFixed(1)}%`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `body` with a client; maps transport failures and auth refusals to exit codes. */
async function withClient(api: ApiConfig, o: ApiCommandOptions, io: Output, body: (c: ApiClient) => Promise<number>): Promise<number> {
  const client = new ApiClient(api, Math.max(1, o.timeoutSec) * 1000);
  try {
    return await body(client);
  } catch (err) {
    if (err instanceof ApiUnreachable) {
      io.err(`spindle: cannot reach the admin API: ${err.message}\n`);
      return EXIT.unreachable;
    }
    if (err instanceof ApiTimeout) {
      io.err(`spindle: the admin API did not answer: ${err.message}\n`);
      return EXIT.timeout;
    }
    throw err;
  }
}

/**
 * A non-2xx answer (other than those the command handles): the message, and the exit code
 * (401: the configuration's token is wrong or missing, a configuration problem).
 */
function failed(r: ApiResponse, io: Output): number {
  const msg = isApiError(r.body) ? `${r.body.error.message}${r.body.error.field === undefined ? '' : ` (field ${r.body.error.field})`}` : `HTTP ${r.status}`;
  io.err(`spindle: ${msg}\n`);
  return r.status === 401 || r.status === 403 ? EXIT.usage : EXIT.failure;
}

// ---- status ----

export function formatStatus(s: StatusView): string {
  let text = `node ${s.node} (cluster id ${s.clusterId}), spindle ${s.version}, up ${duration(s.uptimeSec)}: ${s.ready ? 'READY' : 'NOT READY'}\n`;
  for (const c of s.checks) text += `  ${c.name.padEnd(8)} ${c.ok ? 'ok  ' : 'FAIL'}  ${c.detail}\n`;
  text += `portals: ${s.portals.join(', ') || '-'}\n`;
  text += `workers: ${s.workers.lun} LUN, ${s.workers.session} session, ${s.workers.portal} portal\n`;
  text += `${s.counts.targets} target(s), ${s.counts.luns} LU(s), ${s.counts.sessions} session(s), ${s.counts.connections} connection(s)\n`;
  if (s.operations.length > 0) {
    text += 'operations:\n';
    for (const o of s.operations) text += `  ${o.device}: ${o.kind} ${o.state}${o.progress === null ? '' : ` ${percent(o.progress)}`} (${o.detail})\n`;
  }
  const c = s.cluster;
  if (c !== null) {
    text += `cluster: ${c.serving ? 'serving' : 'NOT serving'}, lease ${c.leaseHeld ? `${(c.leaseRemainingMs / 1000).toFixed(1)}s left` : 'not held'}, Redis round trip ${c.redisRttMs.toFixed(1)} ms, this node ${c.admin}${c.epochLost ? ', CLUSTER STATE LOST (spindle cluster recover)' : ''}\n`;
    text += table(
      ['NODE', 'LIVE', 'ADMIN', 'PORT GROUP', 'ALUA'],
      c.nodes.map((n) => [n.node, n.live ? 'yes' : 'no', n.admin, String(n.group), n.state]),
    );
  }
  return text;
}

export async function statusCommand(api: ApiConfig, o: ApiCommandOptions, io: Output = STDIO): Promise<number> {
  if (o.waitSec !== undefined) {
    // --wait: until the node is ready (starting, or the API not listening yet, is waited out).
    const deadline = Date.now() + o.waitSec * 1000;
    const quiet: Output = { out: () => {}, err: () => {} };
    for (;;) {
      const code = await statusCommand(api, { ...o, waitSec: undefined }, quiet);
      if (code === EXIT.ok || code === EXIT.usage || Date.now() > deadline) break;
      await sleep(o.pollMs ?? 1000);
    }
  }
  return withClient(api, o, io, async (c) => {
    const r = await c.get<StatusView>('/api/v1/status');
    if (r.status !== 200) return failed(r, io);
    io.out(o.json ? `${JSON.stringify(r.body, null, 2)}\n` : formatStatus(r.body));
    if (!r.body.ready && o.waitSec !== undefined) {
      io.err(`spindle: the node is not ready after ${o.waitSec}s\n`);
      return EXIT.timeout;
    }
    return r.body.ready ? EXIT.ok : EXIT.failure;
  });
}

// ---- sessions ----

export function formatSessions(list: readonly SessionView[]): string {
  if (list.length === 0) return 'no connections\n';
  return table(
    ['ID', 'INITIATOR', 'ISID', 'TARGET', 'PORTAL', 'PEER', 'STATE', 'DIGESTS', 'IN FLIGHT', 'CMD/S', 'READ/S', 'WRITE/S'],
    list.map((s) => [
      s.id || '-',
      s.initiatorName || '-',
      s.isid || '-',
      s.sessionType === 'Discovery' ? '(discovery)' : s.targetName || '-',
      `${s.portal.host.includes(':') ? `[${s.portal.host}]` : s.portal.host}:${s.portal.port}`,
      s.peer,
      s.phase,
      s.headerDigest === 'None' && s.dataDigest === 'None' ? 'none' : `H:${s.headerDigest} D:${s.dataDigest}`,
      String(s.commandsInFlight),
      s.rates === null ? '-' : s.rates.commandsPerSec.toFixed(0),
      s.rates === null ? '-' : humanBytes(s.rates.dataInBytesPerSec),
      s.rates === null ? '-' : humanBytes(s.rates.dataOutBytesPerSec),
    ]),
  );
}

export async function sessionsCommand(api: ApiConfig, o: ApiCommandOptions, io: Output = STDIO): Promise<number> {
  return withClient(api, o, io, async (c) => {
    const r = await c.get<SessionView[]>('/api/v1/sessions');
    if (r.status !== 200) return failed(r, io);
    io.out(o.json ? `${JSON.stringify(r.body, null, 2)}\n` : formatSessions(r.body));
    return EXIT.ok;
  });
}

// ---- luns ----

function reservationText(l: LunView): string {
  const r = l.reservations;
  const regs = r.registrations.length;
  if (r.reservation !== null) {
    const holder = r.reservation.holder === null ? 'all registrants' : r.reservation.holder.initiatorName;
    return `${r.reservation.typeName} by ${holder} (${regs} reg)`;
  }
  if (r.spc2 !== null) return `SPC-2 by ${r.spc2.initiatorName}`;
  return regs > 0 ? `${regs} reg` : '-';
}

function operationText(l: LunView): string {
  return (
    l.operations
      .map((op) => (op.kind === 'sanitize' ? `sanitize ${op.state === 'failed' ? 'FAILED' : percent(op.progress)}` : `xcopy ${humanBytes(op.bytesTransferred)}`))
      .join(', ') || '-'
  );
}

export function formatLuns(list: readonly LunView[]): string {
  if (list.length === 0) return 'no logical units\n';
  return table(
    ['NAME', 'SIZE', 'BLOCK', 'BACKING', 'EXPORTS', 'RESERVATION', 'ALUA', 'QD', 'OPERATION'],
    list.map((l) => [
      l.name,
      humanBytes(l.sizeBytes),
      String(l.blockSize),
      l.backing.type === 'file' ? `file ${l.backing.path ?? ''}` : 'ram',
      l.exports.map((e) => `${e.target}/${e.lun}`).join(' ') || '-',
      reservationText(l),
      l.alua.map((a) => `${a.group}:${a.state}`).join(' '),
      String(l.counters?.queueDepth ?? '-'),
      operationText(l),
    ]),
  );
}

export async function lunsCommand(api: ApiConfig, o: ApiCommandOptions, io: Output = STDIO): Promise<number> {
  return withClient(api, o, io, async (c) => {
    const r = await c.get<LunView[]>('/api/v1/luns');
    if (r.status !== 200) return failed(r, io);
    io.out(o.json ? `${JSON.stringify(r.body, null, 2)}\n` : formatLuns(r.body));
    if (o.waitSec === undefined) return EXIT.ok;
    // --wait: follow the long operations (sanitize, extended copy) until none runs.
    const deadline = Date.now() + o.waitSec * 1000;
    let list = r.body;
    let last = '';
    for (;;) {
      const running = list.filter((l) => l.operations.some((op) => op.kind !== 'sanitize' || op.state === 'running'));
      const failedOps = list.filter((l) => l.operations.some((op) => op.kind === 'sanitize' && op.state === 'failed'));
      const line = running.map((l) => `${l.name}: ${operationText(l)}`).join('; ');
      if (running.length === 0) {
        if (!o.json) io.out(failedOps.length === 0 ? 'no long operation running\n' : `failed: ${failedOps.map((l) => l.name).join(', ')}\n`);
        return failedOps.length === 0 ? EXIT.ok : EXIT.failure;
      }
      if (line !== last) {
        io.out(o.json ? `${JSON.stringify({ at: new Date().toISOString(), running: running.map((l) => ({ name: l.name, operations: l.operations })) })}\n` : `${line}\n`);
        last = line;
      }
      if (Date.now() > deadline) {
        io.err(`spindle: operations still running after ${o.waitSec}s\n`);
        return EXIT.timeout;
      }
      await sleep(o.pollMs ?? 1000);
      const next = await c.get<LunView[]>('/api/v1/luns');
      if (next.status !== 200) return failed(next, io);
      list = next.body;
    }
  });
}

// ---- reload ----

export function formatReload(r: ReloadReport): string {
  if (r.outcome === 'unchanged') return 'configuration reloaded: nothing changed\n';
  if (r.outcome === 'applied') {
    const c = r.changes;
    const parts: string[] = [];
    if (c !== undefined) {
      if (c.added.length > 0) parts.push(`added ${c.added.join(', ')}`);
      if (c.removed.length > 0) parts.push(`removed ${c.removed.join(', ')}`);
      if (c.grown.length > 0) parts.push(`grown ${c.grown.join(', ')}`);
      if (c.routes) parts.push('targets and LUN maps changed');
      if (c.alua) parts.push('ALUA states changed');
    }
    return `configuration reloaded: ${parts.join('; ') || 'applied'}\n`;
  }
  const head = r.outcome === 'refused' ? 'configuration reload refused; the running configuration stays:' : 'configuration reload failed; the running configuration stays:';
  return `${head}\n${r.problems.map((p) => `  ${p.path === '' ? '(file)' : p.path}: ${p.message}`).join('\n')}\n`;
}

export async function reloadCommand(api: ApiConfig, o: ApiCommandOptions, io: Output = STDIO): Promise<number> {
  return withClient(api, o, io, async (c) => {
    const r = await c.post<ReloadReport>('/api/v1/reload');
    if (isApiError(r.body)) return failed(r, io);
    const report = r.body;
    if (o.json) io.out(`${JSON.stringify(report, null, 2)}\n`);
    else if (report.outcome === 'applied' || report.outcome === 'unchanged') io.out(formatReload(report));
    else io.err(formatReload(report));
    return report.outcome === 'applied' || report.outcome === 'unchanged' ? EXIT.ok : EXIT.failure;
  });
}

// ---- logout ----

export async function logoutCommand(api: ApiConfig, session: string, o: ApiCommandOptions, io: Output = STDIO): Promise<number> {
  return withClient(api, o, io, async (c) => {
    const id = encodeURIComponent(session);
    const r = o.force === true ? await c.post(`/api/v1/sessions/${id}/close`, { reason: 'closed by spindle logout --force' }) : await c.post(`/api/v1/sessions/${id}/logout`, {});
    if (r.status !== 200 && r.status !== 202) return failed(r, io);
    const what = o.force === true ? `session ${session}: connection closed` : `session ${session}: the initiator was asked to log out`;
    if (o.waitSec === undefined || o.force === true) {
      io.out(o.json ? `${JSON.stringify(r.body)}\n` : `${what}\n`);
      return EXIT.ok;
    }
    if (!o.json) io.out(`${what}; waiting for it to go\n`);
    const deadline = Date.now() + o.waitSec * 1000;
    for (;;) {
      const s = await c.get(`/api/v1/sessions/${id}`);
      if (s.status === 404) {
        io.out(o.json ? `${JSON.stringify({ id: session, loggedOut: true })}\n` : `session ${session}: logged out\n`);
        return EXIT.ok;
      }
      if (s.status !== 200) return failed(s, io);
      if (Date.now() > deadline) {
        io.err(`spindle: session ${session} is still logged in after ${o.waitSec}s (the initiator may ignore the request: --force closes it)\n`);
        return EXIT.timeout;
      }
      await sleep(o.pollMs ?? 500);
    }
  });
}
