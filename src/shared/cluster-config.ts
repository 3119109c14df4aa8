/**
 * The `cluster` section of the configuration, validated (see README "Cluster"): the
 * Redis that holds cluster-wide SCSI state, the lease timings, and every node with the
 * portals it serves. One file for every node; each node learns which one it is from
 * `--node`, SPINDLE_NODE_ID or `nodeId`.
 */
import type { PortalConfig } from './portal-config.ts';

export interface ClusterRedisTls {
  /** PEM files (paths), read when connecting. */
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Name to verify the server certificate against (default: the host connected to). */
  readonly servername?: string;
}

export interface ClusterRedisConfig {
  /** redis://[user@]host:port[/db] or rediss:// for a standalone (or proxied) Redis. */
  readonly url?: string;
  /** Sentinels (host:port) and the master name they monitor, instead of `url`. */
  readonly sentinels?: readonly PortalConfig[];
  readonly masterName?: string;
  /** ACL user name (Redis 6+). */
  readonly username?: string;
  /** The password, as read from `passwordFile` or `passwordEnv` at load time (never inline in the file). */
  readonly password?: string;
  readonly tls?: ClusterRedisTls;
  /** Logical database (with sentinels; a URL carries its own). */
  readonly db?: number;
  /**
   * Replicas that must confirm a reservation change (Redis WAIT) before PR OUT completes,
   * so that a failover right after it does not lose it. 0: do not wait.
   */
  readonly waitReplicas?: number;
}

/** Lease timings (milliseconds), see README "Safety model". */
export interface ClusterLeaseConfig {
  /** How long a lease lives in Redis after each renewal. */
  readonly ttlMs: number;
  /** Heartbeat interval. */
  readonly renewMs: number;
  /**
   * A node stops I/O this long before its lease could have expired: covers I/O in flight
   * at the moment of fencing and clock-rate error between this node and Redis.
   */
  readonly marginMs: number;
}

export interface ClusterNodeConfig {
  readonly id: string;
  /** The portals this node listens on (each a target port of the cluster). */
  readonly portals: readonly PortalConfig[];
  /** TARGET PORT GROUP of this node's portals; derived from the node id when absent. */
  readonly portGroup?: number;
}

export interface ClusterConfig {
  readonly redis: ClusterRedisConfig;
  readonly lease: ClusterLeaseConfig;
  readonly nodes: readonly ClusterNodeConfig[];
}
