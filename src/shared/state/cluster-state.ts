/**
 * ClusterState: the device-wide state SCSI requires, held for every node of a cluster
 * (DESIGN.md "Cluster"). Today: persistent reservations (SPC-4 5.14) and the SPC-2
 * RESERVE/RELEASE holder of each logical unit. Later: unit attentions that must reach
 * other nodes, COMPARE AND WRITE atomicity, ALUA state.
 *
 * Two implementations: embedded (single node, persisted under stateDir, embedded-state.ts)
 * and Redis (later). The contract both keep:
 *
 * - Every change is ONE atomic transition (`transition(lu, request)`): the request
 *   carries everything the device server knows (issuing I_T nexus, CDB fields, parsed
 *   parameter list), and the result is the new state plus what SPC-4 requires as side
 *   effects (unit attentions, aborted nexuses). The transition itself is the pure
 *   function `applyPrRequest` (pr-transition.ts). The embedded store runs it under a
 *   per-LU queue; the Redis store runs it as one Lua script, or as a compare-and-set
 *   of the serialized state on `version` (WATCH/MULTI or a CAS script) with
 *   `applyPrRequest` evaluated in between, retrying on a version conflict.
 * - `version` increases with every change, PRgeneration only where SPC-4 says so
 *   (6.15.2). Caches (the LUN worker's copy the conflict check reads synchronously)
 *   compare versions and never go backwards.
 * - Changes made by other writers (other nodes) arrive through `subscribe` as events
 *   carrying the new state and the effects, so every node can queue the unit attentions
 *   for the I_T nexuses it hosts. A writer's own changes are returned to it and are NOT
 *   echoed to its own listeners.
 *
 * READ/WRITE never wait on this interface: see workers/lun/pr/engine.ts.
 *
 * Pure data, no I/O: everything here crosses MessagePorts and serializes to JSON (keys
 * as 16 hex digits, never bigint).
 */

/** SPC-4 6.16.3.4 table 218: persistent reservation TYPE codes. */
export const PrType = {
  WRITE_EXCLUSIVE: 0x1,
  EXCLUSIVE_ACCESS: 0x3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 0x5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 0x6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 0x7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 0x8,
} as const;
export type PrType = (typeof PrType)[keyof typeof PrType];

/** SPC-4 6.16.3.3 table 217: SCOPE; only LU_SCOPE exists since SPC-3. */
export const PR_SCOPE_LU = 0x0;

/** True for the six valid TYPE codes. */
export function isPrType(t: number): t is PrType {
  return t === 1 || t === 3 || (t >= 5 && t <= 8);
}

/** All registrants types (7h, 8h): every registered I_T nexus is a holder (SPC-4 5.14.10). */
export function isAllRegistrants(t: number): boolean {
  return t === 7 || t === 8;
}

/** Registrants only and all registrants types (5h-8h): registrants have access. */
export function isRegistrantsType(t: number): boolean {
  return t >= 5 && t <= 8;
}

/** Reservation keys are 8 bytes; carried as 16 lowercase hex digits. */
export type PrKey = string;
export const ZERO_KEY: PrKey = '0000000000000000';

/**
 * The I_T nexus a request comes from (SPC-4 5.14.x): initiator port + target port.
 * A subset of the LUN worker's NexusInfo, so it serializes.
 */
export interface PrNexus {
  /** iSCSI InitiatorName. */
  readonly initiatorName: string;
  /** ISID, 12 lowercase hex digits. */
  readonly isid: string;
  /** Relative target port identifier of the target port (1-based). */
  readonly relativeTargetPortId: number;
}

