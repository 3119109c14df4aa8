/**
 * The LU's side of persistent reservations (SPC-4 5.14) and SPC-2 reservations: a local
 * copy of the ClusterState entry that the conflict check (conflict.ts) reads
 * synchronously, the path by which PR OUT / RESERVE / RELEASE change it, and the unit
 * attentions and aborts SPC-4 requires as their side effects.
 *
 *   PR OUT ──> ClusterState.transition (atomic) ──> result ──> adopt(state) + effects
 *   other node ──> ClusterState event ──────────────────────> adopt(state) + effects
 *
 * READ/WRITE never wait: they read `reservationType` / `spc2Active` and, only while a
 * reservation exists, the role of their nexus (cached per nexus handle until the next
 * change). A change lands in the cache before the command that made it completes, so
 * the issuing initiator never observes the old state afterwards.
 */
import type { ClusterState, PrEffect, PrEvent, PrNexus, PrRequest, PrResult, PrState } from '../../../shared/state/cluster-state.ts';
import { EMPTY_PR_STATE, registrationCovers } from '../../../shared/state/cluster-state.ts';
import { holds, registrationOf } from '../../../shared/state/pr-transition.ts';
import { EmbeddedClusterState } from '../../../shared/state/embedded-state.ts';
import { SenseReason } from '../../../shared/scsi/sense.ts';
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import type { NexusInfo } from '../nexus.ts';
import { NO_HANDLE, establishFor } from '../ua/unit-attention.ts';
import path from 'node:path';

/** Role bits of an I_T nexus at this LU (cached per nexus handle). */
export const PrRole = {
  NONE: 0,
  /** Registered (has a reservation key). */
  REGISTERED: 1,
  /** Holds the persistent reservation (SPC-4 5.14.10). */
  HOLDER: 2,
  /** Holds the SPC-2 reservation. */
  SPC2_HOLDER: 4,
} as const;

export class PrEngine {
  /** The LU's key in ClusterState: its NAA designator as hex (same on every node). */
  readonly luKey: string;
  /** Current state (a copy; ClusterState is the truth). */
  state: PrState = EMPTY_PR_STATE;
  /** TYPE of the persistent reservation, 0 when none (conflict check fast path). */
  reservationType = 0;
  /** An SPC-2 reservation exists (conflict check fast path). */
  spc2Active = false;
  private readonly lu: LogicalUnit;
  private readonly store: ClusterState;
  private readonly ownsStore: boolean;
  /** Reservation commands in run() (not waited for by fence()). */
  private readonly running = new Set<ScsiCommand>();
  /** nexus handle → PrRole bits for `state`; cleared on every change. */
  private readonly roles = new Map<number, number>();
  private unsubscribe: () => void = () => {};

  private constructor(lu: LogicalUnit, store: ClusterState, ownsStore: boolean) {
    this.lu = lu;
    this.store = store;
    this.ownsStore = ownsStore;
    this.luKey = lu.naa.toString('hex');
  }

  /**
   * Load the LU's state. Without a shared `store`, an embedded one persisting under
   * `<stateDir>/pr/` (memory only without stateDir).
   */
  static async open(lu: LogicalUnit, stateDir: string | undefined, store?: ClusterState): Promise<PrEngine> {
    const own = store === undefined;
    const s = store ?? new EmbeddedClusterState(stateDir === undefined ? null : path.join(stateDir, 'pr'));
    const e = new PrEngine(lu, s, own);
    // Follow changes from before the load is asked for: one that crosses the load (made
    // after the state was read, delivered before or after the answer) waits here until
    // the loaded state is adopted, then applies on top of it (or is found already in it).
    // Its acknowledgement, and so its writer's GOOD, waits for that too.
    let loaded!: () => void;
    const ready = new Promise<void>((r) => (loaded = r));
    e.unsubscribe = s.subscribe(e.luKey, async (ev) => {
      await ready;
      await e.onEvent(ev);
    });
    try {
      e.adopt(await s.loadPr(e.luKey));
    } catch (err) {
      e.unsubscribe();
      throw err;
    }
    loaded();
    return e;
  }

  async close(): Promise<void> {
    this.unsubscribe();
    if (this.ownsStore) await this.store.close();
  }

  /**
   * The PR identity of a nexus handle. Before the LUN worker knows the handle (unit tests
   * without a directory) a stand-in identity keeps PR usable per handle.
   */
  nexusOf(handle: number): PrNexus {
    return this.lu.nexuses.get(handle) ?? standIn(handle);
  }

