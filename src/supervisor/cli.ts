/**
 * Command-line parsing. Pure: no I/O, no process.exit, so it is testable as a function;
 * main.ts acts on the result.
 */

import { parseArgs } from 'node:util';
import type { SpindleConfig } from '../shared/config-types.ts';
import { LOG_LEVELS, type LogLevel } from './config/schema.ts';
import { formatSize } from './config/sizes.ts';

export type CliCommand =
  | {
      readonly kind: 'serve';
      readonly configPath: string;
      /** Overrides logging.level from the config file. */
      readonly logLevel?: LogLevel;
      /** Human-readable logs; defaults to whether stdout is a terminal. */
      readonly pretty: boolean;
      /** Which cluster node this process is (--node). */
      readonly node?: string;
      /** --api HOST:PORT: serve the admin API there (overrides api.listen). */
      readonly api?: string;
    }
  | { readonly kind: 'check-config'; readonly configPath: string; readonly node?: string; readonly api?: string }
  /** spindle cluster status: nodes, leases, port-group states, reservation holders (from Redis). */
  | { readonly kind: 'cluster-status'; readonly configPath: string; readonly json: boolean }
  /** spindle cluster recover [--apply]: after Redis lost the cluster state. */
  | { readonly kind: 'cluster-recover'; readonly configPath: string; readonly apply: boolean; readonly json: boolean }
  /** spindle node drain|undrain|fence NODE. */
  | {
      readonly kind: 'node-admin';
      readonly configPath: string;
      readonly action: 'drain' | 'undrain' | 'fence';
      readonly target: string;
      readonly json: boolean;
      readonly waitSec: number;
    }
  /** spindle status|sessions|luns|reload|logout: a node's admin API (api-commands.ts). */
  | {
      readonly kind: 'api';
      readonly command: ApiCommandName;
      readonly configPath: string;
      readonly json: boolean;
      /** Seconds per request (--timeout, default 10). */
      readonly timeoutSec: number;
      /** --api HOST:PORT: the API's address (overrides api.listen). */
      readonly api?: string;
      /** logout: the session id (TSIH). */
      readonly session?: string;
      /** status: wait to be ready; luns: follow long operations; logout: wait for the session to go (--wait SEC). */
      readonly waitSec?: number;
      /** logout --force: close the connection instead of asking. */
      readonly force?: boolean;
    }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'version' }
  /** Bad usage: print `message` (and a hint to --help) on stderr, exit 2. */
  | { readonly kind: 'usage-error'; readonly message: string };

/** The commands that talk to a node's admin API. */
export const API_COMMANDS = ['status', 'sessions', 'luns', 'reload', 'logout'] as const;
export type ApiCommandName = (typeof API_COMMANDS)[number];

export const EXIT = {
  ok: 0,
  failure: 1,
  /** Bad usage or an invalid configuration. */
  usage: 2,
  /** The cluster's Redis (or a node's admin API) cannot be reached. */
  unreachable: 3,
  /** A waited-for state (a node drained) did not come in time. */
  timeout: 4,
} as const;

