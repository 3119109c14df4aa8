/**
 * Launches N spindle nodes (separate `spindle serve` processes) that export the same LUs
 * from one shared file-backed device, all from ONE configuration file, each node on its
 * own loopback address (node i on 127.0.0.(i+1)) and free port.
 *
 * Per-node settings that one shared file cannot carry are given to each process in its
 * environment, which the cluster code must honour:
 * - SPINDLE_NODE_ID     the node's id (also passed as `--node ID`);
 * - SPINDLE_STATE_DIR   the node's own state directory. The file also says
 *                       `stateDir: DIR/state-{node}`, which names the same directory if
 *                       the cluster code expands a `{node}` placeholder instead; either
 *                       way nodes never share one;
 * - SPINDLE_REDIS_URL   set only for a node whose Redis traffic goes through its own
 *                       {@link TcpProxy} (`proxyPerNode`), overriding `cluster.redis.url`.
 *
 * Until spindle accepts the `cluster:` section, `standalone: true` launches the same nodes
 * the way today's spindle runs: one file per node, without `cluster:` and `--node`, listing
 * only that node's portal, still all on the one shared backing file. That exercises this
 * launcher (addresses, ports, readiness, kill/stop/restart, URLs) before the cluster code
 * lands.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { reapOnExit, removeNow, removeOnExit } from './exit-cleanup.ts';
import type { RedisServer } from './redis.ts';
import type { SentinelSetup } from './sentinel.ts';
import { MAIN, REPO, freePort } from './target.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

// ---------------------------------------------------------------------------------------------
// The configuration file

export interface ClusterNodeSpec {
  id: string;
  /** Loopback address of the node's portal. */
  host: string;
  port: number;
}

/** `cluster.redis`: a standalone URL, or Sentinel; a password only by file or env name. */
export interface ClusterRedisConfig {
  url?: string;
  sentinels?: readonly string[];
  masterName?: string;
  username?: string;
  passwordFile?: string;
  passwordEnv?: string;
  tls?: { ca: string; cert: string; key: string };
}

export interface LeaseConfig {
  ttlSec: number;
  renewSec: number;
  marginSec: number;
}

export const DEFAULT_LEASE: LeaseConfig = { ttlSec: 4, renewSec: 0.5, marginSec: 1.5 };
export const DEFAULT_IQN = 'iqn.2026-11.io.spindle:cluster';

export interface ClusterConfigSpec {
  clusterId?: string;
  /** Written as `nodeId:` (optional: --node / SPINDLE_NODE_ID override it). */
  nodeId?: string;
  /** `stateDir:` (the launcher writes DIR/state-{node}; nodes also get SPINDLE_STATE_DIR). */
  stateDir?: string;
  redis: ClusterRedisConfig;
  lease?: LeaseConfig;
  nodes: readonly ClusterNodeSpec[];
  /** The shared device: a file every node opens. */
  device: { name?: string; path: string; size?: string };
  iqn?: string;
  /** More top-level keys (logging, workers, iscsi, ...), written before `cluster`. */
  extra?: Record<string, unknown>;
}

