/**
 * Asymmetric logical unit access (ALUA, SPC-4 5.16): the target port groups of this node
 * and their asymmetric access states, as one LUN worker sees them.
 *
 * One node today: each distinct portal is one target port (relative target port
 * identifier = portal group tag) and its own target port group (group id = the same
 * number); the supervisor computes the topology (supervisor/topology.ts) and hands it
 * to every LUN worker as AluaWire. Every group starts in its configured state (config
 * `aluaStates`, default active/optimized); a configuration reload that changes a state
 * calls setPortGroupState. Access is implicit only
 * (TPGS = 01b in standard INQUIRY): the device server changes states itself, SET TARGET
 * PORT GROUPS is not supported.
 *
 * Ownership: one PortGroupTable per LUN worker, owned by that thread; each LU holds a
 * view (LuAlua) of the groups through which it is exported. A state change
 * (setPortGroupState: a configuration reload today, cluster failover later) updates the table and
 * establishes ASYMMETRIC ACCESS STATE CHANGED (2A/06) for every I_T nexus of every LU
 * that the group serves (SPC-4 5.16.2.6: implicit transitions are reported to all
 * nexuses, including the one whose command may have caused them).
 *
 * Which commands each state admits is the `alua` flag of each opcode registry row
 * (../opcode-registry.ts); access.ts applies it.
 */
import { SenseReason } from '../../../shared/scsi/sense.ts';
import { AluaState, AluaStatusCode, type AluaStateValue, type AluaWire } from '../../../shared/scsi/alua.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { establish } from '../ua/unit-attention.ts';

// The codes and the topology's wire form are shared with the supervisor (shared/scsi/alua.ts).
export { AluaState, AluaStatusCode, type AluaStateValue, type AluaWire };

export interface PortGroup {
  /** TARGET PORT GROUP (SPC-4 7.8.6.8), 1-65535. */
  readonly id: number;
  /** RELATIVE TARGET PORT IDENTIFIERs of the ports in the group (SPC-4 7.8.6.7). */
  readonly relativeTargetPortIds: readonly number[];
  state: AluaStateValue;
  /** Why the state last changed (reported in RTPG). */
  statusCode: number;
}

const ACTIVE = (s: AluaStateValue): boolean =>
  s === AluaState.ACTIVE_OPTIMIZED || s === AluaState.ACTIVE_NON_OPTIMIZED;

/** The states setPortGroupState accepts. */
const SETTABLE: ReadonlySet<number> = new Set(Object.values(AluaState));

export class PortGroupTable {
  readonly implicitTransitionSec: number;
  /** Ascending by id (the order RTPG reports them in). */
  readonly groups: readonly PortGroup[];
  readonly #byId = new Map<number, PortGroup>();
  /**
   * Groups in a state other than active/optimized or active/non-optimized. Zero is the
   * fast path of the pipeline check (access.ts): no nexus lookup at all.
   */
  inaccessible = 0;
  /** LUs to notify on a state change (attach). */
  readonly #units: LogicalUnit[] = [];
  /** Device name -> groups exporting it (AluaWire.deviceGroups). */
  #deviceGroups: Record<string, number[]> | undefined;

  constructor(wire: AluaWire) {
    this.implicitTransitionSec = Math.max(0, Math.min(255, Math.trunc(wire.implicitTransitionSec)));
    this.groups = wire.groups
      .map((g): PortGroup => ({
        id: g.id,
        relativeTargetPortIds: [...g.relativeTargetPortIds].sort((a, b) => a - b),
        state: AluaState.ACTIVE_OPTIMIZED,
        statusCode: AluaStatusCode.NO_STATUS,
      }))
      .sort((a, b) => a.id - b.id);
    for (const g of this.groups) this.#byId.set(g.id, g);
    this.#deviceGroups = wire.deviceGroups;
    // The configured starting states: the state at power on, so no unit attention.
    for (const s of wire.states ?? []) {
      const g = this.#byId.get(s.group);
      if (g === undefined || !SETTABLE.has(s.state) || s.state === g.state) continue;
      g.state = s.state;
      if (!ACTIVE(s.state)) this.inaccessible++;
    }
  }

  group(id: number): PortGroup | undefined {
    return this.#byId.get(id);
  }