export const USAGE = `spindle: a clustered SCSI target (iSCSI)

Usage:
  spindle serve --config FILE [--node ID] [--log-level LEVEL] [--pretty | --json] [--api HOST:PORT]
  spindle check-config --config FILE [--node ID] [--api HOST:PORT]
  spindle cluster status --config FILE [--json]
  spindle cluster recover --config FILE [--apply] [--json]
  spindle node drain|undrain|fence NODE --config FILE [--wait SEC] [--json]
  spindle sessions|reload --config FILE [--json] [--api HOST:PORT] [--timeout SEC]
  spindle status|luns --config FILE [--wait SEC] [--json] [--api HOST:PORT] [--timeout SEC]
  spindle logout SESSION --config FILE [--force] [--wait SEC] [--json] [--api HOST:PORT]
  spindle --help | --version

Commands:
  serve          run the target with the configuration in FILE
  check-config   validate FILE and print a summary (exit 0 when valid, 2 when not)
  cluster status nodes, leases, port-group states and reservation holders, from Redis
  cluster recover
                 after Redis lost the cluster state: show what the nodes still know;
                 --apply restores it and lets the nodes accept PR OUT again
  node drain     move NODE's port group to transitioning, then standby: initiators are
                 asked to log out and fail over, in-flight commands finish (waits --wait
                 seconds, default 60, for the node to report drained)
  node undrain   serve through NODE again (failback)
  node fence     NODE stops serving at once (its connections are closed)
  status         the node's admin API: readiness, portals, workers, sessions, long
                 operations, cluster membership (exit 0 ready, 1 not ready); --wait SEC
                 waits for the node to be ready (a readiness check for systemd, scripts)
  sessions       connections: initiator, ISID, session id (TSIH), portal, digests,
                 commands in flight, commands and bytes per second
  luns           logical units: size, exports, reservation, ALUA state, queue depth,
                 long operations; --wait SEC follows them (progress) until they end
  reload         re-read the configuration file (as SIGHUP) and report what changed, or
                 every problem that made the node refuse it (exit 1)
  logout         ask the initiator of session SESSION (its id from spindle sessions) to
                 log out; --force closes the connection instead; --wait SEC waits for it

Exit codes: 0 done, 1 failed, 2 bad usage or configuration (or a wrong API token),
3 Redis or the admin API unreachable, 4 timed out waiting.

The admin API commands find the node's API (and its token) in the configuration's
api section; --api HOST:PORT overrides the address (also for serve).

Options:
  -c, --config FILE     configuration file (YAML)
  -n, --node ID         the cluster node this process is (else SPINDLE_NODE_ID, else nodeId)
  -l, --log-level LEVEL one of ${LOG_LEVELS.join(', ')} (overrides logging.level)
      --pretty          human-readable logs (default when stdout is a terminal)
      --json            JSON logs, one object per line (default otherwise); for the
                        other commands: JSON output for scripts
      --api HOST:PORT   the admin API's address (overrides api.listen)
      --timeout SEC     admin API commands: seconds per request (default 10)
      --force           logout: close the connection instead of asking
  -h, --help            show this help
  -v, --version         show the version
`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  node: { type: 'string', short: 'n' },
  apply: { type: 'boolean' },
  wait: { type: 'string' },
  'log-level': { type: 'string', short: 'l' },
  pretty: { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  api: { type: 'string' },
  force: { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

const COMMANDS = ['serve', 'check-config'] as const;

/** Parses arguments (without the node and script entries, i.e. process.argv.slice(2)). */
export function parseCli(
  argv: readonly string[],
  stdoutIsTty: boolean = process.stdout.isTTY === true,
): CliCommand {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs messages name the option and are fine to show as they are.
    return { kind: 'usage-error', message: err instanceof Error ? err.message : String(err) };
  }
  const { values, positionals } = parsed;
  if (values.help === true || positionals[0] === 'help') return { kind: 'help', text: USAGE };
  if (values.version === true) return { kind: 'version' };

  const [command, ...extra] = positionals;
  if (command === 'cluster' || command === 'node') return parseClusterCommand(command, extra, values);
  if ((API_COMMANDS as readonly string[]).includes(command ?? '')) return parseApiCommand(command as ApiCommandName, extra, values);
  if (command === undefined)
    return { kind: 'usage-error', message: 'missing command (serve or check-config)' };
  if (!(COMMANDS as readonly string[]).includes(command)) {
    return { kind: 'usage-error', message: `unknown command "${command}" (expected serve or check-config)` };
  }
  if (extra.length > 0) return { kind: 'usage-error', message: `unexpected argument "${extra[0]}"` };
  const configPath = values.config;
  if (configPath === undefined || configPath === '') {
    return { kind: 'usage-error', message: `${command} needs --config FILE` };
  }

  if (command === 'check-config') {
    for (const opt of ['log-level', 'pretty', 'json'] as const) {
      if (values[opt] !== undefined)
        return { kind: 'usage-error', message: `--${opt} applies to serve only` };
    }
    return {
      kind: 'check-config',
      configPath,
      ...(values.node === undefined ? {} : { node: values.node }),
      ...(values.api === undefined ? {} : { api: values.api }),
    };
  }

  if (values.pretty === true && values.json === true) {
    return { kind: 'usage-error', message: '--pretty and --json are mutually exclusive' };
  }
  const level = values['log-level'];
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    return {
      kind: 'usage-error',
      message: `--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`,
    };
  }
  const pretty = values.pretty === true ? true : values.json === true ? false : stdoutIsTty;
  return {
    kind: 'serve',
    configPath,
    pretty,
    ...(level === undefined ? {} : { logLevel: level as LogLevel }),
    ...(values.node === undefined ? {} : { node: values.node }),
    ...(values.api === undefined ? {} : { api: values.api }),
  };
}

