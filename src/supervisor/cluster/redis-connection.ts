/**
 * Connections to the Redis that holds cluster state (ioredis): standalone by URL, or the
 * master that Sentinels name; ACL user and password; TLS. Two clients per node: one for
 * commands (bounded latency: a command that does not answer within `commandTimeoutMs`
 * fails, so a silent partition is noticed by the lease heartbeat) and one for the
 * blocking event-stream reads.
 *
 * Offline queueing is off: while Redis is unreachable a command fails at once instead
 * of waiting for a reconnect, so PR OUT gets its documented CHECK CONDITION promptly and
 * never completes long after the initiator gave up. ioredis reconnects by itself
 * (Sentinel: to whichever master the sentinels name after a failover).
 */
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { ClusterRedisConfig } from '../../shared/cluster-config.ts';

export interface ConnectionOptions {
  /** Fail a command that has not answered within this (ms). */
  readonly commandTimeoutMs: number;
  /** Name shown by CLIENT LIST. */
  readonly clientName: string;
}

function tlsOptions(c: ClusterRedisConfig): RedisOptions['tls'] {
  const t = c.tls;
  if (t === undefined) return undefined;
  return {
    ...(t.ca === undefined ? {} : { ca: readFileSync(t.ca) }),
    ...(t.cert === undefined ? {} : { cert: readFileSync(t.cert) }),
    ...(t.key === undefined ? {} : { key: readFileSync(t.key) }),
    ...(t.servername === undefined ? {} : { servername: t.servername }),
  };
}

/** ioredis options for `config` (exported for tests). */
export function redisOptions(config: ClusterRedisConfig, o: ConnectionOptions): RedisOptions {
  const common: RedisOptions = {
    connectionName: o.clientName,
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: Math.max(1000, o.commandTimeoutMs),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Reconnect quickly and keep trying: leases depend on it.
    retryStrategy: (attempt) => Math.min(50 * attempt, 500),
    lazyConnect: true,
    ...(config.username === undefined ? {} : { username: config.username }),
    ...(config.password === undefined ? {} : { password: config.password }),
  };
  const tls = tlsOptions(config);
  if (config.sentinels !== undefined && config.sentinels.length > 0) {
    return {
      ...common,
      sentinels: config.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: config.masterName ?? 'spindle',
      db: config.db ?? 0,
      // Sentinels usually run without the data ACL; the same credentials are tried when they do.
      ...(config.password === undefined ? {} : { sentinelPassword: config.password }),
      ...(config.username === undefined ? {} : { sentinelUsername: config.username }),
      ...(tls === undefined ? {} : { tls, enableTLSForSentinelMode: true, sentinelTLS: tls }),
      sentinelRetryStrategy: (attempt: number) => Math.min(100 * attempt, 1000),
    };
  }
  return { ...common, ...(tls === undefined ? {} : { tls }) };
}

/** A client for `config`, not yet connected (call connect()). */
export function createClient(config: ClusterRedisConfig, o: ConnectionOptions): Redis {
  const opts = redisOptions(config, o);
  if (config.sentinels !== undefined && config.sentinels.length > 0) return new Redis(opts);
  return new Redis(config.url ?? 'redis://127.0.0.1:6379', opts);
}
