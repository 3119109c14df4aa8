/**
 * The per-command policy of the LUN pipeline, as data. Every row of the opcode registry
 * (opcode-registry.ts) carries one CommandPolicy in which every flag is decided; the
 * pipeline stages read lookup tables compiled from those rows (opcode-map.ts), never a
 * list of their own, so no stage can silently forget a command.
 *
 *   stage (execute.ts)            flag            standard
 *   1 unit attention              unitAttention   SAM-5 5.14, SPC-4 6.33 / 6.39
 *   2 ALUA access state           alua            SPC-4 5.16.2.4.x, 5.16.2.5
 *   3 reservations                pr, spc2        SPC-4 5.14.1 table 62, SBC-4 4.17 table 13,
 *                                                 SPC-2 5.5.1, SPC-4 5.14.3
 *   - LU-wide exclusive gate      exclusive       SBC-4 5.3, 4.29.2 (sbc/state.ts)
 *   4 not ready (after dispatch)  notReady        SBC-4 4.11.2, 4.11.4, 4.34 (sbc/state.ts)
 *
 * Values are small integers (`as const` objects), so the compiled tables are byte
 * arrays. A decision that depends on CDB fields (PREVENT ALLOW MEDIUM REMOVAL with
 * PREVENT = 00b, START STOP UNIT with START = 1) is a ByCdb value: one CDB bit test.
 */

/**
 * Persistent reservations held by another I_T nexus: SPC-4 5.14.1 table 62 (SPC
 * commands) and SBC-4 4.17 table 13 (block commands), "commands that are allowed in the
 * presence of various reservations". Every command falls in one of three classes:
 *
 *   class    | reservation held by another I_T nexus, issuing nexus is ...
 *            | any, WE  | any, EA  | registered, RR types | unregistered, WE-RR | unregistered, EA-RR
 *   ---------+----------+----------+----------------------+---------------------+--------------------
 *   ALWAYS   | allowed  | allowed  | allowed              | allowed             | allowed
 *   READ     | allowed  | conflict | allowed              | allowed             | conflict
 *   WRITE    | conflict | conflict | allowed              | conflict            | conflict
 *
 * (WE = Write Exclusive, EA = Exclusive Access; "any" columns apply to the WE and EA
 * types, where registration gives no access; RR = registrants only or all registrants,
 * WE-RR = types 5h and 7h, EA-RR = 6h and 8h.) The holder is never in conflict, and
 * under the all registrants types every registrant is a holder (pr/conflict.ts).
 *
 * READ also holds MODE SENSE, READ BUFFER, RECEIVE COPY RESULTS, RECEIVE DIAGNOSTIC
 * RESULTS, REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS, READ ATTRIBUTE
 * and READ DEFECT DATA: REPORT CAPABILITIES says ALLOW COMMANDS = 011b (SPC-4 6.15.4
 * table 208: allowed through Write Exclusive, and TEST UNIT READY through Exclusive
 * Access). PERSISTENT RESERVE OUT and RESERVE/RELEASE are ALWAYS: their executors decide
 * (SPC-4 5.14.x per service action, 5.14.3 for RESERVE/RELEASE).
 */
export const PrAccess = {
  ALWAYS: 0,
  READ: 1,
  WRITE: 2,
} as const;
export type PrAccess = (typeof PrAccess)[keyof typeof PrAccess];

/**
 * An SPC-2 reservation (RESERVE(6)/(10), SPC-2 5.5.1) exists:
 * - ALLOWED: from any I_T nexus (SPC-2 5.5.1: INQUIRY, REQUEST SENSE, REPORT LUNS,
 *   RELEASE (GOOD, no effect), RESERVE (the executor conflicts), PREVENT ALLOW MEDIUM
 *   REMOVAL with PREVENT = 00b);
 * - HOLDER_ONLY: RESERVATION CONFLICT from any nexus but the holder;
 * - CONFLICT: RESERVATION CONFLICT from every nexus, holder included (PERSISTENT RESERVE
 *   IN / OUT, SPC-4 5.14.3).
 */
