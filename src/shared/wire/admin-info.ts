/**
 * What workers report about their logical units and connections when the supervisor asks
 * for the admin API (LUN_CONTROL `units`, SESSION_CONTROL `sessions`). Plain data: it is
 * msgpack-encoded on the control channel and served as JSON by the API as it is.
 */

/** An asymmetric access state as the API names it (config `aluaStates` names). */
export type AluaStateText = 'active-optimized' | 'active-non-optimized' | 'standby' | 'unavailable' | 'transitioning';

/** ASYMMETRIC ACCESS STATE code (SPC-4 6.36.2) -> name. */
export const ALUA_STATE_TEXT: Readonly<Record<number, AluaStateText>> = {
  0x0: 'active-optimized',
  0x1: 'active-non-optimized',
  0x2: 'standby',
  0x3: 'unavailable',
  0xf: 'transitioning',
};

/** Persistent reservation TYPE (SPC-4 6.16.3.4) -> short name. */
export const PR_TYPE_TEXT: Readonly<Record<number, string>> = {
  1: 'write-exclusive',
  3: 'exclusive-access',
  5: 'write-exclusive-registrants-only',
  6: 'exclusive-access-registrants-only',
  7: 'write-exclusive-all-registrants',
  8: 'exclusive-access-all-registrants',
};

export interface RegistrationInfo {
  /** Reservation key, 16 hex digits. */
  key: string;
  initiatorName: string;
  /** 12 hex digits, or null for every initiator port of the initiator (TransportID format 00b). */
  isid: string | null;
  relativeTargetPortId: number;
  allTgPt: boolean;
}

export interface ReservationInfo {
  /** PRgeneration (SPC-4 6.15.2). */
  generation: number;
  aptpl: boolean;
  registrations: RegistrationInfo[];
  /** The persistent reservation, if any: its type and holder (null holder: all registrants). */
  reservation: { type: number; typeName: string; holder: RegistrationInfo | null } | null;
  /** An SPC-2 RESERVE holder, if any. */
  spc2: { initiatorName: string; isid: string; relativeTargetPortId: number } | null;
}

/** A long-running operation of a LU and how far it got. */
export type OperationInfo =
  | {
      kind: 'sanitize';
      state: 'running' | 'failed';
      /** SANITIZE service action (SBC-4 5.30: 1 overwrite, 2 block erase, 3 cryptographic erase). */
      action: number;
      /** 0..1 (PROGRESS INDICATION / 65536). */
      progress: number;
      doneBlocks: number;
      totalBlocks: number;
    }
  | { kind: 'extended-copy'; segmentsProcessed: number; bytesTransferred: number };

export interface UnitInfo {
  /** The device name (config `devices[].name`). */
  name: string;
  worker: number;
  luIndex: number;
  /** NAA designator (VPD 0x83), hex: also the LU's cluster key. */
  naa: string;
  serial: string;
  backing: { type: 'ram' | 'file'; path?: string };
  blockSize: number;
  blocks: number;
  sizeBytes: number;
  readOnly: boolean;
  /** WCE as it is now (MODE SELECT may have changed the configured writeCache). */
  writeCache: 'writeback' | 'writethrough';
  thin: boolean;
  removable: boolean;
  mediumPresent: boolean;
  queueDepth: number;
  /** Commands in the task set now (enabled and dormant). */
  taskSet: { size: number; dormant: number };
  reservations: ReservationInfo;
  /** The target port groups exporting this LU and their states as this LU sees them. */
  alua: { group: number; state: AluaStateText }[];
  operations: OperationInfo[];
}

export interface ConnectionInfo {
  worker: number;
  /** Connection slot in the worker's counters (session-counters.ts); 0: none. */
  slot: number;
  /** Slot generation when this was read (a reused slot has a higher one). */
  generation: number;
  /** 0 until the login has given one. */
  tsih: number;
  /** ISID, 12 hex digits ('' during an early login). */
  isid: string;
  initiatorName: string;
  initiatorAlias: string;
  /** '' for discovery sessions. */
  targetName: string;
  sessionType: 'Normal' | 'Discovery' | '';
  phase: 'login' | 'full-feature' | 'logout' | 'closed';
  /** The portal the connection came in through. */
  portal: { host: string; port: number; group: number };
  /** The initiator's address:port. */
  peer: string;
  /** When the connection was accepted (ms since the epoch). */
  since: number;
  /** Negotiated operational keys (RFC 7143 13), as the RFC names them; empty before full feature phase. */
  negotiated: Record<string, string | number | boolean>;
  headerDigest: 'None' | 'CRC32C';
  dataDigest: 'None' | 'CRC32C';
  /** SCSI commands received and not yet answered. */
  commandsInFlight: number;
  expCmdSN: number;
  maxCmdSN: number;
  statSN: number;
}
