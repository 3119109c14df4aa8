/**
 * A Redis Sentinel deployment for failover tests: a master, one replica and three
 * sentinels (quorum 2), every process a real local binary on its own free loopback port,
 * tuned to fail over in seconds (down-after-milliseconds 1000, failover-timeout 3000).
 *
 * Sentinel's own periods are shortened too (SENTINEL DEBUG: INFO every second, hellos every
 * half second, TILT for 5 s instead of 30), so demoted masters rejoin quickly.
 *
 * `start` returns only when the deployment can fail over: the replica is in sync and every
 * sentinel knows the replica and the other sentinels (SENTINEL CKQUORUM says OK). Without
 * that wait, an early SENTINEL FAILOVER fails with NOGOODSLAVE and a killed master is never
 * replaced.
 *
 * `failover()` resolves once every running sentinel names the new master and that server
 * says it is a master (ROLE). In 'command' mode (SENTINEL FAILOVER) the old master is
 * demoted to a replica of the new one and its clients are disconnected by the sentinel; in
 * 'kill' mode it is SIGKILLed and stays down until the test restarts it (sentinels then
 * turn it into a replica).
 *
 * Sentinels only, not data servers, may sit behind a TLS port in real deployments; these
 * helpers keep the whole deployment plain TCP (TLS is covered by redis.ts alone).
 */
import type { RedisOptions } from 'ioredis';
import {
  type RedisAuth,
  type RedisServer,
  RedisReplyError,
  parseInfo,
  respCommand,
  startRedis,
} from './redis.ts';

export interface SentinelStartOptions {
  /** Default 'spindle'. */
  masterName?: string;
  /** Default 3. */
  sentinels?: number;
  /** Default 2 (a majority of 3). */
  quorum?: number;
  /** sentinel down-after-milliseconds; default 1000. */
  downAfterMs?: number;
  /** sentinel failover-timeout; default 3000. */
  failoverTimeoutMs?: number;
  /** Auth on the data servers (sentinels get auth-user/auth-pass, replicas masterauth). */
  auth?: RedisAuth;
  readyTimeoutMs?: number;
}

export interface HostPort {
  host: string;
  port: number;
}

export interface SentinelSetup {
  readonly masterName: string;
  /** Data servers: [initial master, initial replica]. Roles change with failovers. */
  readonly servers: readonly RedisServer[];
  /** The sentinel processes. */
  readonly sentinelServers: readonly RedisServer[];
  /** Sentinel addresses as a config file takes them: `['127.0.0.1:26379', ...]`. */
  readonly sentinels: readonly string[];
  /** The same as `{ host, port }` objects (ioredis `sentinels` option). */
  readonly sentinelEndpoints: readonly HostPort[];
  /** The master as the running sentinels agree on it (throws if they disagree). */
  master(): Promise<HostPort>;
  /** The data server that is master now. */
  masterServer(): Promise<RedisServer>;
  /**
   * Fail over and resolve with the old and new masters once every running sentinel
   * reports the new one and it answers ROLE as master.
   */
  failover(opts?: {
    mode?: 'command' | 'kill';
    timeoutMs?: number;
  }): Promise<{ from: RedisServer; to: RedisServer }>;
  /** Wait until `server` is a replica of the current master with the link up. */
  waitReplica(server: RedisServer, timeoutMs?: number): Promise<void>;
  /**
   * Wait until the replica has everything the master acknowledged (its replication offset
   * caught up): a failover then loses nothing.
   */
  caughtUp(timeoutMs?: number): Promise<void>;
  /** ioredis options for a Sentinel-aware client of this deployment. */
  clientOptions(): RedisOptions;
  /** Stop every process and delete their directories. */
  close(): Promise<void>;
}

