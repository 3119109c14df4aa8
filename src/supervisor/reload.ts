/**
 * Runtime reconfiguration: what a new configuration file changes, whether that can be
 * applied while serving, and applying it (SIGHUP, serve.ts).
 *
 * Applied live, with the unit attentions SPC requires:
 *   - a device grows (`size`): CAPACITY DATA HAS CHANGED (2A/09) on every nexus;
 *   - a CD-ROM gets another image (`cdrom.path`): a medium change, NOT READY while the
 *     disc is swapped, then NOT READY TO READY CHANGE (28/00) on every nexus
 *     (workers/lun/mmc/medium.ts); refused by the LUN worker while the disc is locked;
 *   - devices added or removed (a removed one must be unmapped by the same file);
 *   - targets added or removed (on portals already served), a target's `luns`, `acls`,
 *     `defaultAccess`, `auth`, `alias`, and `discovery.auth`: every live session re-resolves
 *     its LUN map; a changed inventory gets REPORTED LUNS DATA HAS CHANGED (3F/0E), an
 *     initiator no longer admitted loses its session;
 *   - `aluaStates`: ASYMMETRIC ACCESS STATE CHANGED (2A/06) through the changed groups.
 *
 * Everything else is fixed for the run (portals are listening sockets, worker counts
 * size the data plane, iSCSI tuning is negotiated per session...): a file changing it is
 * refused as a whole, with the path of each offending field, and the running
 * configuration stays in force. So is shrinking a device (the blocks initiators wrote
 * past the new end would vanish under them) and any other change to a device.
 *
 * Which fields are which is not listed here: each row of the configuration schema says it
 * (`reload: live | restart | grow`, config/schema.ts), and RELOAD_POLICY is derived from the
 * rows. What stays here is how to compare them (portals as sets, sizes grow only) and the
 * checks against the running topology (portals served, target slots).
 *
 * Order of application (apply): LUN workers open new units and grow resized ones
 * (prepare); then session workers switch routes (nothing reaches a removed unit after
 * this); then LUN workers close removed units and change ALUA states (commit).
 */
import { isDeepStrictEqual } from 'node:util';
import type { BackingConfig, DeviceConfig, PortalConfig, SpindleConfig } from '../shared/config-types.ts';
import type { Infer } from '../shared/control/shape.ts';
import type { LUN_CONTROL } from '../shared/control/protocols.ts';
import type { Topology } from './topology.ts';
import { displayPortal, portalKey, RELOAD_POLICY } from './config/schema.ts';

export interface ReloadProblem {
  /** Config path of the field, e.g. `devices[1].ram.size`. */
  path: string;
  message: string;
}

export interface ReloadPlan {
  /** Devices new in this file. */
  add: DeviceConfig[];
  /** Devices that grow: name and new size in bytes. */
  grow: { name: string; sizeBytes: number }[];
  /** CD-ROM drives that get another disc: name and image path (null: none). */
  media: { name: string; path: string | null }[];
  /** Devices gone from this file. */
  remove: string[];
  /** Anything that changes the session workers' tables. */
  routesChanged: boolean;
  /** ALUA states differ. */
  aluaChanged: boolean;
  /** Nothing to do at all. */
  empty: boolean;
}

const RESTART = 'this applies at start only: restart spindle to change it';

/**
 * Compare the running configuration with a new one. Returns the plan, or every problem
 * that makes the new file impossible to apply while serving.
 */