  /** Give `lu` its view of the table (the groups exporting it) and register it for UAs. */
  attach(lu: LogicalUnit): void {
    const ids = this.#deviceGroups?.[lu.name];
    const groups = ids === undefined ? this.groups : this.groups.filter((g) => ids.includes(g.id));
    lu.alua = { table: this, groups };
    if (!this.#units.includes(lu)) this.#units.push(lu);
  }

  /**
   * A configuration reload changed which groups export which device (a target mapped
   * or unmapped it): re-attach every unit with its new view.
   */
  setDeviceGroups(deviceGroups: Record<string, number[]>): void {
    this.#deviceGroups = deviceGroups;
    for (const lu of [...this.#units]) this.attach(lu);
  }

  detach(lu: LogicalUnit): void {
    const i = this.#units.indexOf(lu);
    if (i >= 0) this.#units.splice(i, 1);
  }

  /**
   * Change the asymmetric access state of target port group `groupId` (an implicit
   * transition, SPC-4 5.16.2.6). Returns false when the group is unknown or the state
   * not supported; true otherwise (also when the state is unchanged: no UA then).
   */
  setPortGroupState(groupId: number, state: AluaStateValue): boolean {
    const g = this.#byId.get(groupId);
    if (g === undefined || !SETTABLE.has(state)) return false;
    if (g.state === state) return true;
    if (!ACTIVE(g.state)) this.inaccessible--;
    if (!ACTIVE(state)) this.inaccessible++;
    g.state = state;
    g.statusCode = AluaStatusCode.ALTERED_BY_IMPLICIT_BEHAVIOR;
    // SPC-4 5.16.2.6: the device server establishes ASYMMETRIC ACCESS STATE CHANGED for
    // every I_T nexus of each logical unit whose access through the group changed.
    for (const lu of this.#units) {
      if (lu.alua.groups.includes(g)) establish(lu, SenseReason.ASYMMETRIC_ACCESS_STATE_CHANGED);
    }
    return true;
  }

  /**
   * Explicit changes (SET TARGET PORT GROUPS, SPC-4 6.44): the new states, STATUS CODE
   * "altered by SET TARGET PORT GROUPS", and ASYMMETRIC ACCESS STATE CHANGED for every
   * I_T nexus of the affected LUs but the issuer (`exceptNexus`, SPC-4 5.16.2.6).
   */
  setExplicit(changes: readonly { group: number; state: AluaStateValue }[], exceptNexus: number): void {
    const touched = new Set<PortGroup>();
    for (const c of changes) {
      const g = this.#byId.get(c.group);
      if (g === undefined || !SETTABLE.has(c.state) || g.state === c.state) continue;
      if (!ACTIVE(g.state)) this.inaccessible--;
      if (!ACTIVE(c.state)) this.inaccessible++;
      g.state = c.state;
      g.statusCode = AluaStatusCode.ALTERED_BY_SET_TARGET_PORT_GROUPS;
      touched.add(g);
    }
    if (touched.size === 0) return;
    for (const lu of this.#units) {
      if (lu.alua.groups.some((g) => touched.has(g))) establish(lu, SenseReason.ASYMMETRIC_ACCESS_STATE_CHANGED, exceptNexus);
    }
  }
}

/** An LU's ALUA view: the worker's table and the groups through which the LU is exported. */
export interface LuAlua {
  readonly table: PortGroupTable;
  readonly groups: readonly PortGroup[];
}

/**
 * The view an LU has before its LUN worker attaches it (unit tests, tools): one group,
 * id 1, holding relative target port 1, active/optimized, like a one-portal target.
 */
export function standaloneAlua(): LuAlua {
  const table = new PortGroupTable({
    implicitTransitionSec: 0,
    groups: [{ id: 1, relativeTargetPortIds: [1] }],
  });
  return { table, groups: table.groups };
}

/**
 * The RELATIVE TARGET PORT IDENTIFIERs of every target port through which the LU is
 * exported (the ports of its groups), ascending. Persistent reservations use them for
 * ALL_TG_PT = 1 (SPC-4 6.16.3.1: "all target ports in the SCSI target device known to
 * the device server").
 */
export function luTargetPortIds(alua: LuAlua): number[] {
  const ids = new Set<number>();
  for (const g of alua.groups) for (const id of g.relativeTargetPortIds) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}