export const Spc2Access = {
  ALLOWED: 0,
  HOLDER_ONLY: 1,
  CONFLICT: 2,
} as const;
export type Spc2Access = (typeof Spc2Access)[keyof typeof Spc2Access];

/**
 * A pending unit attention for the command's I_T nexus (SAM-5 5.14):
 * - REPORT: the command completes with CHECK CONDITION, UNIT ATTENTION and the oldest
 *   condition is cleared;
 * - EXEMPT: the command runs and neither reports nor clears a condition (INQUIRY;
 *   REQUEST SENSE, whose executor then reports the condition as its sense data, SPC-4
 *   6.39.2);
 * - EXEMPT_CLEARS_LUNS_CHANGED: runs, and clears REPORTED LUNS DATA HAS CHANGED only
 *   (REPORT LUNS, SPC-4 6.33).
 */
export const UaHandling = {
  REPORT: 0,
  EXEMPT: 1,
  EXEMPT_CLEARS_LUNS_CHANGED: 2,
} as const;
export type UaHandling = (typeof UaHandling)[keyof typeof UaHandling];

/**
 * Admitted through a target port whose group is in a non-active asymmetric access state
 * (the active states admit everything, SPC-4 5.16.2.4.2-3). Refused commands complete
 * with NOT READY and the state's ASC/ASCQ (alua/access.ts).
 */
export interface AluaAdmission {
  /** SPC-4 5.16.2.4.4 standby. */
  readonly standby: boolean;
  /** SPC-4 5.16.2.4.5 unavailable. */
  readonly unavailable: boolean;
  /** SPC-4 5.16.2.5 transitioning between states. */
  readonly transitioning: boolean;
}

/** Admitted in every state: INQUIRY, REPORT LUNS, REQUEST SENSE, REPORT TARGET PORT GROUPS. */
export const ALUA_ANY_STATE: AluaAdmission = Object.freeze({
  standby: true,
  unavailable: true,
  transitioning: true,
});
/** Standby's list only (mode, log, diagnostic and PR commands). */
export const ALUA_STANDBY: AluaAdmission = Object.freeze({
  standby: true,
  unavailable: false,
  transitioning: false,
});
/** Refused in every non-active state. */
export const ALUA_ACTIVE_ONLY: AluaAdmission = Object.freeze({
  standby: false,
  unavailable: false,
  transitioning: false,
});

/**
 * Served while the LU is not ready (sbc/state.ts notReady); refused commands complete
 * with the not-ready sense (after dispatch: an unsupported command is still an
 * ILLEGAL REQUEST first).
 */
export interface NotReadyAdmission {
  /** Removable medium ejected: NOT READY, MEDIUM NOT PRESENT (SBC-4 4.34). */
  readonly noMedium: boolean;
  /**
   * A sanitize operation in progress: NOT READY, SANITIZE IN PROGRESS (SBC-4 4.11.2;
   * REQUEST SENSE then reports it with the progress indication).
   */
  readonly sanitizing: boolean;
  /**
   * A sanitize failed: medium access fails with SANITIZE COMMAND FAILED until a
   * sanitize succeeds or EXIT FAILURE MODE (SBC-4 4.11.4).
   */
  readonly sanitizeFailed: boolean;
}

/** Needs the medium: refused in every not-ready state. */
export const MEDIUM_ACCESS: NotReadyAdmission = Object.freeze({
  noMedium: false,
  sanitizing: false,
  sanitizeFailed: false,
});
/** Needs no medium but is refused while a sanitize runs (mode, PR, START STOP UNIT...). */
export const NO_MEDIUM_ACCESS: NotReadyAdmission = Object.freeze({
  noMedium: true,
  sanitizing: false,
  sanitizeFailed: true,
});
/** Served in every not-ready state (INQUIRY, REQUEST SENSE, REPORT LUNS, LOG SENSE...). */
export const ALWAYS_SERVED: NotReadyAdmission = Object.freeze({
  noMedium: true,
  sanitizing: true,
  sanitizeFailed: true,
});

