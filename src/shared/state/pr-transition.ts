/**
 * The persistent reservation state machine (SPC-4 5.14) as one pure function:
 * `applyPrRequest(state, request) → { outcome, state', effects }`.
 *
 * Pure on purpose: the embedded ClusterState runs it under a per-LU queue; the Redis
 * one evaluates it between reading and compare-and-setting the state (or ports it to
 * one Lua script), so both implementations agree bit for bit. CDB and parameter-list
 * syntax (lengths, reserved bits, SPEC_I_PT on the wrong service action) is checked
 * by the device server before a request is built (workers/lun/pr/persistent-reserve-out.ts);
 * here are the checks that depend on the state: RESERVATION CONFLICT (SPC-4 5.14.x),
 * and the parameter errors that depend on who is registered.
 *
 * PRgeneration (SPC-4 6.15.2) increases for REGISTER, REGISTER AND IGNORE EXISTING KEY
 * (unless they change nothing), CLEAR, PREEMPT, PREEMPT AND ABORT, REGISTER AND MOVE and
 * REPLACE LOST RESERVATION; not for RESERVE or RELEASE. `version` increases on every change.
 */
import { PersistentReserveOut } from '../scsi/opcodes.ts';
import type {
  PrEffect,
  PrNexus,
  PrOutRequest,
  PrOutcome,
  PrRegistration,
  PrRequest,
  PrReservation,
  PrResult,
  PrState,
  PrType,
  PrUaReason,
} from './cluster-state.ts';
import {
  ZERO_KEY,
  isAllRegistrants,
  registrationCovers,
  registrationId,
} from './cluster-state.ts';

/** Registrations per LU beyond which REGISTER fails (INSUFFICIENT REGISTRATION RESOURCES). */
export const MAX_REGISTRATIONS = 1024;

const GOOD: PrOutcome = { status: 'good' };
const CONFLICT: PrOutcome = { status: 'conflict' };

/** Byte of the SERVICE ACTION RESERVATION KEY in both parameter list formats (6.16.3, 6.16.4). */
const SA_KEY_BYTE = 8;

function unchanged(s: PrState, outcome: PrOutcome): PrResult {
  return { outcome, state: s, effects: [] };
}

function invalidParam(s: PrState, byte: number, bit?: number): PrResult {
  return unchanged(s, {
    status: 'check',
    reason: 'INVALID_FIELD_IN_PARAMETER_LIST',
    field: bit === undefined ? { cdb: false, byte } : { cdb: false, byte, bit },
  });
}

function changed(
  s: PrState,
  patch: Partial<Omit<PrState, 'version' | 'generation'>>,
  bumpGeneration: boolean,
  effects: PrEffect[] = [],
): PrResult {
  return {
    outcome: GOOD,
    state: {
      ...s,
      ...patch,
      version: s.version + 1,
      generation: bumpGeneration ? (s.generation + 1) >>> 0 : s.generation,
    },
    effects,
  };
}

function effect(ua: PrUaReason | null, registrations: readonly PrRegistration[], except: PrNexus | null, abort = false): PrEffect {
  return { ua, abort, registrations, except };
}

/**
 * The registration of the I_T nexus `n`: an exact one (its own ISID) before one that
 * covers it through a TransportID of format 00b (every initiator port of the device).
 */
export function registrationOf(s: PrState, n: PrNexus): PrRegistration | undefined {
  let loose: PrRegistration | undefined;
  for (const r of s.registrations) {
    if (!registrationCovers(r, n)) continue;
    if (r.isid !== null) return r;
    loose ??= r;
  }
  return loose;
}

/** Is registration `r` a reservation holder (SPC-4 5.14.10)? */
export function holds(res: PrReservation | null, r: PrRegistration | undefined): boolean {
  if (res === null || r === undefined) return false;
  return res.holder === null ? true : res.holder === r.id;
}

function sameNexus(a: PrNexus, b: PrNexus): boolean {
  return (
    a.isid === b.isid &&
    a.relativeTargetPortId === b.relativeTargetPortId &&
    a.initiatorName.toLowerCase() === b.initiatorName.toLowerCase()
  );
}

function newReservation(type: PrType, holder: PrRegistration): PrReservation {
  return { type, holder: isAllRegistrants(type) ? null : holder.id };
}

