/**
 * Unit attention conditions (SAM-5 5.14, SPC-4 5.14 and 7.5.x), per logical unit and
 * I_T nexus: the first stage of the LUN pipeline (UA → ALUA → reservation → parse →
 * execute, DESIGN.md).
 *
 * Keyed by the I_T nexus *identity* (NexusInfo.key: initiator port + relative target
 * port), not by the session handle commands carry: a new session with the same
 * InitiatorName and ISID through the same target port is the same I_T nexus (SAM-5
 * 4.6), and conditions established while it had no session are reported when it is back.
 * A handle → entry map keeps the per-command lookup to one Map.get on a number.
 *
 * Conditions established here:
 *   - POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29/00) for an identity the first
 *     time it addresses the LU since the LU came online (SAM-5 6.3.1: the LU's power on
 *     is an event every I_T nexus must learn about).
 *   - I_T NEXUS LOSS OCCURRED (29/07) when an identity's session ends (SAM-5 6.3.4,
 *     nexus-events.ts); reported when it returns with a new session.
 *   - everything callers establish: BUS DEVICE RESET FUNCTION OCCURRED / 29/00 after a
 *     LOGICAL UNIT RESET / target reset, COMMANDS CLEARED BY ANOTHER INITIATOR
 *     (task-management.ts), MODE PARAMETERS CHANGED (spc/mode-select.ts), reservation
 *     and registration changes (pr/engine.ts), ASYMMETRIC ACCESS STATE CHANGED
 *     (alua/port-groups.ts).
 *   - CAPACITY DATA HAS CHANGED (2A/09) when a runtime resize grows the LU, for every
 *     identity (LogicalUnit.grow).
 *   - REPORTED LUNS DATA HAS CHANGED (3F/0E) for a nexus whose LUN inventory a
 *     configuration reload changed: the session worker, which owns the inventory and
 *     answers REPORT LUNS, sends UNIT_ATTENTION descriptors on the rings, to establish
 *     it at every LU of the new inventory and to clear it at all of them once the nexus
 *     has run REPORT LUNS (reportedLunsEvent).
 *
 * Precedence and overflow:
 *   - Reset-class conditions (ASC 29h) are merged (SAM-5 6.3.1 lists them in order of
 *     precedence; only the highest one is kept): 29/00 and 29/01 outrank 29/02, which
 *     outranks 29/03, then 29/04, then 29/07. A new one replaces a pending lower one and
 *     is dropped when a higher or equal one is pending.
 *   - At most QUEUE_LIMIT conditions are queued per identity; the same condition never
 *     queues twice. SAM-5 5.14 leaves a device server that cannot queue another condition
 *     free to lose some; spindle then collapses the queue into the single condition 29/00,
 *     which tells the application client that anything may have changed (it re-reads
 *     capacity, mode pages, reservations and LUNs), so no information is lost.
 *   - At most KNOWN_NEXUS_LIMIT identities are remembered per LU; the oldest is
 *     forgotten first. A forgotten identity that returns gets 29/00 again, which is
 *     always safe.
 *
 * Interlock: UA_INTLCK_CTRL is 00b (control mode page), so reporting a UA with CHECK
 * CONDITION clears it. INQUIRY and REPORT LUNS are executed and do not clear it (SAM-5
 * 5.14; REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED, SPC-4 6.33); REQUEST SENSE
 * reports the oldest pending condition as its sense data and clears it (SPC-4 6.39.2,
 * spc/unit-status.ts).
 *
 * A handle that the LU's NexusDirectory cannot resolve (unit tests and tools without a
 * LUN worker: the session worker writes every nexus into its table at login, before
 * its first command) has no identity: it is tracked by handle, starts with nothing
 * pending and is forgotten with its handle.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import type { SenseDetail } from '../../../shared/scsi/sense.ts';
import { SenseReason, setCheckCondition } from '../../../shared/scsi/sense.ts';
import { UaHandling } from '../command-policy.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import type { NexusInfo } from '../nexus.ts';
import type { OpcodeMap } from '../opcode-map.ts';

/** Conditions queued per identity; one more collapses the queue into 29/00. */
export const UA_QUEUE_LIMIT = 8;
/** Identities remembered per LU; beyond it the oldest is forgotten. */
const KNOWN_NEXUS_LIMIT = 4096;
/** Handle of an identity that has no session now (its nexus was lost). */
export const NO_HANDLE = -1;

