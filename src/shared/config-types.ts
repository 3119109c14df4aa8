/**
 * The validated configuration, as the supervisor hands it to workers (plain data, so it
 * crosses a MessagePort unchanged). The YAML schema, its validation, defaults and docs live
 * in the rows of src/supervisor/config/schema.ts; this file only names the shapes, and a
 * compile-time check there fails when a row and a field here disagree (a key missing on
 * either side, a value the type does not allow, an optional key typed as always present).
 */

import type { ClusterConfig } from './cluster-config.ts';
import type { PortalConfig } from './portal-config.ts';

/**
 * What holds a device's blocks (config `devices[]`: exactly one of `ram`, `file`,
 * `block`, `null`, `cdrom`).
 */
export type BackingConfig =
  | { readonly type: 'ram'; readonly size: number }
  | { readonly type: 'file'; readonly path: string; readonly size: number }
  | {
      readonly type: 'block';
      readonly path: string;
      /** Bytes exported; absent: the whole device (its size is read at start). */
      readonly size?: number;
      /** A `size` smaller than the device exports its first `size` bytes only when true. */
      readonly prefix?: boolean;
    }
  /** No medium: reads return zeros, writes are dropped (protocol benchmarks). */
  | { readonly type: 'null'; readonly size: number }
  /** A CD-ROM (MMC) drive holding an ISO image; absent path: no disc in the drive. */
  | { readonly type: 'cdrom'; readonly path?: string };

/** Logical block sizes: 512 and 4096 for disks, 2048 for a CD-ROM (MMC-6 4.2.2). */
export type BlockSize = 512 | 2048 | 4096;

export interface DeviceConfig {
  readonly name: string;
  readonly backing: BackingConfig;
  /** Logical block size in bytes (2048 exactly for `cdrom`, 512 or 4096 otherwise). */
  readonly blockSize: BlockSize;
  readonly readOnly: boolean;
  /**
   * Thin provisioning (SBC-4 4.7.3.3): UNMAP, WRITE SAME with UNMAP, GET LBA STATUS;
   * LBPME and LBPRZ in READ CAPACITY(16). Absent: false (fully provisioned).
   */
  readonly thin?: boolean;
  /** Removable medium (RMB, SPC-4 6.6.2): START STOP UNIT loads/ejects it. Absent: false. */
  readonly removable?: boolean;
  /** Physical block size in bytes (power of two >= blockSize). Absent: = blockSize. */
  readonly physicalBlockSize?: number;
  /**
   * File and block devices: O_DIRECT I/O that bypasses the host page cache (cache-coherent
   * across nodes sharing the storage). Absent: true for block devices and in a cluster,
   * false otherwise.
   */
  readonly direct?: boolean;
  /** Write cache mode: write-through makes every write durable before status. */
  readonly writeCache: 'writethrough' | 'writeback';
  /**
   * Commands the LU's task set holds at once, across all I_T nexuses (SAM-5 5.3.2):
   * beyond it TASK SET FULL (or BUSY when the nexus has nothing in the set). Absent: 128.
   */
  readonly queueDepth?: number;
  /** Unit serial number (VPD 0x80); derived from clusterId + name when absent. */
  readonly serial?: string;
  readonly vendor: string; // INQUIRY T10 vendor id, <= 8 ASCII chars
  readonly product: string; // INQUIRY product id, <= 16 ASCII chars
}

export type { PortalConfig } from './portal-config.ts';

export interface ChapCredentials {
  readonly user: string;
  readonly secret: string;
}

export interface AuthConfig {
  /** One-way CHAP: the initiator must authenticate with these credentials. */
  readonly chap?: ChapCredentials;
  /**
   * Mutual CHAP (RFC 7143 12.1.3): the name and secret the target answers with when the
   * initiator challenges it (CHAP_I/CHAP_C). Only together with `chap`, and never the same
   * secret as any `chap` secret (RFC 7143 9.2.1).
   */
  readonly mutualChap?: ChapCredentials;
}

export interface TargetConfig {
  readonly iqn: string;
  readonly alias?: string;
  readonly portals: readonly PortalConfig[];
  /** LUN number -> device name. */
  readonly luns: Readonly<Record<number, string>>;
  readonly auth?: AuthConfig;
  /**
   * LUN masking (issue 5): an initiator matching an entry sees exactly that entry's LUN
   * map (its own LUN numbers). Absent: every initiator sees `luns`.
   */
  readonly acls?: readonly AclEntry[];
  /**
   * Initiators matching no ACL entry: `allow` sees `luns`, `deny` is refused at login
   * (AUTHORIZATION FAILURE). Default: `allow` without `acls`, `deny` with them.
   */
  readonly defaultAccess?: 'allow' | 'deny';
}