/** Apply one request; see the file comment. Never throws for any request content. */
export function applyPrRequest(s: PrState, req: PrRequest): PrResult {
  switch (req.kind) {
    case 'prout':
      return prOut(s, req);
    case 'reserve':
      return spc2Reserve(s, req.nexus);
    case 'release':
      return spc2Release(s, req.nexus);
    case 'nexus-loss':
      // SAM-5 6.3.4 / SPC-2 5.5.1: I_T nexus loss releases the SPC-2 reservation of that
      // nexus. Persistent reservations and registrations survive it (SPC-4 5.14.1).
      return s.spc2 !== null && sameNexus(s.spc2, req.nexus) ? changed(s, { spc2: null }, false) : unchanged(s, GOOD);
    case 'reset':
      // SAM-5 6.3.2: a logical unit reset releases SPC-2 reservations; PR survives.
      return s.spc2 !== null ? changed(s, { spc2: null }, false) : unchanged(s, GOOD);
  }
}

/**
 * SPC-2 RESERVE with compatible reservation handling (CRH = 1, SPC-4 5.14.3): while any
 * I_T nexus is registered, RESERVE completes with GOOD and changes nothing when it comes
 * from a persistent reservation holder (SPC-4 5.14.10: under an all registrants
 * reservation every registrant, otherwise only the nexus that reserved); every other
 * RESERVE conflicts, also from a registrant of a registrants-only reservation.
 */
function spc2Reserve(s: PrState, n: PrNexus): PrResult {
  if (s.registrations.length > 0) return unchanged(s, crhTolerated(s, n) ? GOOD : CONFLICT);
  if (s.spc2 !== null) return unchanged(s, sameNexus(s.spc2, n) ? GOOD : CONFLICT);
  return changed(s, { spc2: { initiatorName: n.initiatorName, isid: n.isid, relativeTargetPortId: n.relativeTargetPortId } }, false);
}

/**
 * SPC-2 RELEASE (SPC-2 7.19): releases the holder's reservation; from any other I_T
 * nexus GOOD without effect. With registrations present, CRH as for RESERVE.
 */
function spc2Release(s: PrState, n: PrNexus): PrResult {
  if (s.registrations.length > 0) return unchanged(s, crhTolerated(s, n) ? GOOD : CONFLICT);
  if (s.spc2 !== null && sameNexus(s.spc2, n)) return changed(s, { spc2: null }, false);
  return unchanged(s, GOOD);
}

function crhTolerated(s: PrState, n: PrNexus): boolean {
  return holds(s.reservation, registrationOf(s, n));
}

function prOut(s: PrState, req: PrOutRequest): PrResult {
  // SPC-4 5.14.3 (CRH): while an SPC-2 reservation exists, every PERSISTENT RESERVE
  // OUT conflicts, from any I_T nexus.
  if (s.spc2 !== null) return unchanged(s, CONFLICT);
  const reg = registrationOf(s, req.nexus);
  const A = PersistentReserveOut;
  if (req.action === A.REGISTER || req.action === A.REGISTER_AND_IGNORE_EXISTING_KEY) return register(s, req);
  // SPC-4 5.14.x: every other service action needs a registered I_T nexus whose key
  // matches the RESERVATION KEY field; otherwise RESERVATION CONFLICT.
  if (reg === undefined || reg.key !== req.key) return unchanged(s, CONFLICT);
  switch (req.action) {
    case A.RESERVE:
      return reserve(s, req, reg);
    case A.RELEASE:
      return release(s, req, reg);
    case A.CLEAR:
      return clear(s, req);
    case A.PREEMPT:
    case A.PREEMPT_AND_ABORT:
      return preempt(s, req, reg);
    case A.REGISTER_AND_MOVE:
      return registerAndMove(s, req, reg);
    case A.REPLACE_LOST_RESERVATION:
      return replaceLostReservation(s, req, reg);
    default:
      // The device server only builds requests for the service actions above.
      return unchanged(s, { status: 'check', reason: 'INVALID_FIELD_IN_CDB', field: { cdb: true, byte: 1, bit: 4 } });
  }
}

/**
 * The target ports a REGISTER applies to (SPC-4 6.16.3.1): with ALL_TG_PT = 1 every
 * target port exporting the LU ("as if the same registration request had been received
 * individually through each target port"), the receiving one first; otherwise only the
 * target port through which the command was received.
 */