/**
 * One registration (SPC-4 5.14.7): a reservation key for an I_T nexus, i.e. one
 * initiator port through one target port (`relativeTargetPortId`).
 *
 * `isid === null` covers every initiator port of the iSCSI initiator device
 * `initiatorName` through that target port (a SPEC_I_PT TransportID of format 00b,
 * SPC-4 7.6.4.6).
 *
 * REGISTER with ALL_TG_PT = 1 is not one record covering every target port: SPC-4
 * 6.16.3.1 creates the registration "as if the same registration request had been
 * received individually through each target port", so it becomes one record per target
 * port exporting the LU (pr-transition.ts register). Each is its own registered I_T
 * nexus: READ KEYS lists each (6.15.2), only the one that reserved holds the
 * reservation (5.14.10), and each unregisters on its own.
 */
export interface PrRegistration {
  /** Identity (see registrationId); the reservation holder refers to it. */
  readonly id: string;
  readonly key: PrKey;
  readonly initiatorName: string;
  readonly isid: string | null;
  readonly relativeTargetPortId: number;
  /** Made by a REGISTER with ALL_TG_PT = 1 (informational: it covers its own port only). */
  readonly allTgPt: boolean;
}

export function registrationId(initiatorName: string, isid: string | null, rtpi: number): string {
  return `${initiatorName.toLowerCase()},i,0x${isid ?? '*'}|${rtpi}`;
}

/** Does registration `r` cover the I_T nexus `n`? */
export function registrationCovers(r: PrRegistration, n: PrNexus): boolean {
  return (
    r.relativeTargetPortId === n.relativeTargetPortId &&
    (r.isid === null || r.isid === n.isid) &&
    r.initiatorName.toLowerCase() === n.initiatorName.toLowerCase()
  );
}

/** The persistent reservation (SPC-4 5.14.9); scope is always LU_SCOPE. */
export interface PrReservation {
  readonly type: PrType;
  /** Registration id of the holder; null for the all registrants types. */
  readonly holder: string | null;
}

/** An SPC-2 RESERVE(6)/(10) reservation (SPC-2 5.5.1): one I_T nexus. */
export interface Spc2Reservation {
  readonly initiatorName: string;
  readonly isid: string;
  readonly relativeTargetPortId: number;
}

/** Everything ClusterState keeps per logical unit. */
export interface PrState {
  /** Increases with every change (cache freshness, compare-and-set). */
  readonly version: number;
  /** PRgeneration (SPC-4 6.15.2), 32-bit, wraps. */
  readonly generation: number;
  /** Activate persist through power loss, as last set (SPC-4 5.14.5). */
  readonly aptpl: boolean;
  /** Registrations in the order they were made (READ KEYS reports them so). */
  readonly registrations: readonly PrRegistration[];
  readonly reservation: PrReservation | null;
  readonly spc2: Spc2Reservation | null;
}

export const EMPTY_PR_STATE: PrState = Object.freeze({
  version: 0,
  generation: 0,
  aptpl: false,
  registrations: Object.freeze([]) as readonly PrRegistration[],
  reservation: null,
  spc2: null,
});

/** A TransportID as parsed from a parameter list (iSCSI only, SPC-4 7.6.4.6). */
export interface PrTransportId {
  readonly initiatorName: string;
  /** null: format 00b (all initiator ports of the device). */
  readonly isid: string | null;
  /** Byte offset of this TransportID in the parameter list (for field pointers). */
  readonly offset: number;
}

/** PERSISTENT RESERVE OUT, as the device server parsed it (SPC-4 6.16). */
export interface PrOutRequest {
  readonly kind: 'prout';
  /** SERVICE ACTION (PersistentReserveOut). */
  readonly action: number;
  readonly nexus: PrNexus;
  readonly type: number;
  readonly key: PrKey;
  readonly saKey: PrKey;
  readonly aptpl: boolean;
  readonly allTgPt: boolean;
  /**
   * RELATIVE TARGET PORT IDENTIFIERs of every target port exporting the LU (the LU's
   * ALUA port groups): where an ALL_TG_PT = 1 registration is created (SPC-4 6.16.3.1).
   */
  readonly targetPortIds: readonly number[];
  readonly specIPt: boolean;
  /** SPEC_I_PT TransportIDs (REGISTER) or the one of REGISTER AND MOVE. */
  readonly transportIds: readonly PrTransportId[];
  /** REGISTER AND MOVE: UNREG and RELATIVE TARGET PORT IDENTIFIER. */
  readonly unreg: boolean;
  readonly moveRelativeTargetPortId: number;
}