export function planReload(
  current: SpindleConfig,
  next: SpindleConfig,
  topology: Topology,
): { plan: ReloadPlan } | { problems: ReloadProblem[] } {
  const problems: ReloadProblem[] = [];
  for (const key of RELOAD_POLICY.fixed) {
    if (!isDeepStrictEqual(current[key], next[key])) problems.push({ path: key, message: `changed; ${RESTART}` });
  }

  // ---- devices, by name ----
  const before = new Map(current.devices.map((d) => [d.name, d]));
  const plan: ReloadPlan = { add: [], grow: [], media: [], remove: [], routesChanged: false, aluaChanged: false, empty: false };
  next.devices.forEach((d, i) => {
    const old = before.get(d.name);
    if (old === undefined) {
      plan.add.push(d);
      return;
    }
    const at = `devices[${i}]`;
    const sizeAt = `${at}.${d.backing.type}.size`;
    if (backingReplaced(old.backing, d.backing)) {
      problems.push({ path: `${at}.${d.backing.type}`, message: `the backing store of device "${d.name}" cannot change while serving; remove the device, reload, then add it back` });
      return;
    }
    for (const k of RELOAD_POLICY.device.fixed) {
      if (!isDeepStrictEqual(old[k], d[k])) problems.push({ path: `${at}.${k}`, message: `changed on device "${d.name}"; ${RESTART}` });
    }
    const ob = old.backing;
    const nb = d.backing;
    if (ob.type === 'cdrom' && nb.type === 'cdrom') {
      // `cdrom.path` is live: another image is another disc in the drive.
      if (ob.path !== nb.path) plan.media.push({ name: d.name, path: nb.path ?? null });
      return;
    }
    if (RELOAD_POLICY.device.backing[nb.type]?.['size'] !== 'grow') return;
    const oldSize = sizeOf(ob);
    const newSize = sizeOf(nb);
    if (newSize === undefined) {
      // A block device without `size` is the whole device as it was at start.
      if (oldSize !== undefined)
        problems.push({ path: sizeAt, message: `removing the size of device "${d.name}" needs a restart (set a larger size to grow it while serving)` });
    } else if (oldSize !== undefined && newSize < oldSize) {
      problems.push({ path: sizeAt, message: `device "${d.name}" cannot shrink while serving (from ${oldSize} to ${newSize} bytes): initiators' data past the new end would vanish` });
    } else if (oldSize === undefined || newSize > oldSize) {
      // From the whole device to a size: the LUN worker refuses a size below today's.
      plan.grow.push({ name: d.name, sizeBytes: newSize });
    }
  });
  const names = new Set(next.devices.map((d) => d.name));
  for (const d of current.devices) if (!names.has(d.name)) plan.remove.push(d.name);

  // ---- targets: portals are listening sockets, fixed for the run ----
  const served = new Set(topology.portals.map((p) => portalKey(p)));
  const wanted = new Set(next.targets.flatMap((t) => t.portals.map(portalKey)));
  next.targets.forEach((t, i) => {
    t.portals.forEach((p, j) => {
      if (!served.has(portalKey(p))) problems.push({ path: `targets[${i}].portals[${j}]`, message: `a new portal needs a restart (spindle listens on ${topology.portals.length} portal(s) fixed at start)` });
    });
  });
  for (const p of topology.portals) {
    if (!wanted.has(portalKey(p))) {
      problems.push({ path: 'targets', message: `no target uses portal ${displayPortal(p)} any more; removing a portal needs a restart` });
    }
  }
  const oldTargets = new Map(current.targets.map((t) => [t.iqn, t]));
  next.targets.forEach((t, i) => {
    const old = oldTargets.get(t.iqn);
    if (old === undefined) return;
    for (const k of RELOAD_POLICY.target.fixed) {
      const same = k === 'portals' ? samePortals(old.portals, t.portals) : isDeepStrictEqual(old[k], t[k]);
      if (!same) problems.push({ path: `targets[${i}].${k}`, message: `changed on target ${t.iqn}; ${RESTART}` });
    }
  });
  const newTargets = next.targets.filter((t) => !oldTargets.has(t.iqn)).length;
  if (newTargets > topology.freeTargetSlots) problems.push({ path: 'targets', message: `too many targets added over the run; restart spindle` });

  if (problems.length > 0) return { problems };
  plan.routesChanged =
    plan.add.length > 0 || plan.remove.length > 0 || !isDeepStrictEqual(current.targets, next.targets) || !isDeepStrictEqual(current.discovery, next.discovery);
  plan.aluaChanged = !isDeepStrictEqual(current.aluaStates, next.aluaStates);
  plan.empty = !plan.routesChanged && !plan.aluaChanged && plan.grow.length === 0 && plan.media.length === 0;
  return { plan };
}

/** The configured size of a backing store (undefined: a block device's whole size, or a CD image's). */
function sizeOf(b: BackingConfig): number | undefined {
  return b.type === 'cdrom' ? undefined : b.size;
}

type LunPrepare = Infer<(typeof LUN_CONTROL)['b']['requests']['prepare']['body']>;
type LunCommit = Infer<(typeof LUN_CONTROL)['b']['requests']['commit']['body']>;