function registrationPorts(req: PrOutRequest): number[] {
  const own = req.nexus.relativeTargetPortId;
  if (!req.allTgPt) return [own];
  return [own, ...req.targetPortIds.filter((p, i, all) => p !== own && all.indexOf(p) === i)];
}

/**
 * REGISTER and REGISTER AND IGNORE EXISTING KEY (SPC-4 5.14.7, 6.16.2 table 214).
 *
 * Evaluated for the I_T nexus of the issuing initiator port with each target port the
 * request applies to (registrationPorts; one unless ALL_TG_PT = 1), all or nothing:
 * - REGISTER: the RESERVATION KEY must be zero where that nexus is unregistered and its
 *   key where it is registered; otherwise RESERVATION CONFLICT (REGISTER AND IGNORE
 *   EXISTING KEY does not check);
 * - SPEC_I_PT with any of them registered: INVALID FIELD IN CDB;
 * - SERVICE ACTION RESERVATION KEY zero: the registered ones are unregistered (none:
 *   GOOD, nothing changes);
 * - otherwise the registered ones get the new key, the others are registered with it, and
 *   with SPEC_I_PT the initiator ports of the TransportIDs are registered through the same
 *   target ports (SPC-4 6.16.3.1; an already registered one is INVALID FIELD IN PARAMETER
 *   LIST).
 * So ALL_TG_PT = 1 creates one registration per target port (READ KEYS lists each, SPC-4
 * 6.15.2), and with ALL_TG_PT = 0 only the receiving nexus's registration changes, also
 * when it was made with ALL_TG_PT = 1 (the others are separate registrations).
 */
function register(s: PrState, req: PrOutRequest): PrResult {
  const ignore = req.action === PersistentReserveOut.REGISTER_AND_IGNORE_EXISTING_KEY;
  const n = req.nexus;
  const ports = registrationPorts(req);
  const mine = ports.map((p) => registrationOf(s, { ...n, relativeTargetPortId: p }));
  if (!ignore && mine.some((r) => req.key !== (r === undefined ? ZERO_KEY : r.key))) return unchanged(s, CONFLICT);
  const registered = mine.filter((r): r is PrRegistration => r !== undefined);
  if (req.specIPt && registered.length > 0) return unchanged(s, { status: 'check', reason: 'INVALID_FIELD_IN_CDB' });
  if (req.saKey === ZERO_KEY) return registered.length === 0 ? unchanged(s, GOOD) : unregister(s, req, registered);
  const added: PrRegistration[] = [];
  ports.forEach((p, i) => {
    if (mine[i] !== undefined) return;
    added.push({
      id: registrationId(n.initiatorName, n.isid, p),
      key: req.saKey,
      initiatorName: n.initiatorName,
      isid: n.isid,
      relativeTargetPortId: p,
      allTgPt: req.allTgPt,
    });
  });
  if (req.specIPt) {
    for (const t of req.transportIds) {
      for (const p of ports) {
        const id = registrationId(t.initiatorName, t.isid, p);
        if (added.some((r) => r.id === id)) continue; // the issuing nexus, or listed twice
        const target: PrNexus = { initiatorName: t.initiatorName, isid: t.isid ?? '', relativeTargetPortId: p };
        const taken =
          s.registrations.some((r) => r.id === id) ||
          (t.isid !== null
            ? registrationOf(s, target) !== undefined
            : s.registrations.some((r) => r.relativeTargetPortId === p && r.initiatorName.toLowerCase() === t.initiatorName.toLowerCase()));
        if (taken) return invalidParam(s, t.offset);
        added.push({
          id,
          key: req.saKey,
          initiatorName: t.initiatorName,
          isid: t.isid,
          relativeTargetPortId: p,
          allTgPt: req.allTgPt,
        });
      }
    }
  }
  if (s.registrations.length + added.length > MAX_REGISTRATIONS)
    return unchanged(s, { status: 'check', reason: 'INSUFFICIENT_REGISTRATION_RESOURCES' });
  const registrations = [
    ...s.registrations.map((r) => (registered.includes(r) ? { ...r, key: req.saKey } : r)),
    ...added,
  ];
  return changed(s, { registrations, aptpl: req.aptpl }, true);
}

/**
 * Unregistering (SPC-4 5.14.11.2.3): the registrations `gone` go; a reservation one of
 * them held is released (an all-registrants one only with the last registrant).
 * Releasing a registrants-only reservation this way gives every other registrant
 * RESERVATIONS RELEASED (SPC-4 5.14.11.2.2).
 */
