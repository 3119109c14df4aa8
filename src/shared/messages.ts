/**
 * Control-plane messages between the supervisor and workers (not the data plane: SCSI
 * commands never travel here). Encoded with msgpackr so every message is one compact
 * byte string with a stable shape; socket handoff is the one exception (a handle must
 * be transferred by postMessage itself).
 */
import { Packr } from 'msgpackr';
import type { AuthConfig, DeviceConfig } from './config-types.ts';
import type { RoutesWire } from '../workers/session/routes.ts';

/**
 * Runtime reconfiguration (supervisor/reload.ts), first step at the LUN workers: open
 * new logical units and grow resized ones, before any route leads to them.
 */
export interface LunPrepare {
  type: 'lun-prepare';
  id: number;
  /** New logical units, at the unit index the supervisor assigned on this worker. */
  add: { luIndex: number; device: DeviceConfig }[];
  /** Units to grow to a new size in bytes. */
  grow: { luIndex: number; sizeBytes: number }[];
  /** The ALUA device -> target port groups map of the new configuration. */
  deviceGroups: Record<string, number[]>;
}

/** Last step at the LUN workers, once no session routes to removed units any more. */
export interface LunCommit {
  type: 'lun-commit';
  id: number;
  /** Units to take offline and close once their commands have finished. */
  remove: number[];
  /** Target port groups whose asymmetric access state changes (SPC-4 5.16.2.4). */
  states: { group: number; state: number }[];
}

/** New routing tables for the session workers (LUN maps, ACLs, credentials, targets). */
export interface RoutesUpdate {
  type: 'routes';
  id: number;
  routes: RoutesWire;
  discoveryAuth?: AuthConfig;
  /** Target name -> its slot in the node-wide session counters. */
  targetSlots: [string, number][];
}

export type ControlMessage =
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'drain'; timeoutMs: number }
  | { type: 'drained' }
  | { type: 'stop' }
  | { type: 'stopped' }
  | { type: 'closed' }
  | { type: 'session-up'; key: string; tsih: number }
  | { type: 'session-down'; key: string }
  | { type: 'reinstate'; key: string }
  // Connection reinstatement across session workers: which worker holds the session with
  // this identity, and its TSIH (worker -1: none).
  | { type: 'session-find'; id: number; key: string }
  | { type: 'session-found'; id: number; worker: number; tsih: number }
  | { type: 'auth-failure'; id: number; key: string }
  | { type: 'auth-success'; key: string }
  | { type: 'auth-delay'; id: number; delayMs: number; failures: number }
  | LunPrepare
  | LunCommit
  | RoutesUpdate
  /** Answer to lun-prepare, lun-commit and routes; `error` when (part of) it failed. */
  | { type: 'done'; id: number; error?: string }
  | { type: 'stats' }
  | { type: 'stats'; connections: number; tasks: number; slabInUse: number };

const packr = new Packr({ useRecords: false });

export function encodeControl(msg: ControlMessage): Uint8Array {
  return packr.pack(msg);
}

export function decodeControl(raw: Uint8Array): ControlMessage {
  return packr.unpack(raw) as ControlMessage;
}