  /**
   * PrRole bits of `handle` under the current state. Allocation: one Map entry per
   * nexus after each change of the state; none on repeated calls.
   */
  roleOf(handle: number): number {
    const cached = this.roles.get(handle);
    if (cached !== undefined) return cached;
    const n = this.nexusOf(handle);
    const s = this.state;
    const reg = registrationOf(s, n);
    let role = 0;
    if (reg !== undefined) role |= PrRole.REGISTERED;
    if (holds(s.reservation, reg)) role |= PrRole.HOLDER;
    const c = s.spc2;
    if (c !== null && c.isid === n.isid && c.relativeTargetPortId === n.relativeTargetPortId && c.initiatorName.toLowerCase() === n.initiatorName.toLowerCase())
      role |= PrRole.SPC2_HOLDER;
    this.roles.set(handle, role);
    return role;
  }

  /**
   * Run one transition for the command `cmd` (its nexus is the issuer), adopt the new
   * state and queue the unit attentions. Resolves with the result once that is done and,
   * for PREEMPT AND ABORT, once no command of a preempted nexus is in the task set.
   */
  async run(request: PrRequest, cmd: ScsiCommand | null): Promise<PrResult> {
    if (cmd !== null) this.running.add(cmd);
    try {
      const result = await this.store.transition(this.luKey, request);
      const changed = result.state !== this.state && result.state.version > this.state.version;
      if (changed) this.adopt(result.state);
      const issuer = cmd === null ? -1 : cmd.nexus;
      this.applyEffects(result.effects, issuer);
      const aborting = result.effects.filter((e) => e.abort && e.registrations.length > 0);
      if (aborting.length > 0) await this.drainPreempted(aborting, cmd);
      // Fencing: nothing admitted under the previous state may still be writing once the
      // change is reported (see fence()).
      if (changed) await this.fence();
      return result;
    } finally {
      if (cmd !== null) this.running.delete(cmd);
    }
  }

  /**
   * After a change of the reservation state: resolve once every command that passed the
   * conflict check under the previous state has finished, so a PREEMPT, CLEAR or release
   * reported GOOD can no longer be overtaken by a write it took access from (DESIGN.md
   * "Fencing"). Reservation commands still running here are not waited for: they change
   * no data, and two of them waiting for each other would never finish.
   */
  private fence(): Promise<void> {
    return this.lu.taskSet.barrier((c) => this.running.has(c));
  }

  /** Forget cached roles of a handle whose session ended. */
  forget(handle: number): void {
    this.roles.delete(handle);
  }

  private adopt(s: PrState): void {
    // Who may READ and WRITE changes with the reservation (SPC-4 5.14.1): void inline I/O grants.
    this.lu.invalidateInline();
    this.state = s;
    this.reservationType = s.reservation === null ? 0 : s.reservation.type;
    this.spc2Active = s.spc2 !== null;
    this.roles.clear();
  }

  /**
   * A change made elsewhere (another node). Resolves when it is adopted and fenced (the
   * cluster store then acknowledges it to its writer). An event that does not follow the
   * state held here (a gap: events were missed, or a full reload after a reconnect) carries
   * effects relative to a state this LU never had: the unit attentions are derived from
   * the difference instead (effectsOfChange).
   */
  private async onEvent(ev: PrEvent): Promise<void> {
    if (ev.state.version <= this.state.version) return;
    const before = this.state;
    const gap = ev.reload === true || ev.state.version !== before.version + 1;
    this.adopt(ev.state);
    this.applyEffects(gap ? effectsOfChange(before, ev.state) : ev.effects, -1);
    const aborting = gap ? [] : ev.effects.filter((e) => e.abort && e.registrations.length > 0);
    if (aborting.length > 0) await this.drainPreempted(aborting, null);
    await this.fence();
  }

  /** Does effect `e` reach the I_T nexus `n`? */
  private reaches(e: PrEffect, n: PrNexus): boolean {
    const x = e.except;
    if (x !== null && x.isid === n.isid && x.relativeTargetPortId === n.relativeTargetPortId && x.initiatorName.toLowerCase() === n.initiatorName.toLowerCase())
      return false;
    return e.registrations.some((r) => registrationCovers(r, n));
  }

