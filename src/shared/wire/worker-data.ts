/**
 * What the supervisor hands each worker at spawn (`workerData`): the shared memory of the
 * data plane, the worker's share of the topology, and its settings. Plain data and
 * SharedArrayBuffers only (structured clone), plus MessagePorts in the transfer list.
 */
import type { MessagePort } from 'node:worker_threads';
import type { AuthConfig, DeviceConfig, IscsiTuning } from '../config-types.ts';
import type { AluaWire } from '../scsi/alua.ts';
import type { RoutesWire } from './routes.ts';

/** Logging settings every worker gets. */
export interface WorkerLogging {
  logLevel: string;
  pretty: boolean;
  /** Where this worker beats (shared/ring/heartbeat.ts); absent in tests. */
  heartbeat?: { sab: SharedArrayBuffer; slot: number };
}

/**
 * One (session worker, LUN worker) pair's rings: commands flow session -> LUN on
 * `cmdRing`, completions back on `cplRing` (same capacity, so completions never overflow).
 */
export interface RingPair {
  cmdRing: SharedArrayBuffer;
  cplRing: SharedArrayBuffer;
  capacity: number;
}

/** The session side of a ring pair: the rings and the LUN worker's doorbell. */
export interface LunChannelInit extends RingPair {
  peerDoorbell: SharedArrayBuffer;
  /** The LUN worker's inline I/O grants (shared/ring/inline-grants.ts). Absent: no inline I/O. */
  grants?: SharedArrayBuffer;
}

/** A buffered file a session worker serves inline, through a descriptor of its own. */
export interface InlineFile {
  lunWorker: number;
  luIndex: number;
  path: string;
}

/** A RAM disk's memory as a session worker serves it inline (shared/ring/inline-grants.ts). */
export interface InlineMemory {
  lunWorker: number;
  luIndex: number;
  /** The memory's generation (InlineGrants.nextMemoryGeneration). */
  gen: number;
  memory: SharedArrayBuffer;
}

/** The LUN side of a ring pair: the rings, and the session worker's slab, doorbell and nexus table. */
export interface SessionLinkInit extends RingPair {
  slab: SharedArrayBuffer;
  slabMinBlock: number;
  doorbell: SharedArrayBuffer;
  nexusTable: SharedArrayBuffer;
}

export interface LunWorkerData extends WorkerLogging {
  index: number;
  clusterId: string;
  /** Local state directory (saved mode pages, embedded PR state, sanitize records). */
  stateDir: string;
  /** Largest transfer one command may move (VPD 0xB0 MAXIMUM TRANSFER LENGTH). */
  maxTransferLength: number;
  devices: DeviceConfig[];
  /**
   * Cluster mode: reservations are held cluster-wide by the supervisor (Redis), reached
   * over the control channel, instead of an embedded store under stateDir.
   */
  cluster?: boolean;
  /** RAM devices' memory kept from an earlier worker (by device name). */
  ramMemory?: Record<string, SharedArrayBuffer>;
  /** Unit index of each of `devices` (same order; supervisor/topology.ts). */
  unitIndexes?: number[];
  doorbell: SharedArrayBuffer;
  /** Per session worker, in session worker order. */
  sessions: SessionLinkInit[];
  /**
   * ALUA topology: the target port groups and which of them export each device.
   * Absent: one group (id 1, relative target port 1).
   */
  alua?: AluaWire;
  /** Per unit counters the exporter reads (shared/metrics/lun-counters.ts). Absent: private. */
  metrics?: SharedArrayBuffer;
  /** This worker's units' inline I/O grants (shared/ring/inline-grants.ts). Absent: none given. */
  grants?: SharedArrayBuffer;
}

export interface SessionWorkerData extends WorkerLogging {
  index: number;
  slab: SharedArrayBuffer;
  slabMinBlock: number;
  doorbell: SharedArrayBuffer;
  /** This worker's nexus table (it writes, LUN workers read). */
  nexusTable: SharedArrayBuffer;
  /** Per LUN worker, in LUN worker order. */
  channels: LunChannelInit[];
  routes: RoutesWire;
  /** Target name -> its slot in `sessionCounts` (supervisor/topology.ts; stable across reloads). */
  targetSlots: [string, number][];
  tuning: IscsiTuning;
  discoveryAuth?: AuthConfig;
  cmdWindow: number;
  /** Sessions per target, node-wide (Int32 per target, shared by all session workers). */
  sessionCounts: SharedArrayBuffer;
  /** TSIHs in use, node-wide (shared/iscsi/tsih-table.ts). */
  tsihTable: SharedArrayBuffer;
  /** Microseconds to poll for completions after submitting (0 disables). */
  pollBudgetUs: number;
  /** One handoff port per fabric port worker, in portal order. */
  portalPorts: MessagePort[];
  /** Counters the exporter reads (shared/metrics/session-counters.ts). Absent: private. */
  metrics?: SharedArrayBuffer;
  /** Counters of the READs and WRITEs this worker serves itself (inline-counters.ts). Absent: private. */
  inlineMetrics?: SharedArrayBuffer;
  /** RAM disks this worker may serve inline (their memory is also sent as it changes). */
  inlineMemory?: InlineMemory[];
  /** Buffered files this worker may serve inline (also sent as they open). */
  inlineFiles?: InlineFile[];
}

export interface PortalWorkerData extends WorkerLogging {
  index: number;
  host: string;
  port: number;
  /** Index of this portal in the routing tables. */
  portalIndex: number;
  maxConnections: number;
  /** Connections one initiator address may hold open here. */
  maxConnectionsPerAddress?: number;
  /** Accepted connections per second (sustained) and burst. */
  acceptRate: number;
  acceptBurst: number;
  /** One handoff port per session worker, in session worker order. */
  sessionPorts: MessagePort[];
}
