/**
 * Control-plane messages between the supervisor and workers (not the data plane: SCSI
 * commands never travel here). Encoded with msgpackr so every message is one compact
 * byte string with a stable shape; socket handoff is the one exception (a handle must
 * be transferred by postMessage itself).
 */
import { Packr } from 'msgpackr';

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
  | { type: 'stats' }
  | { type: 'stats'; connections: number; tasks: number; slabInUse: number };

const packr = new Packr({ useRecords: false });

export function encodeControl(msg: ControlMessage): Uint8Array {
  return packr.pack(msg);
}

export function decodeControl(raw: Uint8Array): ControlMessage {
  return packr.unpack(raw) as ControlMessage;
}