/** Unit attention state of one I_T nexus identity at one LU. */
export class NexusUnitAttention {
  /** NexusInfo.key, or `#<handle>` for a handle without identity. */
  readonly key: string;
  /** The identity; undefined for a handle the directory could not resolve. */
  readonly info: NexusInfo | undefined;
  /** The handle of its current session, NO_HANDLE while it has none. */
  handle: number;
  /** Pending conditions, oldest first. */
  readonly queue: SenseDetail[] = [];

  constructor(key: string, info: NexusInfo | undefined, handle: number) {
    this.key = key;
    this.info = info;
    this.handle = handle;
  }
}

/** Per-LU state. */
export class UnitAttentionState {
  /** Identity key → state, oldest first (eviction order). */
  readonly byKey = new Map<string, NexusUnitAttention>();
  /** Session handle → state of its identity (hot path lookup). */
  readonly byHandle = new Map<number, NexusUnitAttention>();
}

/** SAM-5 6.3.1 precedence of reset-class conditions (ASC 29h): lower ranks first. */
function resetRank(d: SenseDetail): number {
  switch (d.ascq) {
    case 0x00: // POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (stands for any of them)
    case 0x01: // POWER ON OCCURRED
      return 1;
    case 0x02: // SCSI BUS RESET OCCURRED
      return 2;
    case 0x03: // BUS DEVICE RESET FUNCTION OCCURRED
      return 3;
    case 0x04: // DEVICE INTERNAL RESET
      return 4;
    case 0x07: // I_T NEXUS LOSS OCCURRED
      return 5;
    default:
      return 6;
  }
}

function sameDetail(a: SenseDetail, b: SenseDetail): boolean {
  return a === b || (a.key === b.key && a.asc === b.asc && a.ascq === b.ascq);
}

/** Queue `reason` for one identity, applying precedence and overflow (file comment). */
export function queueCondition(u: NexusUnitAttention, reason: SenseDetail): void {
  const q = u.queue;
  for (let i = 0; i < q.length; i++) {
    const p = q[i]!;
    if (sameDetail(p, reason)) return;
    if (reason.asc === 0x29 && p.asc === 0x29) {
      if (resetRank(reason) < resetRank(p)) q[i] = reason;
      return;
    }
  }
  if (q.length >= UA_QUEUE_LIMIT) {
    q.length = 0;
    q.push(SenseReason.POWER_ON_RESET_OR_BUS_DEVICE_RESET);
    return;
  }
  q.push(reason);
}

/**
 * The state of the identity behind `handle`, created on first use. A new identity gets
 * POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (file comment); an identity seen before
 * (its earlier session ended, or is ending) is rebound to the new handle.
 */
export function nexusState(lu: LogicalUnit, handle: number): NexusUnitAttention {
  const ua = lu.ua;
  const known = ua.byHandle.get(handle);
  if (known !== undefined) return known;
  const info = lu.nexuses.get(handle);
  const key = info === undefined ? `#${handle}` : info.key;
  let u = ua.byKey.get(key);
  if (u === undefined) {
    if (ua.byKey.size >= KNOWN_NEXUS_LIMIT) forgetOldest(lu);
    u = new NexusUnitAttention(key, info, handle);
    if (info !== undefined) u.queue.push(SenseReason.POWER_ON_RESET_OR_BUS_DEVICE_RESET);
    ua.byKey.set(key, u);
  } else {
    u.handle = handle;
  }
  ua.byHandle.set(handle, u);
  return u;
}

function forgetOldest(lu: LogicalUnit): void {
  // The identity may still have a session with grants; it comes back as a new one.
  lu.invalidateInline();
  const ua = lu.ua;
  const oldest = ua.byKey.values().next().value;
  if (oldest === undefined) return;
  ua.byKey.delete(oldest.key);
  if (oldest.handle !== NO_HANDLE) ua.byHandle.delete(oldest.handle);
}

/**
 * Queue `reason` for every identity known to the LU except the one behind
 * `exceptNexus` (the handle whose command caused the change, SPC-4 7.5.1: "... for all
 * I_T nexuses other than the one that issued the MODE SELECT"). Identities without a
 * session now are included: they learn it when they return.
 */
export function establish(lu: LogicalUnit, reason: SenseDetail, exceptNexus?: number): void {
  lu.invalidateInline();
  const except = exceptNexus === undefined ? undefined : lu.ua.byHandle.get(exceptNexus);
  for (const u of lu.ua.byKey.values()) if (u !== except) queueCondition(u, reason);
}

/**
 * Queue `reason` for every identity known to the LU: LU-wide events with no issuer
 * (CAPACITY DATA HAS CHANGED after a runtime resize).
 */
