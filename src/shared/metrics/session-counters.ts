/**
 * Counters of one session worker, in a SharedArrayBuffer the worker writes and the
 * supervisor's exporter reads on scrape: node-wide iSCSI events (logins by outcome, PDU
 * rejects by reason, digest errors), gauges, and one slot per
 * connection.
 *
 * Layout (Float64 elements; one buffer per session worker):
 *
 *   [0]                 reserved (liveness is the supervisor's heartbeat, shared/ring/heartbeat.ts)
 *   [1]  CONNECTIONS    connections on the worker (gauge)
 *   [2]  TASKS          task objects in use (gauge)
 *   [3]  SLAB_IN_USE    bytes of the worker's slab allocated (gauge)
 *   [4]  SLAB_BYTES     size of the slab
 *   [5..7]              reserved
 *   [8]  CONNECTIONS_ACCEPTED
 *   [9]  LOGINS_OK      logins that reached full feature phase (normal and discovery)
 *   [10] HEADER_DIGEST_ERRORS
 *   [11] DATA_DIGEST_ERRORS
 *   [12..15]            reserved
 *   [16 + r]            login failures by reason index r (LOGIN_FAILURE_REASONS)
 *   [48 + c]            Reject PDUs sent, by reason code c (RFC 7143 11.17.1), c < 16
 *   [64 + k * CONNECTION_STRIDE ...]  connection slot k (k < MAX_CONNECTION_SLOTS):
 *        +0 GENERATION   bumped each time the slot is given to a new connection
 *        +1 COMMANDS     SCSI commands completed
 *        +2 DATA_IN_BYTES   bytes sent to the initiator in Data-In
 *        +3 DATA_OUT_BYTES  bytes received from the initiator (immediate data, Data-Out)
 *        +4 REJECTS      Reject PDUs sent on this connection
 *        +5 DIGEST_ERRORS header and data digest errors on this connection
 *        +6 IN_USE       1 while a connection holds the slot
 *
 * Slot 0 is a scratch slot never exported: a connection that finds no free slot counts
 * there, so the increments on the PDU path never branch on "has a slot". Every value has
 * one writer (the session worker); see lun-counters.ts for why Float64 and plain
 * increments are enough.
 */

export const SessionField = {
  CONNECTIONS: 1,
  TASKS: 2,
  SLAB_IN_USE: 3,
  SLAB_BYTES: 4,
  CONNECTIONS_ACCEPTED: 8,
  LOGINS_OK: 9,
  HEADER_DIGEST_ERRORS: 10,
  DATA_DIGEST_ERRORS: 11,
  LOGIN_FAILURES: 16,
  REJECTS: 48,
} as const;

export const ConnectionField = {
  GENERATION: 0,
  COMMANDS: 1,
  DATA_IN_BYTES: 2,
  DATA_OUT_BYTES: 3,
  REJECTS: 4,
  DIGEST_ERRORS: 5,
  IN_USE: 6,
} as const;

export const SESSION_HEADER = 64;
export const CONNECTION_STRIDE = 8;
export const MAX_CONNECTION_SLOTS = 4096;
export const SESSION_COUNTERS_BYTES = (SESSION_HEADER + MAX_CONNECTION_SLOTS * CONNECTION_STRIDE) * 8;

/**
 * Login failure reasons: the Login Response status (RFC 7143 11.13.5) by class and detail,
 * plus `timeout` (the login phase ran out of time) and `other`.
 */
export const LOGIN_FAILURE_REASONS = [
  'initiator-error',
  'authentication-failed',
  'authorization-failed',
  'not-found',
  'target-removed',
  'unsupported-version',
  'too-many-connections',
  'missing-parameter',
  'cant-include-in-session',
  'session-type-not-supported',
  'session-does-not-exist',
  'invalid-during-login',
  'target-error',
  'service-unavailable',
  'out-of-resources',
  'timeout',
  'other',
] as const;
export type LoginFailureReason = (typeof LOGIN_FAILURE_REASONS)[number];

const TIMEOUT_REASON = LOGIN_FAILURE_REASONS.indexOf('timeout');
const OTHER_REASON = LOGIN_FAILURE_REASONS.indexOf('other');

/** Login status class and detail -> index in LOGIN_FAILURE_REASONS. */
export function loginFailureIndex(statusClass: number, statusDetail: number): number {
  if (statusClass === 0x02 && statusDetail <= 0x0b) return statusDetail;
  if (statusClass === 0x03 && statusDetail <= 0x02) return 12 + statusDetail;
  return OTHER_REASON;
}

/** Reject reasons (RFC 7143 11.17.1) by code; unnamed codes are exported as their number. */
export const REJECT_REASON_NAMES: Readonly<Record<number, string>> = {
  0x02: 'data-digest-error',
  0x03: 'snack-reject',
  0x04: 'protocol-error',
  0x05: 'command-not-supported',
  0x06: 'immediate-command-reject',
  0x07: 'task-in-progress',
  0x08: 'invalid-data-ack',
  0x09: 'invalid-pdu-field',
  0x0a: 'long-op-reject',
  0x0b: 'negotiation-reset',
  0x0c: 'waiting-for-logout',
};

/** What a completed command contributes (the session worker's pooled task has these). */
export interface CountedTask {
  readonly read: boolean;
  readonly write: boolean;
  readonly edtl: number;
  readonly dataInLength: number;
  /** Data-Out bytes received (immediate + unsolicited + solicited). */
  readonly received: number;
}