  /** SPC-4 5.14.11: queue the unit attentions for the nexuses this node hosts. */
  private applyEffects(effects: readonly PrEffect[], issuer: number): void {
    for (const e of effects) {
      if (e.ua === null || e.registrations.length === 0) continue;
      // Every identity the LU knows, also those without a session now (they learn it
      // when they come back): ua/unit-attention.ts keys conditions by identity.
      establishFor(
        this.lu,
        SenseReason[e.ua],
        (u) => !(u.handle !== NO_HANDLE && u.handle === issuer) && this.reaches(e, u.info ?? this.nexusOf(u.handle)),
      );
    }
  }

  /**
   * PREEMPT AND ABORT (SPC-4 5.14.11.4.5): the preempted nexuses' commands must not
   * complete after the PREEMPT AND ABORT does. Commands already executing are waited for
   * (lu.taskSet.whenNone); every command they send afterwards meets the new state in the
   * conflict check (or their REGISTRATIONS PREEMPTED unit attention) and does not execute.
   * Commands queued behind an LU-wide exclusive command re-enter the pipeline and are
   * checked then. Only nexuses hosted here are waited for; another node drains its own.
   */
  private drainPreempted(effects: readonly PrEffect[], cmd: ScsiCommand | null): Promise<void> {
    const verdict = new Map<number, boolean>();
    const preempted = (c: ScsiCommand): boolean => {
      if (c === cmd) return false;
      let v = verdict.get(c.nexus);
      if (v === undefined) {
        const n = this.nexusOf(c.nexus);
        v = cmd !== null && c.nexus === cmd.nexus ? false : effects.some((e) => this.reaches(e, n));
        verdict.set(c.nexus, v);
      }
      return v;
    };
    return new Promise((resolve) => this.lu.taskSet.whenNone(preempted, resolve));
  }
}

/** Stand-in identity of an unknown handle: its own initiator port on target port 1. */
function standIn(handle: number): PrNexus {
  return { initiatorName: `nexus-${handle >>> 0}`, isid: '000000000000', relativeTargetPortId: 1 };
}

/** A NexusInfo as the PR identity (it already has the fields). */
export function prNexus(info: NexusInfo): PrNexus {
  return info;
}

/**
 * I_T nexus loss (called from nexus-events.ts): releases the nexus's SPC-2 reservation
 * (SAM-5 6.3.4); registrations and persistent reservations survive (SPC-4 5.14.1).
 */
export function prNexusLost(lu: LogicalUnit, handle: number, info: NexusInfo | undefined): void {
  const pr = lu.pr;
  if (pr === undefined) return;
  const nexus = info ?? pr.nexusOf(handle);
  pr.forget(handle);
  if (pr.spc2Active) void pr.run({ kind: 'nexus-loss', nexus }, null).catch(() => undefined);
}

/**
 * LOGICAL UNIT RESET and target resets (SAM-5 6.3.2): release the SPC-2 reservation.
 * Persistent reservations survive resets. Resolves when the state has changed.
 */
export async function prLogicalUnitReset(lu: LogicalUnit): Promise<void> {
  if (lu.pr?.spc2Active) await lu.pr.run({ kind: 'reset' }, null);
}

/**
 * The unit attentions a change from `before` to `after` requires, derived from the two
 * states alone (SPC-4 5.14.11): for a change whose own effects are unknown (events were
 * missed). Registrations gone: REGISTRATIONS PREEMPTED for them. A reservation gone or
 * replaced: RESERVATIONS RELEASED (gone) or RESERVATIONS PREEMPTED (another holder or
 * type) for the registrants that remain.
 */
export function effectsOfChange(before: PrState, after: PrState): PrEffect[] {
  const out: PrEffect[] = [];
  const still = new Set(after.registrations.map((r) => r.id));
  const gone = before.registrations.filter((r) => !still.has(r.id));
  if (gone.length > 0) out.push({ ua: 'REGISTRATIONS_PREEMPTED', abort: false, registrations: gone, except: null });
  const a = before.reservation;
  const b = after.reservation;
  if (a !== null && (b === null || b.type !== a.type || b.holder !== a.holder)) {
    const remaining = after.registrations;
    if (remaining.length > 0)
      out.push({ ua: b === null ? 'RESERVATIONS_RELEASED' : 'RESERVATIONS_PREEMPTED', abort: false, registrations: remaining, except: null });
  }
  return out;
}