/** Periods (ms) for SENTINEL DEBUG: see the comment where they are applied. */
const SENTINEL_DEBUG = ['info-period', 1_000, 'publish-period', 500, 'tilt-period', 5_000] as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined, or throws after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not reached in ${timeoutMs} ms${last ? ` (last error: ${last})` : ''}`);
    await sleep(100);
  }
}

/** A SENTINEL REPLICAS/SENTINELS entry (a flat [field, value, ...] array) as a map. */
function record(entry: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(entry))
    for (let i = 0; i + 1 < entry.length; i += 2) out[String(entry[i])] = String(entry[i + 1]);
  return out;
}

export async function startSentinel(opts: SentinelStartOptions = {}): Promise<SentinelSetup> {
  const masterName = opts.masterName ?? 'spindle';
  const count = opts.sentinels ?? 3;
  const quorum = opts.quorum ?? 2;
  const readyMs = opts.readyTimeoutMs ?? 30_000;
  const auth = opts.auth;
  const started: RedisServer[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(started.map((s) => s.close()));
  };

  try {
    // Both data servers carry masterauth: after a failover the old master replicates
    // from the new one and must log in to it.
    const replAuth: (readonly (string | number)[])[] =
      auth === undefined
        ? []
        : [
            ['masterauth', auth.password],
            ...(auth.username === undefined ? [] : [['masteruser', auth.username]]),
          ];
    const master = await startRedis({
      name: 'sentinel-master',
      auth,
      config: replAuth,
      backend: 'binary',
      readyTimeoutMs: readyMs,
    });
    started.push(master);
    const replica = await startRedis({
      name: 'sentinel-replica',
      auth,
      config: [...replAuth, ['replicaof', master.host, master.port]],
      backend: 'binary',
      readyTimeoutMs: readyMs,
    });
    started.push(replica);
    const servers = [master, replica];

    const sentinelConfig: (readonly (string | number)[])[] = [
      ['sentinel', 'monitor', masterName, master.host, master.port, quorum],
      ['sentinel', 'down-after-milliseconds', masterName, opts.downAfterMs ?? 1_000],
      ['sentinel', 'failover-timeout', masterName, opts.failoverTimeoutMs ?? 3_000],
      ['sentinel', 'parallel-syncs', masterName, 1],
      ...(auth === undefined ? [] : [['sentinel', 'auth-pass', masterName, auth.password]]),
      ...(auth?.username === undefined ? [] : [['sentinel', 'auth-user', masterName, auth.username]]),
    ];
    const sentinelServers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        startRedis({
          sentinel: true,
          name: `sentinel-${i}`,
          config: sentinelConfig,
          backend: 'binary',
          readyTimeoutMs: readyMs,
        }),
      ),
    );
    started.push(...sentinelServers);
    // Sentinel's internal periods are built for production: INFO every 10 s (so a demoted
    // or restarted old master is turned into a replica only up to 10 s later), hellos
    // every 2 s (peer discovery), TILT for 30 s after a 2 s timer hiccup (a loaded test
    // machine can trigger that, and a tilted sentinel does not fail over). SENTINEL DEBUG
    // (Redis 7.0+) shortens them; older sentinels keep their defaults, only slower.
    await Promise.all(
      sentinelServers.map((x) =>
        respCommand(x.endpoint(), ['SENTINEL', 'DEBUG', ...SENTINEL_DEBUG]).catch((err: unknown) => {
          if (!(err instanceof RedisReplyError)) throw err;
        }),
      ),
    );
    const sentinels = sentinelServers.map((s) => `${s.host}:${s.port}`);
    const sentinelEndpoints = sentinelServers.map((s) => ({ host: s.host, port: s.port }));

    const byAddress = (a: HostPort): RedisServer => {
      const s = servers.find((x) => x.host === a.host && x.port === a.port);
      if (s === undefined)
        throw new Error(`sentinels name ${a.host}:${a.port}, not one of this deployment's servers`);
      return s;
    };
    const askMaster = async (s: RedisServer): Promise<HostPort> => {
      const r = await respCommand(s.endpoint(), ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName]);
      if (!Array.isArray(r) || r.length !== 2)
        throw new Error(`sentinel ${s.port}: no master for ${masterName}`);
      return { host: String(r[0]), port: Number(r[1]) };
    };
    const master_ = async (): Promise<HostPort> => {
      const live = sentinelServers.filter((s) => s.running);
      const answers = await Promise.all(live.map(askMaster));
      const first = answers[0];
      if (first === undefined) throw new Error('no sentinel is running');
      if (answers.some((a) => a.host !== first.host || a.port !== first.port))
        throw new Error(
          `sentinels disagree on the master: ${answers.map((a) => `${a.host}:${a.port}`).join(', ')}`,
        );
      return first;
    };
    const roleOf = async (s: RedisServer): Promise<string> => {
      const r = await respCommand(s.endpoint(), ['ROLE'], 2_000);
      return Array.isArray(r) ? String(r[0]) : '';
    };
    /** What the server and the sentinels say about `server`, for a failure message. */
    const describe = async (server: RedisServer): Promise<string> => {
      const parts: string[] = [];
      const info = await respCommand(server.endpoint(), ['INFO', 'replication'], 2_000).then(
        (r) => parseInfo(String(r)),
        (e: unknown) => ({ error: String(e) }),
      );
      parts.push(`${server.name} (:${server.port}) INFO replication: ${JSON.stringify(info)}`);
      for (const x of sentinelServers.filter((y) => y.running)) {
        const view = await respCommand(x.endpoint(), ['SENTINEL', 'REPLICAS', masterName], 2_000).then(
          (r) =>
            JSON.stringify(
              (Array.isArray(r) ? r.map(record) : []).map((e) => ({
                port: e['port'],
                flags: e['flags'],
                link: e['master-link-status'],
                role: e['role-reported'],
              })),
            ),
          (e: unknown) => String(e),
        );
        const tail = x
          .output()
          .split('\n')
          .filter((l) => l.includes(String(server.port)) || /tilt/i.test(l))
          .slice(-6)
          .join(' | ');
        parts.push(`${x.name} replicas: ${view}; log: ${tail}`);
      }
      parts.push(`${server.name} log: ${server.output().split('\n').slice(-12).join(' | ')}`);
      return parts.join('\n');
    };
    const waitReplica = async (server: RedisServer, timeoutMs = readyMs): Promise<void> => {
      try {
        await until(`${server.name} replicating from the master`, timeoutMs, async () => {
          const m = await master_();
          const info = parseInfo(
            String(await respCommand(server.endpoint(), ['INFO', 'replication'], 2_000)),
          );
          return info['role'] === 'slave' &&
            Number(info['master_port']) === m.port &&
            info['master_link_status'] === 'up'
            ? true
            : undefined;
        });
      } catch (err) {
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n${await describe(server)}`);
      }
    };

    // Ready to fail over: replica in sync, every sentinel sees the replica as healthy and
    // enough peers for quorum and a majority (CKQUORUM).
    await waitReplica(replica);
    await Promise.all(
      sentinelServers.map((s) =>
        until(`sentinel ${s.port} ready for failover`, readyMs, async () => {
          const replicas = await respCommand(s.endpoint(), ['SENTINEL', 'REPLICAS', masterName]);
          const good = Array.isArray(replicas) && replicas.map(record).some((r) => r['flags'] === 'slave');
          if (!good) return undefined;
          const peers = await respCommand(s.endpoint(), ['SENTINEL', 'SENTINELS', masterName]);
          if (!Array.isArray(peers) || peers.length < count - 1) return undefined;
          const ck = await respCommand(s.endpoint(), ['SENTINEL', 'CKQUORUM', masterName]).catch(
            (e: unknown) => e,
          );
          return typeof ck === 'string' && ck.startsWith('OK') ? true : undefined;
        }),
      ),
    );

    return {
      masterName,
      servers,
      sentinelServers,
      sentinels,
      sentinelEndpoints,
      master: master_,
      masterServer: async () => byAddress(await master_()),
      failover: async ({ mode = 'command', timeoutMs = 30_000 } = {}) => {
        const from = byAddress(await master_());
        const agreed = async (): Promise<RedisServer | undefined> => {
          const m = await master_();
          if (m.host === from.host && m.port === from.port) return undefined;
          const s = byAddress(m);
          return (await roleOf(s)) === 'master' ? s : undefined;
        };
        if (mode === 'kill') {
          await from.kill();
          return {
            from,
            to: await until(`sentinels agreeing on a new master after ${from.name}`, timeoutMs, agreed),
          };
        }
        // A planned failover the sentinel accepted can still be aborted (its promotion timed
        // out, or the replica it chose was judged unfit once it tried): Sentinel then simply
        // keeps the old master. So: ask, give the switch a few failover timeouts, ask again.
        const deadline = Date.now() + timeoutMs;
        const perAttemptMs = Math.max(5_000, 3 * (opts.failoverTimeoutMs ?? 3_000));
        for (;;) {
          // NOGOODSLAVE / INPROG are transient right after a previous failover.
          await until('SENTINEL FAILOVER accepted', Math.max(1_000, deadline - Date.now()), async () => {
            const live = sentinelServers.find((x) => x.running);
            if (live === undefined) throw new Error('no sentinel is running');
            try {
              await respCommand(live.endpoint(), ['SENTINEL', 'FAILOVER', masterName]);
              return true;
            } catch (err) {
              if (err instanceof RedisReplyError && /NOGOODSLAVE|INPROG/.test(err.message)) return undefined;
              throw err;
            }
          });
          const left = deadline - Date.now();
          try {
            const to = await until(
              `sentinels agreeing on a new master after ${from.name}`,
              Math.max(1_000, Math.min(perAttemptMs, left)),
              agreed,
            );
            return { from, to };
          } catch (err) {
            if (Date.now() >= deadline) throw err;
          }
        }
      },
      waitReplica,
      caughtUp: async (timeoutMs = 20_000) => {
        const master = byAddress(await master_());
        const replica = servers.find((x) => x !== master)!;
        await until('replica caught up', timeoutMs, async () => {
          const m = parseInfo(String(await respCommand(master.endpoint(), ['INFO', 'replication'])));
          const r = parseInfo(String(await respCommand(replica.endpoint(), ['INFO', 'replication'])));
          return r['master_link_status'] === 'up' && Number(r['slave_repl_offset']) >= Number(m['master_repl_offset'])
            ? true
            : undefined;
        });
      },
      clientOptions: () => ({
        sentinels: sentinelEndpoints.map((e) => ({ ...e })),
        name: masterName,
        ...(auth === undefined ? {} : { password: auth.password }),
        ...(auth?.username === undefined ? {} : { username: auth.username }),
      }),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