/** One ACL entry of a target (config `targets[].acls[]`). */
export interface AclEntry {
  /**
   * Initiator names this entry applies to: exact iSCSI names or patterns with `*`
   * (any run of characters), compared case-insensitively (RFC 7143 4.2.7.2). The YAML
   * `initiator: X` form is normalized to a one-element list.
   */
  readonly initiators: readonly string[];
  /** LUN number -> device name, as this entry's initiators see them. */
  readonly luns: Readonly<Record<number, string>>;
  /** Per-entry credentials; replaces the target's `auth` for these initiators. */
  readonly auth?: AuthConfig;
}

export interface WorkerCounts {
  /** Session workers (iSCSI connections run here). */
  readonly session: number;
  /** LUN workers (SCSI emulation and backing I/O run here). */
  readonly lun: number;
}

export interface IscsiTuning {
  /** MaxRecvDataSegmentLength the target declares (bytes it accepts per PDU). */
  readonly maxRecvDataSegmentLength: number;
  readonly maxBurstLength: number;
  readonly firstBurstLength: number;
  readonly maxOutstandingR2T: number;
  /** Largest EDTL accepted for one command (bounds slab use). */
  readonly maxTransferLength: number;
  /** The target's ImmediateData value (RFC 7143 13.11, AND-negotiated). Default true. */
  readonly immediateData?: boolean;
  /** The target's InitialR2T value (RFC 7143 13.10, OR-negotiated). Default false. */
  readonly initialR2T?: boolean;
  /**
   * The target's DataPDUInOrder / DataSequenceInOrder values (RFC 7143 13.18, 13.19,
   * OR-negotiated). Default false: the initiator's offer decides, and out-of-order
   * Data-Out is accepted when it offers No; true insists on in-order data.
   */
  readonly dataPDUInOrder?: boolean;
  readonly dataSequenceInOrder?: boolean;
  /** Max concurrent connections per portal. */
  readonly maxConnectionsPerPortal: number;
  /** Seconds a connection may stay in the login phase. */
  readonly loginTimeoutSec: number;
  /** Seconds between target NOP-In pings on an idle full-feature connection; 0: no pings. */
  readonly nopIntervalSec: number;
  /** Seconds to wait for the NOP-Out answering a ping before dropping the connection. */
  readonly nopTimeoutSec: number;
  /** Sessions (normal, full feature) allowed per target at once on this node. */
  readonly maxSessionsPerTarget: number;
  /** Cap of the delay held before a failed-authentication response; 0: no throttle. */
  readonly authBackoffMaxSec: number;
  /**
   * Slab bytes one session's writes may hold while their data is still due; beyond it new
   * writes get TASK SET FULL. Absent: no cap (unit tests).
   */
  readonly maxPendingWriteBytes?: number;
  /** Seconds a write may wait for its next Data-Out before it is ended; 0: never. Absent: 0. */
  readonly dataOutTimeoutSec?: number;
  /** Connections one initiator address may hold open at one portal. Absent: no cap. */
  readonly maxConnectionsPerAddress?: number;
}

/**
 * Asymmetric access state names of a target port group (SPC-4 5.16.2.4, table 359):
 * config `aluaStates` values.
 */
export const ALUA_STATE_NAMES = [
  'active-optimized',
  'active-non-optimized',
  'standby',
  'unavailable',
  'transitioning',
] as const;
export type AluaStateName = (typeof ALUA_STATE_NAMES)[number];

/** One entry of config `aluaStates`: the state of the target port group of `portal`. */
export interface PortalAluaState {
  readonly portal: PortalConfig;
  readonly state: AluaStateName;
}

export interface SpindleConfig {
  /** Cluster id: LU identifiers (NAA, serial) derive from it and the device name. */
  readonly clusterId: string;
  /** This node's name. */
  readonly nodeId: string;
  readonly devices: readonly DeviceConfig[];
  readonly targets: readonly TargetConfig[];
  readonly workers: WorkerCounts;
  readonly iscsi: IscsiTuning;
  readonly discovery: { readonly auth?: AuthConfig };
  readonly logging: { readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' };
  /** Directory for local state (embedded ClusterState). */
  readonly stateDir: string;
  /**
   * ALUA states of target port groups (each portal is one group); portals not listed
   * are active/optimized. Changeable at run time (configuration reload).
   */
  readonly aluaStates: readonly PortalAluaState[];
  /** Several nodes sharing the LUs, state in Redis (cluster-config.ts). Absent: one node. */
  readonly cluster?: ClusterConfig;
  /** The admin HTTP API and /metrics of this node. Absent: not served. */
  readonly api?: ApiConfig;
}

/** Config `api`: where the admin API listens and the bearer token it requires. */
export interface ApiConfig {
  readonly listen: PortalConfig;
  /**
   * The bearer token, as read from `tokenFile` or `tokenEnv` at load time (never inline in
   * the file). Required off loopback; when set, every request but health and readiness
   * must carry it.
   */
  readonly token?: string;
}
