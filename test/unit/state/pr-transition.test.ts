/**
 * Property tests of the persistent reservation state machine
 * (src/shared/state/pr-transition.ts, `applyPrRequest`), with fast-check: random
 * sequences of PERSISTENT RESERVE OUT requests (and SPC-2 RESERVE / RELEASE, I_T nexus
 * loss, LU reset) from a few I_T nexuses with a few keys, checked
 *   - against invariants SPC-4 states for every transition (PRgeneration, the holder,
 *     conflicts, CLEAR, RELEASE, PREEMPT effects, purity), and
 *   - step by step against a small reference model written from the SPC-4 text
 *     (5.14.3, 5.14.7-5.14.11, 6.16) below, for the requests the model covers (every
 *     service action but REPLACE LOST RESERVATION, without ALL_TG_PT / SPEC_I_PT).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PersistentReserveOut as SA } from '../../../src/shared/scsi/opcodes.ts';
import type {
  PrEffect,
  PrNexus,
  PrOutRequest,
  PrRegistration,
  PrRequest,
  PrResult,
  PrState,
  PrTransportId,
} from '../../../src/shared/state/cluster-state.ts';
import { EMPTY_PR_STATE, ZERO_KEY, isAllRegistrants } from '../../../src/shared/state/cluster-state.ts';
import { applyPrRequest, holds, registrationOf } from '../../../src/shared/state/pr-transition.ts';

// ---------------------------------------------------------------------------------
// Generators

/**
 * I_T nexuses: A, B, C through target port 1, A again through target port 2 (another
 * I_T nexus of the same initiator port, SPC-4 5.14.7), and A spelled in other case (the
 * same iSCSI name: names compare case-insensitively, RFC 3722).
 */
const NEXUSES: readonly PrNexus[] = [
  { initiatorName: 'iqn.2026-11.test:a', isid: '400000000001', relativeTargetPortId: 1 },
  { initiatorName: 'iqn.2026-11.test:b', isid: '400000000002', relativeTargetPortId: 1 },
  { initiatorName: 'iqn.2026-11.test:c', isid: '400000000003', relativeTargetPortId: 1 },
  { initiatorName: 'iqn.2026-11.test:a', isid: '400000000001', relativeTargetPortId: 2 },
  { initiatorName: 'IQN.2026-11.TEST:A', isid: '400000000001', relativeTargetPortId: 1 },
];
const PORTS = [1, 2];
const KEYS = ['0000000000000000', '0000000000000001', '0000000000000002', '0000000000000003'];
const TYPES = [1, 3, 5, 6, 7, 8];

/**
 * The key each nexus mostly uses (A's through both ports share one, as multipath
 * initiators do): with it, requests find their registration often enough to reach every
 * branch; any key, and zero, still come up.
 */
const HOME_KEY = [KEYS[1]!, KEYS[2]!, KEYS[3]!, KEYS[1]!, KEYS[1]!];

const nexusArb = fc.constantFrom(...NEXUSES);
function keyArb(nexus: number): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(HOME_KEY[nexus]!) },
    { weight: 2, arbitrary: fc.constant(ZERO_KEY) },
    { weight: 2, arbitrary: fc.constantFrom(...KEYS) },
  );
}
/** The registrants-only and all-registrants types more often: they have the most rules. */
const typeArb = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(5, 7) },
  { weight: 3, arbitrary: fc.constantFrom(...TYPES) },
);

function transportId(n: PrNexus, exactIsid: boolean): PrTransportId {
  return { initiatorName: n.initiatorName, isid: exactIsid ? n.isid : null, offset: 24 };
}

interface OutOptions {
  /** ALL_TG_PT, SPEC_I_PT and TransportIDs of format 00b (isid null) may appear. */
  readonly full: boolean;
}