function unregister(s: PrState, req: PrOutRequest, gone: readonly PrRegistration[]): PrResult {
  const registrations = s.registrations.filter((r) => !gone.includes(r));
  let reservation = s.reservation;
  const effects: PrEffect[] = [];
  if (reservation !== null) {
    if (reservation.holder === null) {
      if (registrations.length === 0) reservation = null;
    } else if (gone.some((r) => r.id === reservation!.holder)) {
      if (reservation.type === 5 || reservation.type === 6)
        effects.push(effect('RESERVATIONS_RELEASED', registrations, req.nexus));
      reservation = null;
    }
  }
  return changed(s, { registrations, reservation, aptpl: registrations.length > 0 ? req.aptpl : false }, true, effects);
}

/**
 * RESERVE (SPC-4 5.14.9): a reservation held by another I_T nexus, or by this one with
 * another type, conflicts; the same type again is GOOD and changes nothing.
 */
function reserve(s: PrState, req: PrOutRequest, reg: PrRegistration): PrResult {
  const res = s.reservation;
  if (res !== null) return unchanged(s, holds(res, reg) && res.type === req.type ? GOOD : CONFLICT);
  return changed(s, { reservation: newReservation(req.type as PrType, reg) }, false);
}

/**
 * RELEASE (SPC-4 5.14.11.2): GOOD without effect when there is no reservation or this
 * nexus does not hold it; another TYPE is INVALID RELEASE OF PERSISTENT RESERVATION.
 * Releasing a registrants-only or all-registrants reservation tells every other
 * registrant (RESERVATIONS RELEASED).
 */
function release(s: PrState, req: PrOutRequest, reg: PrRegistration): PrResult {
  const res = s.reservation;
  if (res === null || !holds(res, reg)) return unchanged(s, GOOD);
  if (res.type !== req.type) return unchanged(s, { status: 'check', reason: 'INVALID_RELEASE_OF_PERSISTENT_RESERVATION' });
  const effects = res.type >= 5 ? [effect('RESERVATIONS_RELEASED', s.registrations, req.nexus)] : [];
  return changed(s, { reservation: null }, false, effects);
}

/** CLEAR (SPC-4 5.14.11.3): everything goes; every other registrant gets RESERVATIONS PREEMPTED. */
function clear(s: PrState, req: PrOutRequest): PrResult {
  return changed(s, { registrations: [], reservation: null }, true, [
    effect('RESERVATIONS_PREEMPTED', s.registrations, req.nexus),
  ]);
}

/**
 * PREEMPT and PREEMPT AND ABORT (SPC-4 5.14.11.4, figure 8):
 * - no reservation, or SA key not the holder's: remove the registrations with the SA key
 *   (none: RESERVATION CONFLICT; SA key zero: INVALID FIELD IN PARAMETER LIST);
 * - all-registrants reservation and SA key zero: remove every other registration and
 *   create the new reservation for the issuer;
 * - SA key = the holder's key: remove its registrations, replace the reservation by one
 *   of the CDB's TYPE held by the issuer; when the type changed, every remaining
 *   registrant gets RESERVATIONS RELEASED.
 * The issuer's own registration is never removed. Removed nexuses get REGISTRATIONS
 * PREEMPTED; PREEMPT AND ABORT also aborts their task sets (the device server waits).
 */
function preempt(s: PrState, req: PrOutRequest, reg: PrRegistration): PrResult {
  const abort = req.action === PersistentReserveOut.PREEMPT_AND_ABORT;
  const res = s.reservation;
  const type = req.type as PrType;
  if (res !== null && res.holder === null && req.saKey === ZERO_KEY) {
    const victims = s.registrations.filter((r) => r !== reg);
    return changed(s, { registrations: [reg], reservation: newReservation(type, reg) }, true, [
      effect('REGISTRATIONS_PREEMPTED', victims, req.nexus, abort),
    ]);
  }
  const holderReg = res !== null && res.holder !== null ? s.registrations.find((r) => r.id === res.holder) : undefined;
  if (holderReg !== undefined && req.saKey === holderReg.key) {
    const victims = s.registrations.filter((r) => r.key === req.saKey && r !== reg);
    const registrations = s.registrations.filter((r) => r.key !== req.saKey || r === reg);
    const effects: PrEffect[] = [effect('REGISTRATIONS_PREEMPTED', victims, req.nexus, abort)];
    if (res!.type !== type) effects.push(effect('RESERVATIONS_RELEASED', registrations, req.nexus));
    return changed(s, { registrations, reservation: newReservation(type, reg) }, true, effects);
  }
  if (req.saKey === ZERO_KEY) return invalidParam(s, SA_KEY_BYTE);
  if (!s.registrations.some((r) => r.key === req.saKey)) return unchanged(s, CONFLICT);
  const victims = s.registrations.filter((r) => r.key === req.saKey && r !== reg);
  const registrations = s.registrations.filter((r) => r.key !== req.saKey || r === reg);
  // An all-registrants reservation ends with its last registrant (cannot happen here:
  // the issuer stays registered), a registrants-only one stays with its holder.
  return changed(s, { registrations }, true, [effect('REGISTRATIONS_PREEMPTED', victims, req.nexus, abort)]);
}

