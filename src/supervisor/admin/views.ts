/**
 * The JSON the admin API serves (version 1, under /api/v1) and the CLI reads. Field names
 * are stable within a version: add fields, never rename or remove them.
 */
import type { AluaStateText, ConnectionInfo, UnitInfo } from '../../shared/wire/admin-info.ts';
import type { ReloadReport } from '../reload-report.ts';

export type { ReloadReport };

export interface HealthView {
  status: 'ok';
  node: string;
  version: string;
  uptimeSec: number;
}

export interface ReadinessCheck {
  name: 'started' | 'portals' | 'workers' | 'lease' | 'admin';
  ok: boolean;
  detail: string;
}

export interface ReadinessView {
  ready: boolean;
  checks: ReadinessCheck[];
}

export interface ClusterView {
  /** This node holds its lease and is in sync. */
  serving: boolean;
  leaseHeld: boolean;
  leaseRemainingMs: number;
  redisRttMs: number;
  epochLost: boolean;
  /** This node's operator state: active, draining, drained, fenced. */
  admin: string;
  nodes: { node: string; live: boolean; admin: string; group: number; state: AluaStateText }[];
}

/** A long operation somewhere on the node (`spindle status` lists them). */
export interface OperationView {
  device: string;
  kind: 'sanitize' | 'extended-copy';
  state: string;
  /** 0..1 when known. */
  progress: number | null;
  detail: string;
}

export interface StatusView {
  node: string;
  clusterId: string;
  version: string;
  uptimeSec: number;
  ready: boolean;
  checks: ReadinessCheck[];
  portals: string[];
  workers: { lun: number; session: number; portal: number };
  counts: { targets: number; luns: number; sessions: number; connections: number };
  operations: OperationView[];
  cluster: ClusterView | null;
}

export interface TargetView {
  iqn: string;
  alias: string | null;
  portals: string[];
  luns: { lun: number; device: string }[];
  auth: { chap: boolean; mutualChap: boolean };
  acls: { initiators: string[]; luns: { lun: number; device: string }[]; chap: boolean }[];
  defaultAccess: 'allow' | 'deny';
  /** Full-feature sessions on this node. */
  sessions: number;
}

/** Counters of a logical unit since spindle started (from the LUN worker's shared memory). */
export interface LuCountersView {
  reads: number;
  writes: number;
  otherCommands: number;
  readBytes: number;
  writeBytes: number;
  queueDepth: number;
  taskSetFull: number;
  busy: number;
  checkCondition: number;
  reservationConflict: number;
}

export interface LunView extends Omit<UnitInfo, 'name'> {
  /** The device name (config devices[].name). */
  name: string;
  /** Where initiators find it: target and LUN number (targets[].luns and ACL entries). */
  exports: { target: string; lun: number; acl: boolean }[];
  counters: LuCountersView | null;
}

export interface SessionView extends ConnectionInfo {
  /** The id actions take (the TSIH, decimal); '' while logging in. */
  id: string;
  counters: { commands: number; dataInBytes: number; dataOutBytes: number; rejects: number; digestErrors: number } | null;
  /** Over the last second. */
  rates: { commandsPerSec: number; dataInBytesPerSec: number; dataOutBytesPerSec: number } | null;
}

export interface PortGroupView {
  group: number;
  /** The node of the group (cluster), or this node. */
  node: string;
  portals: string[];
  state: AluaStateText;
}

/** A JSON error body: `field` names the offending request field when there is one. */
export interface ErrorView {
  error: { code: string; message: string; field?: string };
}