export function establishAll(lu: LogicalUnit, reason: SenseDetail): void {
  lu.invalidateInline();
  for (const u of lu.ua.byKey.values()) queueCondition(u, reason);
}

/**
 * Queue `reason` for the identities `select` picks (conditions addressed to particular
 * I_T nexuses, e.g. SPC-4 5.14.11 REGISTRATIONS PREEMPTED for the preempted
 * registrants). `select` sees the identity (u.info; undefined for a handle without one)
 * and the current handle (NO_HANDLE while the identity has no session).
 */
export function establishFor(
  lu: LogicalUnit,
  reason: SenseDetail,
  select: (u: NexusUnitAttention) => boolean,
): void {
  lu.invalidateInline();
  for (const u of lu.ua.byKey.values()) if (select(u)) queueCondition(u, reason);
}

/** Queue `reason` for the identity behind one handle. */
export function establishForNexus(lu: LogicalUnit, nexus: number, reason: SenseDetail): void {
  lu.invalidateInline();
  queueCondition(nexusState(lu, nexus), reason);
}

/**
 * A UNIT_ATTENTION descriptor (descriptors.ts UaEvent) for the nexus behind `nexus`:
 * establish REPORTED LUNS DATA HAS CHANGED (SPC-4 6.33: the LUN inventory of the I_T
 * nexus changed) or clear it because the nexus ran REPORT LUNS on the session worker
 * (SPC-4 6.33 / SAM-5 5.14: REPORT LUNS clears that condition).
 */
export function reportedLunsEvent(lu: LogicalUnit, nexus: number, changed: boolean): void {
  const u = nexusState(lu, nexus);
  if (changed) {
    lu.invalidateInline();
    queueCondition(u, SenseReason.REPORTED_LUNS_DATA_HAS_CHANGED);
    return;
  }
  clearReportedLunsChanged(u.queue);
}

/** REPORT LUNS ran for the nexus whose queue this is: drop 3F/0E (SPC-4 6.33). */
function clearReportedLunsChanged(q: SenseDetail[]): void {
  const i = q.findIndex((d) => sameDetail(d, SenseReason.REPORTED_LUNS_DATA_HAS_CHANGED));
  if (i >= 0) q.splice(i, 1);
}

/** Remove and return the oldest pending condition of the nexus behind `nexus`, or undefined. */
export function takeUnitAttention(lu: LogicalUnit, nexus: number): SenseDetail | undefined {
  const q = nexusState(lu, nexus).queue;
  return q.length === 0 ? undefined : q.shift();
}

/**
 * The session behind `handle` ended (SAM-5 6.3.4, nexus-events.ts): the identity keeps
 * its conditions and gains I_T NEXUS LOSS OCCURRED; a handle without identity is
 * forgotten. A new session of the identity may already have been bound (reinstatement
 * through another session worker): then only the condition is queued.
 */
export function unitAttentionNexusLost(lu: LogicalUnit, handle: number, info: NexusInfo | undefined): void {
  const ua = lu.ua;
  const u = ua.byHandle.get(handle) ?? (info === undefined ? undefined : ua.byKey.get(info.key));
  ua.byHandle.delete(handle);
  if (u === undefined) return;
  if (u.info === undefined) {
    ua.byKey.delete(u.key);
    return;
  }
  if (u.handle === handle) u.handle = NO_HANDLE;
  // The identity may already have a new session here (reinstatement) with a grant.
  lu.invalidateInline();
  queueCondition(u, SenseReason.I_T_NEXUS_LOSS);
}

/**
 * Called at the top of executeCommand for every command, with the registry's compiled
 * `unitAttention` table (UaHandling per command, ../opcode-registry.ts). When a
 * condition is pending for the command's nexus and the command is not exempt,
 * completes it with CHECK CONDITION / UNIT ATTENTION, clears that condition and returns
 * true (the caller then calls finish()). INQUIRY, REPORT LUNS and REQUEST SENSE are
 * exempt (file comment). Hot path: one Map lookup and one array length test when
 * nothing is pending.
 */
export function checkAndReport(lu: LogicalUnit, cmd: ScsiCommand, handling: OpcodeMap): boolean {
  const u = lu.ua.byHandle.get(cmd.nexus) ?? nexusState(lu, cmd.nexus);
  const q = u.queue;
  if (q.length === 0) return false;
  const h = handling.get(cmd.cdb);
  if (h === UaHandling.EXEMPT) return false;
  if (h === UaHandling.EXEMPT_CLEARS_LUNS_CHANGED) {
    clearReportedLunsChanged(q);
    return false;
  }
  setCheckCondition(cmd, q.shift()!);
  return true;
}