/** A different kind of backing store, or a change to one of its fixed fields (a file's path). */
function backingReplaced(a: BackingConfig, b: BackingConfig): boolean {
  if (a.type !== b.type) return true;
  const fields = RELOAD_POLICY.device.backing[b.type] ?? {};
  const get = (x: BackingConfig, k: string): unknown => (x as unknown as Readonly<Record<string, unknown>>)[k];
  return Object.entries(fields).some(([k, p]) => p !== 'grow' && p !== 'live' && !isDeepStrictEqual(get(a, k), get(b, k)));
}

/** The same listening sockets, in any order and any spelling of the address. */
function samePortals(a: readonly PortalConfig[], b: readonly PortalConfig[]): boolean {
  const x = new Set(a.map(portalKey));
  const y = new Set(b.map(portalKey));
  return x.size === y.size && [...x].every((k) => y.has(k));
}

/** How the supervisor reaches its workers (supervisor.ts): requests over the control channels. */
export interface WorkerBus {
  readonly lunWorkers: number;
  readonly sessionWorkers: number;
  /** Reload step 1 at LUN worker `w`; resolves with the error it reported, if any. */
  prepare(w: number, body: LunPrepare): Promise<string | undefined>;
  /** Reload step 3 at LUN worker `w`; resolves with the error it reported, if any. */
  commit(w: number, body: LunCommit): Promise<string | undefined>;
  /** Send new routes to every session worker; resolves once all applied them. */
  routes(config: SpindleConfig): Promise<string | undefined>;
}

/**
 * Apply `plan` (from planReload(current, next)). Resolves with undefined on success or
 * the error that stopped it. A failure to open a new device abandons the reload with
 * nothing changed; a failure growing a device leaves the devices already grown grown
 * (their unit attentions are out) and stops before routes change.
 */
export async function applyReload(
  plan: ReloadPlan,
  current: SpindleConfig,
  next: SpindleConfig,
  topology: Topology,
  bus: WorkerBus,
): Promise<string | undefined> {
  // 1. Prepare: place and open new units, grow resized ones.
  const placed = plan.add.map((d) => ({ d, place: topology.addDevice(d.name) }));
  const deviceGroups = topology.deviceGroups(next);
  const prepares: LunPrepare[] = Array.from({ length: bus.lunWorkers }, () => ({ add: [], grow: [], media: [], deviceGroups }));
  for (const { d, place } of placed) prepares[place.lunWorker]!.add.push({ luIndex: place.luIndex, device: d });
  for (const g of plan.grow) {
    const place = topology.device(g.name)!;
    prepares[place.lunWorker]!.grow.push({ luIndex: place.luIndex, sizeBytes: g.sizeBytes });
  }
  for (const m of plan.media) {
    const place = topology.device(m.name)!;
    prepares[place.lunWorker]!.media.push({ luIndex: place.luIndex, path: m.path ?? '' });
  }
  const prepared = await Promise.all(prepares.map((m, w) => bus.prepare(w, m)));
  const prepError = prepared.find((e) => e !== undefined);
  if (prepError !== undefined) {
    // Close whatever new units did open; no route ever led to them.
    const undo: LunCommit[] = Array.from({ length: bus.lunWorkers }, () => ({ remove: [], states: [] }));
    for (const { d, place } of placed) {
      topology.removeDevice(d.name);
      undo[place.lunWorker]!.remove.push(place.luIndex);
    }
    await Promise.all(undo.map((m, w) => (m.remove.length > 0 ? bus.commit(w, m) : undefined)));
    return prepError;
  }

  // 2. Routes: from here on, sessions see the new LUN maps and access rules.
  if (plan.routesChanged) {
    for (const t of next.targets) topology.targetSlot(t.iqn);
    const err = await bus.routes(next);
    if (err !== undefined) return err;
  }

  // 3. Commit: close removed units, change ALUA states.
  const commits: LunCommit[] = Array.from({ length: bus.lunWorkers }, () => ({ remove: [], states: [] }));
  for (const name of plan.remove) {
    const place = topology.removeDevice(name);
    if (place !== undefined) commits[place.lunWorker]!.remove.push(place.luIndex);
  }
  if (plan.aluaChanged) {
    const was = new Map(topology.aluaStates(current).map((s) => [s.group, s.state]));
    const changed = topology.aluaStates(next).filter((s) => was.get(s.group) !== s.state);
    for (const c of commits) c.states = changed;
  }
  const committed = await Promise.all(commits.map((m, w) => (m.remove.length > 0 || m.states.length > 0 ? bus.commit(w, m) : undefined)));
  return committed.find((e) => e !== undefined);
}