/** spindle status|sessions|luns|reload|logout: the admin API of the node the config describes. */
function parseApiCommand(
  command: ApiCommandName,
  args: readonly string[],
  values: { config?: string; json?: boolean; wait?: string; api?: string; force?: boolean; timeout?: string; pretty?: boolean; 'log-level'?: string },
): CliCommand {
  const configPath = values.config;
  if (configPath === undefined || configPath === '') return { kind: 'usage-error', message: `${command} needs --config FILE (the node's configuration: where its admin API listens)` };
  for (const opt of ['log-level', 'pretty'] as const) {
    if (values[opt] !== undefined) return { kind: 'usage-error', message: `--${opt} applies to serve only` };
  }
  let session: string | undefined;
  if (command === 'logout') {
    const [id, ...more] = args;
    if (id === undefined) return { kind: 'usage-error', message: 'logout needs the session id (the ID column of spindle sessions)' };
    if (!/^[0-9]{1,5}$/.test(id) || Number(id) < 1 || Number(id) > 0xffff) return { kind: 'usage-error', message: `the session id is a number 1-65535 (the ID column of spindle sessions), got "${id}"` };
    if (more.length > 0) return { kind: 'usage-error', message: `unexpected argument "${more[0]}"` };
    session = id;
  } else if (args.length > 0) {
    return { kind: 'usage-error', message: `unexpected argument "${args[0]}"` };
  }
  if (values.force === true && command !== 'logout') return { kind: 'usage-error', message: '--force applies to logout only' };
  if (values.wait !== undefined && command !== 'luns' && command !== 'logout' && command !== 'status') return { kind: 'usage-error', message: '--wait applies to status, luns and logout only' };
  const waitSec = values.wait === undefined ? undefined : Number(values.wait);
  if (waitSec !== undefined && (!Number.isFinite(waitSec) || waitSec < 0)) return { kind: 'usage-error', message: `--wait must be a number of seconds, got "${values.wait}"` };
  const timeoutSec = values.timeout === undefined ? 10 : Number(values.timeout);
  if (!Number.isFinite(timeoutSec) || timeoutSec <= 0) return { kind: 'usage-error', message: `--timeout must be a positive number of seconds, got "${values.timeout}"` };
  return {
    kind: 'api',
    command,
    configPath,
    json: values.json === true,
    timeoutSec,
    ...(values.api === undefined ? {} : { api: values.api }),
    ...(session === undefined ? {} : { session }),
    ...(waitSec === undefined ? {} : { waitSec }),
    ...(values.force === true ? { force: true } : {}),
  };
}

/** spindle cluster ... / spindle node ... */
function parseClusterCommand(
  command: 'cluster' | 'node',
  args: readonly string[],
  values: { config?: string; json?: boolean; apply?: boolean; wait?: string },
): CliCommand {
  const configPath = values.config;
  if (configPath === undefined || configPath === '') return { kind: 'usage-error', message: `${command} needs --config FILE` };
  const json = values.json === true;
  const [sub, ...rest] = args;
  if (command === 'cluster') {
    if (rest.length > 0) return { kind: 'usage-error', message: `unexpected argument "${rest[0]}"` };
    if (sub === 'status') return { kind: 'cluster-status', configPath, json };
    if (sub === 'recover') return { kind: 'cluster-recover', configPath, apply: values.apply === true, json };
    return { kind: 'usage-error', message: `unknown cluster command "${sub ?? ''}" (expected status or recover)` };
  }
  if (sub !== 'drain' && sub !== 'undrain' && sub !== 'fence')
    return { kind: 'usage-error', message: `unknown node command "${sub ?? ''}" (expected drain, undrain or fence)` };
  const [target, ...more] = rest;
  if (target === undefined) return { kind: 'usage-error', message: `node ${sub} needs the node id` };
  if (more.length > 0) return { kind: 'usage-error', message: `unexpected argument "${more[0]}"` };
  const waitSec = values.wait === undefined ? 60 : Number(values.wait);
  if (!Number.isFinite(waitSec) || waitSec < 0) return { kind: 'usage-error', message: `--wait must be a number of seconds, got "${values.wait}"` };
  return { kind: 'node-admin', configPath, action: sub, target, json, waitSec };
}