/** Requests that are not PR OUT but change the same state. */
export type PrRequest =
  | PrOutRequest
  /** SPC-2 RESERVE(6)/(10) (SPC-2 7.21, SPC-4 5.14.3 with CRH = 1). */
  | { readonly kind: 'reserve'; readonly nexus: PrNexus }
  /** SPC-2 RELEASE(6)/(10) (SPC-2 7.19). */
  | { readonly kind: 'release'; readonly nexus: PrNexus }
  /** I_T nexus loss (SAM-5 6.3.4): releases its SPC-2 reservation; PR survives. */
  | { readonly kind: 'nexus-loss'; readonly nexus: PrNexus }
  /** LOGICAL UNIT RESET / hard reset (SAM-5 6.3.2): releases the SPC-2 reservation. */
  | { readonly kind: 'reset' };

/** Unit attention reasons a PR change requires (SPC-4 5.14.11, sense.ts names). */
export type PrUaReason = 'RESERVATIONS_PREEMPTED' | 'RESERVATIONS_RELEASED' | 'REGISTRATIONS_PREEMPTED';

/**
 * A side effect for I_T nexuses covered by `registrations` (as they were before the
 * change), except the issuing nexus `except` (when given).
 */
export interface PrEffect {
  readonly ua: PrUaReason | null;
  /** PREEMPT AND ABORT: abort the task sets of these nexuses (SPC-4 5.14.11.4.5). */
  readonly abort: boolean;
  readonly registrations: readonly PrRegistration[];
  readonly except: PrNexus | null;
}

/** How a transition ended, as the device server reports it. */
export type PrOutcome =
  | { readonly status: 'good' }
  | { readonly status: 'conflict' }
  /** CHECK CONDITION; `reason` names a sense.ts SenseReason (or PR-local) entry. */
  | {
      readonly status: 'check';
      readonly reason: PrCheckReason;
      /** Field pointer: in the CDB (cdb = true) or parameter list. */
      readonly field?: { readonly cdb: boolean; readonly byte: number; readonly bit?: number };
    };

export type PrCheckReason =
  | 'INVALID_FIELD_IN_CDB'
  | 'INVALID_FIELD_IN_PARAMETER_LIST'
  | 'INVALID_RELEASE_OF_PERSISTENT_RESERVATION'
  | 'INSUFFICIENT_REGISTRATION_RESOURCES';

export interface PrResult {
  readonly outcome: PrOutcome;
  /** The state after the transition (unchanged on conflict / check). */
  readonly state: PrState;
  readonly effects: readonly PrEffect[];
}

/** A change made by another writer. */
export interface PrEvent {
  readonly lu: string;
  readonly state: PrState;
  readonly effects: readonly PrEffect[];
  /**
   * A full reload (a resynchronization): the changes between the LU's state and this one
   * are unknown, even when the version is just one ahead, so `effects` is empty and the
   * unit attentions come from the difference.
   */
  readonly reload?: boolean;
}

export interface ClusterState {
  /**
   * The current state of `lu` (the LU's NAA designator as hex). Called once when a LU
   * opens; afterwards the LU follows events.
   */
  loadPr(lu: string): Promise<PrState>;
  /** Apply one request atomically; see the file comment. */
  transition(lu: string, request: PrRequest): Promise<PrResult>;
  /**
   * Changes of `lu` made by other writers; returns the unsubscribe function. A listener
   * that returns a promise is done with the event when it settles (the LU has adopted the
   * state and fenced off what it admitted before): a cluster store acknowledges the change
   * to its writer only then.
   */
  subscribe(lu: string, listener: (event: PrEvent) => void | Promise<void>): () => void;
  close(): Promise<void>;
}