/**
 * REGISTER AND MOVE (SPC-4 5.14.8): the holder of a reservation (not all-registrants)
 * registers the I_T nexus of the TransportID + RELATIVE TARGET PORT IDENTIFIER with the
 * SA key and moves the reservation to it; UNREG = 1 also unregisters the issuer.
 */
function registerAndMove(s: PrState, req: PrOutRequest, reg: PrRegistration): PrResult {
  const res = s.reservation;
  if (res === null || !holds(res, reg) || res.holder === null) return unchanged(s, CONFLICT);
  if (req.saKey === ZERO_KEY) return invalidParam(s, SA_KEY_BYTE);
  const t = req.transportIds[0];
  if (t === undefined) return invalidParam(s, 20);
  const rtpi = req.moveRelativeTargetPortId;
  const dest: PrNexus = { initiatorName: t.initiatorName, isid: t.isid ?? '', relativeTargetPortId: rtpi };
  // SPC-4 6.16.4: the TransportID and port must name another I_T nexus than the issuer's.
  if (rtpi === req.nexus.relativeTargetPortId && t.initiatorName.toLowerCase() === req.nexus.initiatorName.toLowerCase() && (t.isid === null || t.isid === req.nexus.isid))
    return invalidParam(s, t.offset);
  const id = registrationId(t.initiatorName, t.isid, rtpi);
  const existing = s.registrations.find((r) => r.id === id) ?? (t.isid !== null ? registrationOf(s, dest) : undefined);
  let registrations: PrRegistration[];
  let destReg: PrRegistration;
  if (existing !== undefined && existing !== reg) {
    destReg = { ...existing, key: req.saKey };
    registrations = s.registrations.map((r) => (r === existing ? destReg : r));
  } else {
    destReg = { id, key: req.saKey, initiatorName: t.initiatorName, isid: t.isid, relativeTargetPortId: rtpi, allTgPt: false };
    if (s.registrations.length >= MAX_REGISTRATIONS)
      return unchanged(s, { status: 'check', reason: 'INSUFFICIENT_REGISTRATION_RESOURCES' });
    registrations = [...s.registrations, destReg];
  }
  if (req.unreg) registrations = registrations.filter((r) => r !== reg);
  return changed(s, { registrations, reservation: { type: res.type, holder: destReg.id }, aptpl: req.aptpl }, true);
}

/**
 * REPLACE LOST RESERVATION (SPC-4 r37+ / SPC-5 5.14.12): re-establish the issuer's
 * reservation after a device server lost it. spindle never loses persistent
 * reservation information (APTPL state is written before the command completes;
 * without APTPL a restart is a power off, SPC-4 5.14.5), so this is the replacement
 * itself: the issuer's key becomes the SA key and it holds a reservation of the CDB's
 * TYPE; a reservation of another nexus is released (RESERVATIONS RELEASED to others).
 */
function replaceLostReservation(s: PrState, req: PrOutRequest, reg: PrRegistration): PrResult {
  if (req.saKey === ZERO_KEY) return invalidParam(s, SA_KEY_BYTE);
  const mine = { ...reg, key: req.saKey };
  const registrations = s.registrations.map((r) => (r === reg ? mine : r));
  const effects: PrEffect[] =
    s.reservation !== null && !holds(s.reservation, reg)
      ? [effect('RESERVATIONS_RELEASED', registrations, req.nexus)]
      : [];
  return changed(s, { registrations, reservation: newReservation(req.type as PrType, mine) }, true, effects);
}