/** `host:port`, with brackets for IPv6. */
export function portal(n: { host: string; port: number }): string {
  return n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`;
}

/** The configuration document (as plain values) for a cluster of `spec.nodes`. */
export function clusterConfig(spec: ClusterConfigSpec): Record<string, unknown> {
  const deviceName = spec.device.name ?? 'shared';
  const r = spec.redis;
  if ((r.url === undefined) === (r.sentinels === undefined))
    throw new Error('cluster.redis needs exactly one of url and sentinels');
  if (r.sentinels !== undefined && r.masterName === undefined) throw new Error('sentinels need a masterName');
  if (r.passwordFile !== undefined && r.passwordEnv !== undefined)
    throw new Error('give passwordFile or passwordEnv, not both');
  const redis: Record<string, unknown> = {};
  if (r.url !== undefined) redis['url'] = r.url;
  if (r.sentinels !== undefined) {
    redis['sentinels'] = [...r.sentinels];
    redis['masterName'] = r.masterName;
  }
  if (r.username !== undefined) redis['username'] = r.username;
  if (r.passwordFile !== undefined) redis['passwordFile'] = r.passwordFile;
  if (r.passwordEnv !== undefined) redis['passwordEnv'] = r.passwordEnv;
  if (r.tls !== undefined) redis['tls'] = { ...r.tls };
  return {
    clusterId: spec.clusterId ?? 'test-cluster',
    ...(spec.nodeId === undefined ? {} : { nodeId: spec.nodeId }),
    ...(spec.stateDir === undefined ? {} : { stateDir: spec.stateDir }),
    ...spec.extra,
    cluster: {
      redis,
      lease: { ...(spec.lease ?? DEFAULT_LEASE) },
      nodes: spec.nodes.map((n) => ({ id: n.id, portals: [portal(n)] })),
    },
    devices: [{ name: deviceName, file: { path: spec.device.path, size: spec.device.size ?? '64MiB' } }],
    targets: [
      {
        iqn: spec.iqn ?? DEFAULT_IQN,
        portals: spec.nodes.map(portal),
        luns: { 0: deviceName },
      },
    ],
  };
}

/** The configuration file text (YAML) for {@link clusterConfig}. */
export function clusterConfigYaml(spec: ClusterConfigSpec): string {
  return YAML.stringify(clusterConfig(spec));
}

/**
 * Today's single-node configuration for node `id` of `spec`: no `cluster:` section, only
 * that node's portal, its own state directory, the same shared device.
 */
export function standaloneNodeConfigYaml(spec: ClusterConfigSpec, id: string, stateDir: string): string {
  const doc = clusterConfig(spec);
  const node = spec.nodes.find((n) => n.id === id);
  if (node === undefined) throw new Error(`no node ${id}`);
  delete doc['cluster'];
  doc['nodeId'] = id;
  doc['stateDir'] = stateDir;
  const targets = doc['targets'] as { portals: string[] }[];
  for (const t of targets) t.portals = [portal(node)];
  return YAML.stringify(doc);
}

/** Node ids a, b, ..., z, then n26, n27, ... */
export function nodeId(i: number): string {
  return i < 26 ? String.fromCharCode(0x61 + i) : `n${i}`;
}

/**
 * Addresses and ports for `count` nodes: node i on 127.0.0.(i+1), with a port that was
 * free on that address (ports are per address, so the same number may repeat).
 */
export async function allocateNodes(count: number): Promise<ClusterNodeSpec[]> {
  if (count < 1 || count > 254) throw new RangeError(`node count ${count} out of 1..254`);
  const nodes: ClusterNodeSpec[] = [];
  for (let i = 0; i < count; i++) {
    const host = `127.0.0.${i + 1}`;
    nodes.push({ id: nodeId(i), host, port: await freePort(host) });
  }
  return nodes;
}

/** `cluster.redis` for a helper-started server or Sentinel deployment. */
export function redisConfigFor(r: RedisServer | SentinelSetup): ClusterRedisConfig {
  if ('masterName' in r) {
    const data = r.servers[0]!;
    return {
      sentinels: [...r.sentinels],
      masterName: r.masterName,
      ...(data.auth?.username === undefined ? {} : { username: data.auth.username }),
      ...(data.passwordFile === undefined ? {} : { passwordFile: data.passwordFile }),
    };
  }
  return {
    url: r.url,
    ...(r.auth?.username === undefined ? {} : { username: r.auth.username }),
    ...(r.passwordFile === undefined ? {} : { passwordFile: r.passwordFile }),
    ...(r.tls === undefined ? {} : { tls: { ca: r.tls.ca, cert: r.tls.cert, key: r.tls.key } }),
  };
}

// ---------------------------------------------------------------------------------------------
// Checking a file with the real CLI

/** `spindle check-config --config FILE`: exit status and output (synchronous, ~0.3 s). */
export function checkConfig(file: string): { ok: boolean; output: string } {
  const r = spawnSync(process.execPath, [MAIN, 'check-config', '--config', file], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// ---------------------------------------------------------------------------------------------
// The launcher

export interface ClusterStartOptions {
  /** How many nodes, or explicit specs (from {@link allocateNodes}). */
  nodes: number | readonly ClusterNodeSpec[];
  /** Redis: a helper-started server/deployment, or a ready `cluster.redis` section. */
  redis: RedisServer | SentinelSetup | ClusterRedisConfig;
  /**
   * A {@link TcpProxy} per node in front of a standalone Redis, given to the node as
   * SPINDLE_REDIS_URL, so a test can cut one node off from Redis.
   */
  proxyPerNode?: boolean;
  lease?: LeaseConfig;
  clusterId?: string;
  iqn?: string;
  /** Size of the shared device; default 64MiB. */
  deviceSize?: string;
  /** Top-level config extras; default `workers: { session: 1, lun: 1 }` (small nodes). */
  extra?: Record<string, unknown>;
  /** Environment for every node, on top of this process's. */
  env?: Record<string, string>;
  /** Per-node extra arguments to `serve`, by node index. */
  args?: (i: number) => string[];
  /** See the module comment; default false. */
  standalone?: boolean;
  /** Which nodes to start now; default all (the rest with `start(i)`). */
  start?: boolean | readonly number[];
  readyTimeoutMs?: number;
}

export interface ClusterNode extends ClusterNodeSpec {
  readonly index: number;
  readonly stateDir: string;
  /** The file this node was started with (the shared one, or its own when standalone). */
  readonly configPath: string;
  /** The Redis proxy of this node (proxyPerNode). */
  readonly proxy: TcpProxy | undefined;
  /** The running process, if any. */
  readonly proc: ChildProcess | undefined;
  readonly running: boolean;
  /** Everything the node printed, over all its incarnations. */
  output(): string;
}

export interface StartedCluster {
  readonly dir: string;
  /** The one cluster configuration file. */
  readonly configPath: string;
  readonly devicePath: string;
  readonly iqn: string;
  readonly nodes: readonly ClusterNode[];
  /** Start node i (not running) and wait for its 'target ready' line. */
  start(i: number): Promise<void>;
  /** SIGKILL node i and wait for the exit: a crash. */
  kill(i: number): Promise<void>;
  /** Signal node i (default SIGTERM) and wait for its exit code. */
  stop(i: number, signal?: NodeJS.Signals): Promise<number | null>;
  /** Stop node i (SIGTERM) if running, start it again, wait for ready. */
  restart(i: number): Promise<void>;
  /** iscsi://ADDR:PORT/IQN/LUN through node i's portal. */
  url(i: number, lun?: number): string;
  /** Wait until node i's output (current incarnation) matches. */
  waitForOutput(i: number, pattern: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Stop every node, close the proxies, delete the directory. */
  close(): Promise<void>;
}

const READY_LINE = 'target ready';
/** Stands for the node id in `stateDir` (see the module comment). */
export const NODE_PLACEHOLDER = '{node}';

export async function startCluster(opts: ClusterStartOptions): Promise<StartedCluster> {
  const specs = typeof opts.nodes === 'number' ? await allocateNodes(opts.nodes) : [...opts.nodes];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-cluster-'));
  removeOnExit(dir);
  const devicePath = path.join(dir, 'shared.img');
  const iqn = opts.iqn ?? DEFAULT_IQN;
  // A helper handle has methods; a ready `cluster.redis` section is plain data.
  const r = opts.redis;
  const redis =
    typeof (r as { close?: unknown }).close === 'function'
      ? redisConfigFor(r as RedisServer | SentinelSetup)
      : (r as ClusterRedisConfig);
  const readyMs = opts.readyTimeoutMs ?? 60_000;
  const standalone = opts.standalone === true;
  const proxies: (TcpProxy | undefined)[] = [];

  const spec: ClusterConfigSpec = {
    ...(opts.clusterId === undefined ? {} : { clusterId: opts.clusterId }),
    stateDir: path.join(dir, `state-${NODE_PLACEHOLDER}`),
    redis,
    lease: opts.lease ?? DEFAULT_LEASE,
    nodes: specs,
    device: { path: devicePath, size: opts.deviceSize ?? '64MiB' },
    iqn,
    extra: opts.extra ?? { workers: { session: 1, lun: 1 } },
  };
  const configPath = path.join(dir, 'cluster.yaml');
  writeFileSync(configPath, clusterConfigYaml(spec));

  type NodeState = {
    spec: ClusterNodeSpec;
    index: number;
    stateDir: string;
    configPath: string;
    env: NodeJS.ProcessEnv;
    args: string[];
    proxy: TcpProxy | undefined;
    proc: ChildProcess | undefined;
    exited: Promise<number | null> | undefined;
    out: string;
    /** Where the current incarnation's output starts. */
    mark: number;
  };
  const states: NodeState[] = [];
  const cleanupDir = async (): Promise<void> => {
    await Promise.all(proxies.map((p) => p?.close()));
    removeNow(dir);
  };

  try {
    if (opts.proxyPerNode === true) {
      if (redis.url === undefined) throw new Error('proxyPerNode needs a standalone Redis url');
      const u = new URL(redis.url);
      for (let i = 0; i < specs.length; i++) {
        proxies.push(await startTcpProxy({ target: { host: u.hostname, port: Number(u.port || 6379) } }));
      }
    }
    specs.forEach((s, i) => {
      const stateDir = path.join(dir, `state-${s.id}`);
      mkdirSync(stateDir);
      let nodeConfig = configPath;
      if (standalone) {
        nodeConfig = path.join(dir, `node-${s.id}.yaml`);
        writeFileSync(nodeConfig, standaloneNodeConfigYaml(spec, s.id, stateDir));
      }
      const proxy = proxies[i];
      let redisUrl: string | undefined;
      if (proxy !== undefined) {
        const u = new URL(redis.url!);
        u.hostname = proxy.host;
        u.port = String(proxy.port);
        redisUrl = u.toString();
      }
      states.push({
        spec: s,
        index: i,
        stateDir,
        configPath: nodeConfig,
        env: {
          ...process.env,
          ...opts.env,
          SPINDLE_NODE_ID: s.id,
          SPINDLE_STATE_DIR: stateDir,
          ...(redisUrl === undefined ? {} : { SPINDLE_REDIS_URL: redisUrl }),
        },
        args: [
          MAIN,
          'serve',
          '--config',
          nodeConfig,
          ...(standalone ? [] : ['--node', s.id]),
          '--json',
          ...(opts.args?.(i) ?? []),
        ],
        proxy,
        proc: undefined,
        exited: undefined,
        out: '',
        mark: 0,
      });
    });
  } catch (err) {
    await cleanupDir();
    throw err;
  }

  const node = (i: number): NodeState => {
    const st = states[i];
    if (st === undefined) throw new RangeError(`no node ${i} (cluster of ${states.length})`);
    return st;
  };
  const isRunning = (st: NodeState): boolean =>
    st.proc !== undefined && st.proc.exitCode === null && st.proc.signalCode === null;

  const waitForOutput = async (i: number, pattern: string | RegExp, timeoutMs = readyMs): Promise<void> => {
    const st = node(i);
    const deadline = Date.now() + timeoutMs;
    const hit = (): boolean => {
      const cur = st.out.slice(st.mark);
      return typeof pattern === 'string' ? cur.includes(pattern) : pattern.test(cur);
    };
    while (!hit()) {
      if (!isRunning(st)) {
        throw new Error(
          `node ${st.spec.id} exited (${st.proc?.exitCode ?? st.proc?.signalCode}) before ${pattern}:\n${st.out.slice(st.mark)}`,
        );
      }
      if (Date.now() > deadline)
        throw new Error(`node ${st.spec.id}: no ${pattern} in ${timeoutMs} ms:\n${st.out.slice(st.mark)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const start = async (i: number): Promise<void> => {
    const st = node(i);
    if (isRunning(st)) throw new Error(`node ${st.spec.id} is already running`);
    st.out += `--- start node ${st.spec.id} (${portal(st.spec)}) ---\n`;
    st.mark = st.out.length;
    const proc = spawn(process.execPath, st.args, {
      cwd: REPO,
      env: st.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    reapOnExit(proc);
    st.proc = proc;
    proc.stdout!.on('data', (d: Buffer) => (st.out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (st.out += d.toString()));
    st.exited = new Promise((r) => proc.once('exit', (code) => r(code)));
    try {
      await waitForOutput(i, READY_LINE);
    } catch (err) {
      proc.kill('SIGKILL');
      await st.exited;
      throw err;
    }
  };

  const stop = async (i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    const st = node(i);
    if (st.proc === undefined || st.exited === undefined) return null;
    if (isRunning(st)) st.proc.kill(signal);
    if (signal !== 'SIGKILL') {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), 30_000)));
      const first = await Promise.race([st.exited, late]);
      clearTimeout(timer);
      if (first === 'late') st.proc.kill('SIGKILL');
    }
    return st.exited;
  };

  const cluster: StartedCluster = {
    dir,
    configPath,
    devicePath,
    iqn,
    nodes: states.map((st) => ({
      get id() {
        return st.spec.id;
      },
      get host() {
        return st.spec.host;
      },
      get port() {
        return st.spec.port;
      },
      index: st.index,
      stateDir: st.stateDir,
      configPath: st.configPath,
      proxy: st.proxy,
      get proc() {
        return st.proc;
      },
      get running() {
        return isRunning(st);
      },
      output: () => st.out,
    })),
    start,
    kill: async (i) => {
      await stop(i, 'SIGKILL');
    },
    stop,
    restart: async (i) => {
      await stop(i);
      await start(i);
    },
    url: (i, lun = 0) => `iscsi://${portal(node(i).spec)}/${iqn}/${lun}`,
    waitForOutput,
    close: async () => {
      await Promise.all(states.map((_, i) => stop(i)));
      await cleanupDir();
    },
  };

  const toStart =
    opts.start === false
      ? []
      : opts.start === undefined || opts.start === true
        ? states.map((_, i) => i)
        : [...opts.start];
  try {
    // One at a time: N nodes booting their workers at once on two cores only slows each
    // one down, and a failure names the node that failed.
    for (const i of toStart) await start(i);
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}