/** The writer side: one per session worker, on that worker's thread only. */
export class SessionCounters {
  readonly sab: SharedArrayBuffer;
  readonly #f: Float64Array;
  /** Free connection slots (1..MAX-1; slot 0 is the scratch slot). */
  readonly #free: number[] = [];

  constructor(sab?: SharedArrayBuffer) {
    this.sab = sab ?? new SharedArrayBuffer(SESSION_COUNTERS_BYTES);
    this.#f = new Float64Array(this.sab);
    for (let k = MAX_CONNECTION_SLOTS - 1; k >= 1; k--) this.#free.push(k);
  }

  /** A connection starts: its slot's base index (the scratch slot when none is free). */
  openConnection(): number {
    const f = this.#f;
    f[SessionField.CONNECTIONS_ACCEPTED]!++;
    const k = this.#free.pop() ?? 0;
    const base = SESSION_HEADER + k * CONNECTION_STRIDE;
    if (k === 0) return base;
    // A fresh connection starts from zero; the generation tells readers the slot changed hands.
    const gen = f[base + ConnectionField.GENERATION]! + 1;
    f.fill(0, base, base + CONNECTION_STRIDE);
    f[base + ConnectionField.GENERATION] = gen;
    f[base + ConnectionField.IN_USE] = 1;
    return base;
  }

  /** The connection ended: its slot may be reused. */
  closeConnection(base: number): void {
    const k = (base - SESSION_HEADER) / CONNECTION_STRIDE;
    if (k <= 0) return;
    this.#f[base + ConnectionField.IN_USE] = 0;
    this.#free.push(k);
  }

  /** The generation of the slot at `base` (admin API: tells a reused slot apart). */
  generationOf(base: number): number {
    return this.#f[base + ConnectionField.GENERATION]!;
  }

  /** The slot number behind a base index (what the admin API reports). */
  static slotOf(base: number): number {
    return (base - SESSION_HEADER) / CONNECTION_STRIDE;
  }

  /** A SCSI command's response went out on connection `base`. Hot path. */
  commandDone(base: number, t: CountedTask): void {
    const f = this.#f;
    f[base + ConnectionField.COMMANDS]!++;
    if (t.read) f[base + ConnectionField.DATA_IN_BYTES]! += Math.min(t.dataInLength, t.edtl);
    if (t.write) f[base + ConnectionField.DATA_OUT_BYTES]! += t.received;
  }

  reject(base: number, reason: number): void {
    const f = this.#f;
    f[base + ConnectionField.REJECTS]!++;
    f[SessionField.REJECTS + (reason & 0x0f)]!++;
  }

  headerDigestError(base: number): void {
    this.#f[base + ConnectionField.DIGEST_ERRORS]!++;
    this.#f[SessionField.HEADER_DIGEST_ERRORS]!++;
  }

  dataDigestError(base: number): void {
    this.#f[base + ConnectionField.DIGEST_ERRORS]!++;
    this.#f[SessionField.DATA_DIGEST_ERRORS]!++;
  }

  loginOk(): void {
    this.#f[SessionField.LOGINS_OK]!++;
  }

  loginFailed(statusClass: number, statusDetail: number): void {
    this.#f[SessionField.LOGIN_FAILURES + loginFailureIndex(statusClass, statusDetail)]!++;
  }

  loginTimedOut(): void {
    this.#f[SessionField.LOGIN_FAILURES + TIMEOUT_REASON]!++;
  }

  /** Gauges (a timer, off the PDU path). */
  publish(connections: number, tasks: number, slabInUse: number, slabBytes: number): void {
    const f = this.#f;
    f[SessionField.CONNECTIONS] = connections;
    f[SessionField.TASKS] = tasks;
    f[SessionField.SLAB_IN_USE] = slabInUse;
    f[SessionField.SLAB_BYTES] = slabBytes;
  }
}

export interface ConnectionSnapshot {
  generation: number;
  commands: number;
  dataInBytes: number;
  dataOutBytes: number;
  rejects: number;
  digestErrors: number;
  inUse: boolean;
}

/** The reader side (exporter, admin API). */
export class SessionCountersView {
  readonly #f: Float64Array;

  constructor(sab: SharedArrayBuffer) {
    this.#f = new Float64Array(sab);
  }

  field(i: number): number {
    return this.#f[i]!;
  }

  loginFailures(): { reason: LoginFailureReason; count: number }[] {
    return LOGIN_FAILURE_REASONS.map((reason, i) => ({ reason, count: this.#f[SessionField.LOGIN_FAILURES + i]! }));
  }

  /** Reject counts by code (codes never used are left out). */
  rejects(): { code: number; count: number }[] {
    const out: { code: number; count: number }[] = [];
    for (let c = 0; c < 16; c++) {
      const n = this.#f[SessionField.REJECTS + c]!;
      if (n > 0) out.push({ code: c, count: n });
    }
    return out;
  }

  connection(slot: number): ConnectionSnapshot | undefined {
    if (!Number.isInteger(slot) || slot <= 0 || slot >= MAX_CONNECTION_SLOTS) return undefined;
    const f = this.#f;
    const b = SESSION_HEADER + slot * CONNECTION_STRIDE;
    return {
      generation: f[b + ConnectionField.GENERATION]!,
      commands: f[b + ConnectionField.COMMANDS]!,
      dataInBytes: f[b + ConnectionField.DATA_IN_BYTES]!,
      dataOutBytes: f[b + ConnectionField.DATA_OUT_BYTES]!,
      rejects: f[b + ConnectionField.REJECTS]!,
      digestErrors: f[b + ConnectionField.DIGEST_ERRORS]!,
      inUse: f[b + ConnectionField.IN_USE] === 1,
    };
  }
}