function proutArb(opts: OutOptions): fc.Arbitrary<PrOutRequest> {
  const actions = [
    SA.REGISTER,
    SA.REGISTER_AND_IGNORE_EXISTING_KEY,
    SA.RESERVE,
    SA.RELEASE,
    SA.CLEAR,
    SA.PREEMPT,
    SA.PREEMPT_AND_ABORT,
    SA.REGISTER_AND_MOVE,
    ...(opts.full ? [SA.REPLACE_LOST_RESERVATION] : []),
  ];
  return fc
    .nat({ max: NEXUSES.length - 1 })
    .chain((i) =>
      fc.record({
        nexus: fc.constant(NEXUSES[i]!),
        key: keyArb(i),
        saKey: keyArb(i),
        action: fc.oneof(
          // The registering actions more often: most others need a registration first.
          { weight: 3, arbitrary: fc.constantFrom(SA.REGISTER, SA.REGISTER_AND_IGNORE_EXISTING_KEY) },
          { weight: 2, arbitrary: fc.constantFrom(SA.RESERVE, SA.PREEMPT, SA.REGISTER_AND_MOVE) },
          { weight: 5, arbitrary: fc.constantFrom(...actions) },
        ),
        type: typeArb,
        aptpl: fc.boolean(),
        allTgPt: opts.full ? fc.boolean() : fc.constant(false),
        specIPt: opts.full ? fc.boolean() : fc.constant(false),
        tids: fc.array(fc.tuple(nexusArb, opts.full ? fc.boolean() : fc.constant(true)), {
          minLength: 1,
          maxLength: 2,
        }),
        unreg: fc.boolean(),
        rtpi: fc.constantFrom(...PORTS),
      }),
    )
    .map((g): PrOutRequest => {
      const move = g.action === SA.REGISTER_AND_MOVE;
      // SPEC_I_PT only with REGISTER (the device server rejects it elsewhere, 6.16.3.1).
      const specIPt = g.specIPt && g.action === SA.REGISTER;
      const registering = g.action === SA.REGISTER || g.action === SA.REGISTER_AND_IGNORE_EXISTING_KEY;
      const allTgPt = g.allTgPt && registering;
      return {
        kind: 'prout',
        action: g.action,
        nexus: g.nexus,
        type: g.type,
        key: g.key,
        saKey: g.saKey,
        aptpl: (registering || move) && g.aptpl,
        allTgPt,
        targetPortIds: allTgPt ? PORTS : [],
        specIPt,
        transportIds: move
          ? [transportId(g.tids[0]![0], true)]
          : specIPt
            ? g.tids.map(([n, exact]) => transportId(n, exact))
            : [],
        unreg: move && g.unreg,
        moveRelativeTargetPortId: move ? g.rtpi : 0,
      };
    });
}

const spc2Arb: fc.Arbitrary<PrRequest> = fc.oneof(
  fc.record({ kind: fc.constant('reserve' as const), nexus: nexusArb }),
  fc.record({ kind: fc.constant('release' as const), nexus: nexusArb }),
  fc.record({ kind: fc.constant('nexus-loss' as const), nexus: nexusArb }),
  fc.constant({ kind: 'reset' as const }),
);

function requestsArb(opts: OutOptions): fc.Arbitrary<PrRequest[]> {
  const one = fc.oneof({ weight: 14, arbitrary: proutArb(opts) }, { weight: 1, arbitrary: spc2Arb });
  return fc.array(one, { minLength: 1, maxLength: 60, size: 'max' });
}

const RUNS = 400;

// ---------------------------------------------------------------------------------
// Helpers

/** Freeze `s` and everything in it: a transition that mutated its input would throw. */
function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

function sameNexus(a: PrNexus, b: PrNexus): boolean {
  return (
    a.isid === b.isid &&
    a.relativeTargetPortId === b.relativeTargetPortId &&
    a.initiatorName.toLowerCase() === b.initiatorName.toLowerCase()
  );
}

/** Actions that increase PRgeneration when they change the state (SPC-4 6.16.2). */
const GENERATION_ACTIONS: ReadonlySet<number> = new Set([
  SA.REGISTER,
  SA.REGISTER_AND_IGNORE_EXISTING_KEY,
  SA.CLEAR,
  SA.PREEMPT,
  SA.PREEMPT_AND_ABORT,
  SA.REGISTER_AND_MOVE,
  SA.REPLACE_LOST_RESERVATION,
]);