/** The human summary `check-config` prints for a valid configuration. */
export function describeConfig(config: SpindleConfig, source: string): string {
  const out: string[] = [];
  out.push(`${source}: configuration is valid`);
  out.push(`  cluster ${config.clusterId}, node ${config.nodeId}, state in ${config.stateDir}`);
  out.push(
    `  workers: ${config.workers.session} session, ${config.workers.lun} LUN; log level ${config.logging.level}`,
  );
  const t = config.iscsi;
  out.push(
    `  iscsi: MaxRecvDataSegmentLength ${t.maxRecvDataSegmentLength}, MaxBurstLength ${t.maxBurstLength}, ` +
      `FirstBurstLength ${t.firstBurstLength}, MaxOutstandingR2T ${t.maxOutstandingR2T}, ` +
      `max transfer ${formatSize(t.maxTransferLength)}, ${t.maxConnectionsPerPortal} connections/portal, ` +
      `login timeout ${t.loginTimeoutSec}s`,
  );
  out.push(
    `  sessions: ${t.maxSessionsPerTarget} per target; NOP-In pings ` +
      (t.nopIntervalSec === 0 ? 'off' : `every ${t.nopIntervalSec}s (timeout ${t.nopTimeoutSec}s)`) +
      `; auth failure backoff ${t.authBackoffMaxSec === 0 ? 'off' : `up to ${t.authBackoffMaxSec}s`}`,
  );
  out.push(`  devices (${config.devices.length}):`);
  for (const d of config.devices) {
    const b = d.backing;
    const backing =
      b.type === 'ram' || b.type === 'null'
        ? b.type
        : b.type === 'cdrom'
          ? `cdrom ${b.path ?? '(no disc)'}`
          : `${b.type} ${b.path}`;
    const size = b.type === 'cdrom' ? 'size of the image' : b.size === undefined ? 'size of the device' : formatSize(b.size);
    const flags =
      b.type === 'cdrom'
        ? [`${d.blockSize}-byte blocks`, 'read-only']
        : [`${d.blockSize}-byte blocks`, d.writeCache, d.readOnly ? 'read-only' : 'read-write'];
    out.push(`    ${d.name}: ${backing}, ${size}, ${flags.join(', ')}`);
  }
  out.push(`  targets (${config.targets.length}):`);
  for (const tg of config.targets) {
    const portals = tg.portals.map((p) =>
      p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`,
    );
    const mutual = tg.auth?.mutualChap === undefined ? '' : `, mutual CHAP as ${tg.auth.mutualChap.user}`;
    const auth = tg.auth?.chap === undefined ? 'no auth' : `CHAP user ${tg.auth.chap.user}${mutual}`;
    out.push(
      `    ${tg.iqn}${tg.alias === undefined ? '' : ` (${tg.alias})`} on ${portals.join(', ')}, ${auth}`,
    );
    const luns = Object.entries(tg.luns).sort(([a], [b]) => Number(a) - Number(b));
    for (const [lun, dev] of luns) out.push(`      LUN ${lun}: ${dev}`);
  }
  const dchap = config.discovery.auth?.chap;
  const dmutual = config.discovery.auth?.mutualChap;
  const dmutualText = dmutual === undefined ? '' : `, mutual CHAP as ${dmutual.user}`;
  out.push(`  discovery: ${dchap === undefined ? 'no auth' : `CHAP user ${dchap.user}${dmutualText}`}`);
  const api = config.api;
  out.push(
    api === undefined
      ? '  admin API: none (no api section)'
      : `  admin API: http://${api.listen.host.includes(':') ? `[${api.listen.host}]` : api.listen.host}:${api.listen.port}/api/v1 and /metrics, ${api.token === undefined ? 'no token (loopback)' : 'bearer token required'}`,
  );
  const c = config.cluster;
  if (c !== undefined) {
    const redis = c.redis.url ?? `sentinels ${c.redis.sentinels?.map((p) => `${p.host}:${p.port}`).join(', ')} (master ${c.redis.masterName ?? 'spindle'})`;
    out.push(`  cluster: ${c.nodes.length} nodes (this one: ${config.nodeId}); state in ${redis}; lease ${c.lease.ttlMs / 1000}s, renewed every ${c.lease.renewMs / 1000}s, fenced ${c.lease.marginMs / 1000}s early`);
    for (const n of c.nodes) out.push(`    ${n.id}: ${n.portals.map((p) => (p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`)).join(', ')}`);
  }
  return out.join('\n');
}