/** A test of CDB bits: (cdb[byte] & mask) === value. */
export interface CdbTest {
  readonly byte: number;
  readonly mask: number;
  readonly value: number;
}

/** A decision that depends on CDB fields: `then` where `when` holds, `otherwise` elsewhere. */
export interface ByCdb<T extends number> {
  readonly when: CdbTest;
  readonly then: T;
  readonly otherwise: T;
}

export function byCdb<T extends number>(when: CdbTest, then: T, otherwise: T): ByCdb<T> {
  return Object.freeze({ when, then, otherwise });
}

/** A decided value, possibly CDB-dependent. */
export type Decision<T extends number> = T | ByCdb<T>;

/** PREVENT ALLOW MEDIUM REMOVAL with PREVENT = 00b (SBC-4 5.13: byte 4 bits 1..0). */
export const PREVENT_CLEARED: CdbTest = Object.freeze({ byte: 4, mask: 0x03, value: 0x00 });
/**
 * START STOP UNIT with START = 1 and POWER CONDITION = 0h (SBC-4 5.25: byte 4 bits
 * 7..4 and 0; LOEJ is not looked at).
 */
export const START_WITHOUT_POWER_CONDITION: CdbTest = Object.freeze({ byte: 4, mask: 0xf1, value: 0x01 });

/** Every flag the pipeline looks up per command; all required, none defaulted. */
export interface CommandPolicy {
  /** Persistent reservations held by another I_T nexus (PrAccess). */
  readonly pr: Decision<PrAccess>;
  /** An SPC-2 reservation (Spc2Access). */
  readonly spc2: Decision<Spc2Access>;
  /** Non-active ALUA states that admit the command. */
  readonly alua: AluaAdmission;
  /** A pending unit attention (UaHandling). */
  readonly unitAttention: UaHandling;
  /** Not-ready states that still serve the command. */
  readonly notReady: NotReadyAdmission;
  /**
   * Runs alone on the LU (SBC-4 5.3 COMPARE AND WRITE, 4.29.2 atomic writes): its
   * executor closes the LU-wide gate of sbc/state.ts, and every command that arrives
   * meanwhile waits behind it in the pipeline.
   */
  readonly exclusive: boolean;
}

/**
 * The policy of an operation code the registry has no row for: the most careful answer
 * at every stage. RESERVATION CONFLICT rather than risk access, refused by ALUA and
 * SPC-2 reservations, unit attentions reported first; dispatch then ends it with INVALID
 * COMMAND OPERATION CODE.
 */
export const UNKNOWN_OPCODE_POLICY: CommandPolicy = Object.freeze({
  pr: PrAccess.WRITE,
  spc2: Spc2Access.HOLDER_ONLY,
  alua: ALUA_ACTIVE_ONLY,
  unitAttention: UaHandling.REPORT,
  notReady: MEDIUM_ACCESS,
  exclusive: false,
});

/** Bits of the compiled ALUA table (opcode-registry.ts ALUA_ADMITTED). */
export const AluaBit = {
  STANDBY: 1,
  UNAVAILABLE: 2,
  TRANSITIONING: 4,
} as const;

export function aluaBits(a: AluaAdmission): number {
  return (
    (a.standby ? AluaBit.STANDBY : 0) |
    (a.unavailable ? AluaBit.UNAVAILABLE : 0) |
    (a.transitioning ? AluaBit.TRANSITIONING : 0)
  );
}

/** Bits of the compiled not-ready table (opcode-registry.ts NOT_READY_SERVED). */
export const NotReadyBit = {
  NO_MEDIUM: 1,
  SANITIZING: 2,
  SANITIZE_FAILED: 4,
} as const;

export function notReadyBits(n: NotReadyAdmission): number {
  return (
    (n.noMedium ? NotReadyBit.NO_MEDIUM : 0) |
    (n.sanitizing ? NotReadyBit.SANITIZING : 0) |
    (n.sanitizeFailed ? NotReadyBit.SANITIZE_FAILED : 0)
  );
}