/** Run `requests` from the empty state, calling `check` on every transition. */
function replay(
  requests: readonly PrRequest[],
  check: (before: PrState, req: PrRequest, r: PrResult) => void,
): PrState {
  let s: PrState = EMPTY_PR_STATE;
  for (const req of requests) {
    const before = deepFreeze(s);
    const r = applyPrRequest(before, deepFreeze(req));
    check(before, req, r);
    s = r.state;
  }
  return s;
}

// ---------------------------------------------------------------------------------
// Invariants

describe('applyPrRequest: invariants over random request sequences', () => {
  const full = requestsArb({ full: true });

  it('is pure and never throws: frozen inputs, same result twice', () => {
    fc.assert(
      fc.property(full, (reqs) => {
        replay(reqs, (before, req, r) => {
          expect(applyPrRequest(before, req)).toEqual(r);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('version: +1 exactly when the state changes; a conflict or CHECK CONDITION changes nothing', () => {
    fc.assert(
      fc.property(full, (reqs) => {
        replay(reqs, (before, _req, r) => {
          if (r.state === before) {
            expect(r.effects).toEqual([]);
          } else {
            expect(r.outcome.status).toBe('good');
            expect(r.state.version).toBe(before.version + 1);
          }
          if (r.outcome.status !== 'good') expect(r.state).toBe(before);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('PRgeneration: +1 for a successful REGISTER / REGISTER AND IGNORE EXISTING KEY that changes something, CLEAR, PREEMPT (AND ABORT), REGISTER AND MOVE, REPLACE LOST RESERVATION; never otherwise (SPC-4 6.16.2)', () => {
    fc.assert(
      fc.property(full, (reqs) => {
        replay(reqs, (before, req, r) => {
          const delta = (r.state.generation - before.generation) >>> 0;
          const counts = req.kind === 'prout' && GENERATION_ACTIONS.has(req.action) && r.state !== before;
          expect(delta, `${JSON.stringify(req)}`).toBe(counts ? 1 : 0);
          // The actions other than the registering ones always change something when GOOD.
          if (req.kind === 'prout' && r.outcome.status === 'good' && GENERATION_ACTIONS.has(req.action)) {
            const registering =
              req.action === SA.REGISTER || req.action === SA.REGISTER_AND_IGNORE_EXISTING_KEY;
            if (!registering) expect(delta).toBe(1);
          }
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('the reservation: its holder is registered; all-registrants types and only they have no single holder', () => {
    fc.assert(
      fc.property(full, (reqs) => {
        replay(reqs, (_before, _req, r) => {
          const s = r.state;
          const ids = s.registrations.map((x) => x.id);
          expect(new Set(ids).size, 'one registration per I_T nexus').toBe(ids.length);
          for (const x of s.registrations) expect(x.key).not.toBe(ZERO_KEY);
          if (s.reservation === null) return;
          expect(s.registrations.length).toBeGreaterThan(0);
          expect(s.reservation.holder === null).toBe(isAllRegistrants(s.reservation.type));
          if (s.reservation.holder !== null) expect(ids).toContain(s.reservation.holder);
          // A persistent reservation and an SPC-2 one never coexist (SPC-4 5.14.3).
          expect(s.spc2).toBeNull();
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('CLEAR empties everything and tells every other registrant RESERVATIONS PREEMPTED (SPC-4 5.14.11.3)', () => {
    fc.assert(
      fc.property(full, (reqs) => {
        replay(reqs, (before, req, r) => {
          if (req.kind !== 'prout' || req.action !== SA.CLEAR || r.outcome.status !== 'good') return;
          expect(r.state.registrations).toEqual([]);
          expect(r.state.reservation).toBeNull();
          expect(r.effects).toEqual([
            {
              ua: 'RESERVATIONS_PREEMPTED',
              abort: false,
              registrations: before.registrations,
              except: req.nexus,
            },
          ]);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('RELEASE by an I_T nexus that does not hold the reservation changes nothing (SPC-4 5.14.11.2.1)', () => {
    fc.assert(
      fc.property(full, (reqs) => {
        replay(reqs, (before, req, r) => {
          if (req.kind !== 'prout' || req.action !== SA.RELEASE) return;
          if (holds(before.reservation, registrationOf(before, req.nexus))) return;
          expect(r.state).toBe(before);
          expect(r.effects).toEqual([]);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('PREEMPT (AND ABORT): REGISTRATIONS PREEMPTED names exactly the removed registrations; the issuer stays (SPC-4 5.14.11.4)', () => {
    fc.assert(
      fc.property(full, (reqs) => {
        replay(reqs, (before, req, r) => {
          if (req.kind !== 'prout' || (req.action !== SA.PREEMPT && req.action !== SA.PREEMPT_AND_ABORT))
            return;
          if (r.outcome.status !== 'good') return;
          const after = new Set(r.state.registrations.map((x) => x.id));
          const removed = before.registrations.filter((x) => !after.has(x.id)).map((x) => x.id);
          const preempted = r.effects.filter((e) => e.ua === 'REGISTRATIONS_PREEMPTED');
          expect(preempted).toHaveLength(1);
          expect(preempted[0]!.registrations.map((x) => x.id).sort()).toEqual(removed.sort());
          expect(preempted[0]!.abort).toBe(req.action === SA.PREEMPT_AND_ABORT);
          expect(registrationOf(r.state, req.nexus), 'the issuer is still registered').toBeDefined();
          // Nothing else is aborted.
          for (const e of r.effects) if (e !== preempted[0]) expect(e.abort).toBe(false);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('while an SPC-2 reservation exists every PERSISTENT RESERVE OUT conflicts (SPC-4 5.14.3)', () => {
    fc.assert(
      fc.property(full, (reqs) => {
        replay(reqs, (before, req, r) => {
          if (req.kind === 'prout' && before.spc2 !== null) expect(r.outcome.status).toBe('conflict');
        });
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------
// Reference model (SPC-4 text), for exact-ISID nexuses without ALL_TG_PT / SPEC_I_PT

/** An I_T nexus as the model names it: initiator port (name case-folded, ISID) + target port. */
function nx(n: PrNexus): string {
  return `${n.initiatorName.toLowerCase()}|${n.isid}|${n.relativeTargetPortId}`;
}

interface ModelState {
  /** Registrations in the order they were made (READ KEYS order). */
  readonly regs: readonly { readonly n: string; readonly key: string }[];
  /** holder null: an all registrants type, every registrant holds it (SPC-4 5.14.10). */
  readonly res: { readonly type: number; readonly holder: string | null } | null;
  readonly generation: number;
  readonly spc2: string | null;
}

/** A unit attention the model expects: reason, abort, and the nexuses it reaches. */
interface ModelEffect {
  readonly ua: string;
  readonly abort: boolean;
  readonly to: readonly string[];
}

interface ModelResult {
  readonly outcome: string;
  readonly state: ModelState;
  readonly effects: readonly ModelEffect[];
}

const EMPTY_MODEL: ModelState = { regs: [], res: null, generation: 0, spc2: null };

function modelStep(m: ModelState, req: PrRequest): ModelResult {
  const same = (outcome: string): ModelResult => ({ outcome, state: m, effects: [] });
  const bump = (patch: Partial<ModelState>, effects: ModelEffect[] = []): ModelResult => ({
    outcome: 'good',
    state: { ...m, ...patch, generation: m.generation + 1 },
    effects,
  });
  const ua = (reason: string, to: readonly string[], except: string, abort = false): ModelEffect => ({
    ua: reason,
    abort,
    to: to.filter((n) => n !== except),
  });
  if (req.kind === 'reset') return { outcome: 'good', state: { ...m, spc2: null }, effects: [] };
  const me = nx(req.nexus);
  const reg = m.regs.find((r) => r.n === me);
  // SPC-4 5.14.10: the holder is the reserving nexus, or every registrant (all registrants types).
  const isHolder = (n: string): boolean =>
    m.res !== null && (m.res.holder === null ? m.regs.some((r) => r.n === n) : m.res.holder === n);
  if (req.kind === 'nexus-loss')
    return { outcome: 'good', state: m.spc2 === me ? { ...m, spc2: null } : m, effects: [] };
  if (req.kind === 'reserve' || req.kind === 'release') {
    // SPC-4 5.14.3: while any I_T nexus is registered, RESERVE and RELEASE conflict
    // unless they come from a persistent reservation holder (CRH = 1: GOOD, no effect).
    if (m.regs.length > 0) return same(isHolder(me) ? 'good' : 'conflict');
    // SPC-2 7.21 / 7.19.
    if (req.kind === 'reserve') {
      if (m.spc2 !== null) return same(m.spc2 === me ? 'good' : 'conflict');
      return { outcome: 'good', state: { ...m, spc2: me }, effects: [] };
    }
    return { outcome: 'good', state: m.spc2 === me ? { ...m, spc2: null } : m, effects: [] };
  }
  // SPC-4 5.14.3: an SPC-2 reservation makes every PERSISTENT RESERVE OUT conflict.
  if (m.spc2 !== null) return same('conflict');
  const allRegs = m.regs.map((r) => r.n);
  const newRes = (type: number, holder: string) => ({ type, holder: isAllRegistrants(type) ? null : holder });
  switch (req.action) {
    case SA.REGISTER:
    case SA.REGISTER_AND_IGNORE_EXISTING_KEY: {
      // SPC-4 5.14.7, 6.16.2 table 214.
      if (req.action === SA.REGISTER && req.key !== (reg?.key ?? ZERO_KEY)) return same('conflict');
      if (req.saKey === ZERO_KEY) {
        if (reg === undefined) return same('good'); // nothing to unregister: no further action
        // SPC-4 5.14.11.2.3 unregistering: the holder's reservation goes with it (an
        // all registrants one with the last registrant); a registrants-only one
        // releases with RESERVATIONS RELEASED to the other registrants.
        const regs = m.regs.filter((r) => r !== reg);
        let res = m.res;
        const effects: ModelEffect[] = [];
        if (res !== null && (res.holder === null ? regs.length === 0 : res.holder === me)) {
          if (res.type === 5 || res.type === 6)
            effects.push(
              ua(
                'RESERVATIONS_RELEASED',
                regs.map((r) => r.n),
                me,
              ),
            );
          res = null;
        }
        return bump({ regs, res }, effects);
      }
      if (reg !== undefined)
        return bump({ regs: m.regs.map((r) => (r === reg ? { n: me, key: req.saKey } : r)) });
      return bump({ regs: [...m.regs, { n: me, key: req.saKey }] });
    }
  }
  // Every other service action needs a registered nexus whose key matches.
  if (reg === undefined || reg.key !== req.key) return same('conflict');
  switch (req.action) {
    case SA.RESERVE: // SPC-4 5.14.9
      if (m.res !== null) return same(isHolder(me) && m.res.type === req.type ? 'good' : 'conflict');
      return { outcome: 'good', state: { ...m, res: newRes(req.type, me) }, effects: [] };
    case SA.RELEASE: {
      // SPC-4 5.14.11.2.
      if (m.res === null || !isHolder(me)) return same('good');
      if (m.res.type !== req.type) return same('check:INVALID_RELEASE_OF_PERSISTENT_RESERVATION');
      const effects = m.res.type >= 5 ? [ua('RESERVATIONS_RELEASED', allRegs, me)] : [];
      return { outcome: 'good', state: { ...m, res: null }, effects };
    }
    case SA.CLEAR: // SPC-4 5.14.11.3
      return bump({ regs: [], res: null }, [ua('RESERVATIONS_PREEMPTED', allRegs, me)]);
    case SA.PREEMPT:
    case SA.PREEMPT_AND_ABORT: {
      // SPC-4 5.14.11.4.
      const abort = req.action === SA.PREEMPT_AND_ABORT;
      const res = m.res;
      if (res !== null && res.holder === null && req.saKey === ZERO_KEY) {
        // All registrants reservation, SA key zero: everyone else goes, a new reservation.
        return bump({ regs: [reg], res: newRes(req.type, me) }, [
          ua('REGISTRATIONS_PREEMPTED', allRegs, me, abort),
        ]);
      }
      const holderKey =
        res !== null && res.holder !== null ? m.regs.find((r) => r.n === res.holder)!.key : undefined;
      const victims = m.regs.filter((r) => r.key === req.saKey && r !== reg).map((r) => r.n);
      const regs = m.regs.filter((r) => r.key !== req.saKey || r === reg);
      if (holderKey !== undefined && req.saKey === holderKey) {
        // 5.14.11.4.3 preempting the reservation: its holder's key goes, the issuer
        // holds a reservation of the new TYPE; the others learn of a changed type.
        const effects = [ua('REGISTRATIONS_PREEMPTED', victims, me, abort)];
        if (res!.type !== req.type)
          effects.push(
            ua(
              'RESERVATIONS_RELEASED',
              regs.map((r) => r.n),
              me,
            ),
          );
        return bump({ regs, res: newRes(req.type, me) }, effects);
      }
      // 5.14.11.4.4 removing registrations (TYPE ignored).
      if (req.saKey === ZERO_KEY) return same('check:INVALID_FIELD_IN_PARAMETER_LIST');
      if (!m.regs.some((r) => r.key === req.saKey)) return same('conflict');
      return bump({ regs }, [ua('REGISTRATIONS_PREEMPTED', victims, me, abort)]);
    }
    case SA.REGISTER_AND_MOVE: {
      // SPC-4 5.14.8 / 6.16.4: only the holder of a reservation that is not all
      // registrants; the destination gets the SA key and the reservation.
      if (m.res === null || m.res.holder !== me) return same('conflict');
      if (req.saKey === ZERO_KEY) return same('check:INVALID_FIELD_IN_PARAMETER_LIST');
      const t = req.transportIds[0]!;
      const dest = nx({
        initiatorName: t.initiatorName,
        isid: t.isid!,
        relativeTargetPortId: req.moveRelativeTargetPortId,
      });
      if (dest === me) return same('check:INVALID_FIELD_IN_PARAMETER_LIST');
      const existing = m.regs.find((r) => r.n === dest);
      let regs = existing
        ? m.regs.map((r) => (r === existing ? { n: dest, key: req.saKey } : r))
        : [...m.regs, { n: dest, key: req.saKey }];
      if (req.unreg) regs = regs.filter((r) => r.n !== me);
      return bump({ regs, res: { type: m.res.type, holder: dest } });
    }
  }
  throw new Error(`model: action ${req.action} not modelled`);
}

/** The implementation's state as the model sees it. */
function viewOf(s: PrState): ModelState {
  const byId = new Map<string, string>(
    s.registrations.map((r: PrRegistration) => [
      r.id,
      nx({ initiatorName: r.initiatorName, isid: r.isid!, relativeTargetPortId: r.relativeTargetPortId }),
    ]),
  );
  return {
    regs: s.registrations.map((r) => ({ n: byId.get(r.id)!, key: r.key })),
    res:
      s.reservation === null
        ? null
        : {
            type: s.reservation.type,
            holder: s.reservation.holder === null ? null : byId.get(s.reservation.holder)!,
          },
    generation: s.generation,
    spc2: s.spc2 === null ? null : nx(s.spc2),
  };
}

/** The implementation's effects as unit attentions per nexus (empty ones dropped). */
function effectsOf(effects: readonly PrEffect[]): ModelEffect[] {
  return effects
    .filter((e) => e.ua !== null)
    .map((e) => ({
      ua: e.ua!,
      abort: e.abort,
      to: e.registrations
        .map((r) =>
          nx({ initiatorName: r.initiatorName, isid: r.isid!, relativeTargetPortId: r.relativeTargetPortId }),
        )
        .filter((n) => e.except === null || n !== nx(e.except)),
    }))
    .filter((e) => e.to.length > 0);
}

function normalize(effects: readonly ModelEffect[]): ModelEffect[] {
  return effects
    .filter((e) => e.to.length > 0)
    .map((e) => ({ ...e, to: [...e.to].sort() }))
    .sort((a, b) => a.ua.localeCompare(b.ua));
}

function outcomeOf(r: PrResult): string {
  return r.outcome.status === 'check' ? `check:${r.outcome.reason}` : r.outcome.status;
}

describe('applyPrRequest against a reference model of SPC-4', () => {
  it('agrees on outcome, registrations, reservation, PRgeneration, SPC-2 holder and unit attentions at every step', () => {
    /** Transitions of interest seen, so the property is not vacuous. */
    const seen = new Map<string, number>();
    const note = (k: string): void => void seen.set(k, (seen.get(k) ?? 0) + 1);
    fc.assert(
      fc.property(requestsArb({ full: false }), (reqs) => {
        let m = EMPTY_MODEL;
        replay(reqs, (before, req, r) => {
          expect(viewOf(before)).toEqual(m);
          const expected = modelStep(m, req);
          const what = `${JSON.stringify(req)} on ${JSON.stringify(m)}`;
          expect(outcomeOf(r), what).toBe(expected.outcome);
          expect(viewOf(r.state), what).toEqual(expected.state);
          expect(normalize(effectsOf(r.effects)), what).toEqual(normalize(expected.effects));
          m = expected.state;
          note(`${req.kind === 'prout' ? req.action : req.kind}:${expected.outcome}`);
          if ((req.kind === 'reserve' || req.kind === 'release') && m.res !== null && m.res.holder !== null) {
            const me = nx(req.nexus);
            if (m.regs.some((x) => x.n === me) && m.res.holder !== me)
              note('SPC-2 from a registrant, not the holder');
          }
          if (expected.effects.some((e) => e.to.length > 0)) note('unit attention');
        });
      }),
      { numRuns: RUNS * 2 },
    );
    // Every service action was seen succeeding, and conflicts and unit attentions happened.
    for (const a of [
      SA.REGISTER,
      SA.RESERVE,
      SA.RELEASE,
      SA.CLEAR,
      SA.PREEMPT,
      SA.PREEMPT_AND_ABORT,
    ])
      expect(seen.get(`${a}:good`) ?? 0, `action ${a}`).toBeGreaterThan(20);
    for (const k of ['reserve:good', 'reserve:conflict', `${SA.RESERVE}:conflict`, 'unit attention'])
      expect(seen.get(k) ?? 0, k).toBeGreaterThan(20);
    // Rarer: only the holder of a reservation that is not all registrants may move it,
    // and a random sequence has to make that nexus send it.
    expect(seen.get(`${SA.REGISTER_AND_MOVE}:good`) ?? 0).toBeGreaterThan(3);
    expect(seen.get('SPC-2 from a registrant, not the holder') ?? 0).toBeGreaterThan(3);
  });

  it('SPC-4 5.14.3: RESERVE from a registrant that does not hold a registrants-only reservation conflicts', () => {
    const [a, b] = [NEXUSES[0]!, NEXUSES[1]!];
    const out = (action: number, nexus: PrNexus, key: string, saKey: string, type = 5): PrOutRequest => ({
      kind: 'prout',
      action,
      nexus,
      type,
      key,
      saKey,
      aptpl: false,
      allTgPt: false,
      targetPortIds: [],
      specIPt: false,
      transportIds: [],
      unreg: false,
      moveRelativeTargetPortId: 0,
    });
    let s = EMPTY_PR_STATE;
    for (const req of [
      out(SA.REGISTER, a, ZERO_KEY, KEYS[1]!),
      out(SA.REGISTER, b, ZERO_KEY, KEYS[2]!),
      out(SA.RESERVE, a, KEYS[1]!, ZERO_KEY, 5),
    ]) {
      const r = applyPrRequest(s, req);
      expect(r.outcome.status).toBe('good');
      s = r.state;
    }
    // A holds a Write Exclusive - Registrants Only reservation; B is registered, not a holder.
    expect(applyPrRequest(s, { kind: 'reserve', nexus: b }).outcome.status).toBe('conflict');
    expect(applyPrRequest(s, { kind: 'release', nexus: b }).outcome.status).toBe('conflict');
    expect(applyPrRequest(s, { kind: 'reserve', nexus: a }).outcome.status).toBe('good');
    expect(applyPrRequest(s, { kind: 'release', nexus: a }).outcome.status).toBe('good');
  });
});

// A sanity check of the helpers themselves: the model and the view agree on a known case.
describe('reference model helpers', () => {
  it('name case does not make another I_T nexus', () => {
    expect(nx(NEXUSES[4]!)).toBe(nx(NEXUSES[0]!));
    expect(sameNexus(NEXUSES[4]!, NEXUSES[0]!)).toBe(true);
    expect(nx(NEXUSES[3]!)).not.toBe(nx(NEXUSES[0]!));
  });
});
