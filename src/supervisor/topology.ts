/**
 * Where everything lives, as the supervisor decides it: which LUN worker (and unit index
 * on it) holds each device, which fabric port worker serves each portal (and so its
 * target portal group tag), which slot of the node-wide session counters each target
 * uses. Built from the configuration at startup and updated by configuration reloads
 * (reload.ts), which only ever append: a unit index or target slot is never reused while
 * spindle runs, so nothing still in flight can be misdirected to a newcomer.
 *
 * From it come the tables workers receive: the session workers' RoutesWire and the LUN
 * workers' ALUA topology.
 */
import type { AluaStateName, PortalConfig, SpindleConfig } from '../shared/config-types.ts';
import { AluaState, type AluaStateValue, type AluaWire } from '../shared/scsi/alua.ts';
import type { LunRoute, PortalRoute, RoutesWire } from '../shared/wire/routes.ts';
import { portalKey } from './config/schema.ts';
import { nodePortGroup, portalPortId } from './cluster/ids.ts';
import { MAX_TARGET_SLOTS } from '../shared/ring/session-counts.ts';

/**
 * IMPLICIT TRANSITION TIME reported in REPORT TARGET PORT GROUPS (SPC-4 6.36.2): how long
 * an initiator should allow an implicit ALUA transition (cluster failover) to take.
 */
const ALUA_IMPLICIT_TRANSITION_SEC = 30;

export { MAX_TARGET_SLOTS };

/** Config state names -> ASYMMETRIC ACCESS STATE codes (SPC-4 6.36.2 table 359). */
const ALUA_CODES: Record<AluaStateName, AluaStateValue> = {
  'active-optimized': AluaState.ACTIVE_OPTIMIZED,
  'active-non-optimized': AluaState.ACTIVE_NON_OPTIMIZED,
  standby: AluaState.STANDBY,
  unavailable: AluaState.UNAVAILABLE,
  transitioning: AluaState.TRANSITIONING,
};

export interface DevicePlace {
  lunWorker: number;
  luIndex: number;
}

export class Topology {
  readonly lunWorkers: number;
  /**
   * The portals this node listens on, one fabric port worker each; fixed for the run. One
   * node: every distinct portal, in order of first appearance, each its own target port
   * group (tag = group = index + 1). A cluster: this node's portals, numbered cluster-wide
   * (cluster/ids.ts), all in the node's port group.
   */
  readonly portals: PortalRoute[] = [];
  /** Every portal SendTargets lists: this node's first (same indexes), then other nodes'. */
  readonly advertised: PortalRoute[] = [];
  /** Cluster: every node's port group and the target ports in it, with the node id. */
  readonly clusterGroups: { node: string; id: number; relativeTargetPortIds: number[] }[] = [];
  readonly #portalIndex = new Map<string, number>();
  /** portalKey -> index in `advertised`. */
  readonly #advertisedIndex = new Map<string, number>();
  readonly #devices = new Map<string, DevicePlace>();
  /** Next unit index per LUN worker (indexes are never reused). */
  readonly #nextIndex: number[];
  /** Devices currently placed per LUN worker (placement balances on it). */
  readonly #load: number[];
  readonly #targetSlots = new Map<string, number>();
  #nextSlot = 0;

  /** Initial placement: devices round-robin over the LUN workers, as configured. */
  constructor(config: SpindleConfig, lunWorkers: number) {
    this.lunWorkers = lunWorkers;
    this.#nextIndex = new Array<number>(lunWorkers).fill(0);
    this.#load = new Array<number>(lunWorkers).fill(0);
    config.devices.forEach((d, i) => this.#put(d.name, i % lunWorkers));
    const cluster = config.cluster;
    if (cluster === undefined) {
      for (const t of config.targets) {
        for (const p of t.portals) {
          const k = portalKey(p);
          if (this.#portalIndex.has(k)) continue;
          this.#portalIndex.set(k, this.portals.length);
          // Each portal is one target port and its own target port group (tag = index + 1).
          const tag = this.portals.length + 1;
          this.portals.push({ host: p.host, port: p.port, tag, group: tag });
        }
      }
      this.advertised.push(...this.portals);
    } else {
      const own = cluster.nodes.filter((n) => n.id === config.nodeId);
      const others = cluster.nodes.filter((n) => n.id !== config.nodeId);
      for (const n of [...own, ...others]) {
        const group = nodePortGroup(n);
        const ids: number[] = [];
        for (const p of n.portals) {
          const tag = portalPortId(n.id, p);
          ids.push(tag);
          const route: PortalRoute = { host: p.host, port: p.port, tag, group, ...(n.id === config.nodeId ? {} : { remote: true }) };
          this.#advertisedIndex.set(portalKey(p), this.advertised.length);
          this.advertised.push(route);
          if (n.id === config.nodeId) {
            this.#portalIndex.set(portalKey(p), this.portals.length);
            this.portals.push(route);
          }
        }
        this.clusterGroups.push({ node: n.id, id: group, relativeTargetPortIds: ids });
      }
    }
    for (const t of config.targets) this.targetSlot(t.iqn);
  }

  #put(name: string, w: number): DevicePlace {
    const place = { lunWorker: w, luIndex: this.#nextIndex[w]! };
    this.#nextIndex[w]!++;
    this.#load[w]!++;
    this.#devices.set(name, place);
    return place;
  }

  device(name: string): DevicePlace | undefined {
    return this.#devices.get(name);
  }

  /** Place a device added by a reload on the LUN worker holding the fewest. */
  addDevice(name: string): DevicePlace {
    let best = 0;
    for (let w = 1; w < this.lunWorkers; w++) if (this.#load[w]! < this.#load[best]!) best = w;
    return this.#put(name, best);
  }

  removeDevice(name: string): DevicePlace | undefined {
    const place = this.#devices.get(name);
    if (place === undefined) return undefined;
    this.#devices.delete(name);
    this.#load[place.lunWorker]!--;
    return place;
  }

  /** The portal's index (fabric port worker), or undefined for a portal not served here. */
  portalIndex(p: PortalConfig): number | undefined {
    return this.#portalIndex.get(portalKey(p));
  }

  /** The portal's index in `advertised` (this node's or another's), or undefined. */
  advertisedIndex(p: PortalConfig): number | undefined {
    return this.#advertisedIndex.get(portalKey(p)) ?? this.#portalIndex.get(portalKey(p));
  }

  /** The target's session-counter slot, assigned on first use. Undefined when full. */
  targetSlot(iqn: string): number | undefined {
    let slot = this.#targetSlots.get(iqn);
    if (slot === undefined && this.#nextSlot < MAX_TARGET_SLOTS) {
      slot = this.#nextSlot++;
      this.#targetSlots.set(iqn, slot);
    }
    return slot;
  }

  /** Slots left for targets added by reloads. */
  get freeTargetSlots(): number {
    return MAX_TARGET_SLOTS - this.#nextSlot;
  }

  targetSlots(config: SpindleConfig): [string, number][] {
    return config.targets.map((t) => [t.iqn, this.targetSlot(t.iqn)!]);
  }

  /** The session workers' routing tables for `config` (every device must be placed). */
  routes(config: SpindleConfig): RoutesWire {
    const lunRoutes = (luns: Readonly<Record<number, string>>): [number, LunRoute][] =>
      Object.entries(luns).map(([lun, dev]): [number, LunRoute] => {
        const r = this.#devices.get(dev)!;
        return [Number(lun), { lunWorker: r.lunWorker, luIndex: r.luIndex, device: dev }];
      });
    return {
      portals: this.advertised,
      targets: config.targets.map((t) => ({
        iqn: t.iqn,
        alias: t.alias,
        auth: t.auth,
        luns: lunRoutes(t.luns),
        portals: t.portals.map((p) => this.advertisedIndex(p)).filter((i) => i !== undefined),
        // LUN masking (routes.ts routeFor): per-entry LUN maps, resolved like `luns`.
        ...(t.acls === undefined
          ? {}
          : {
              acls: t.acls.map((a) => ({
                initiators: [...a.initiators],
                luns: lunRoutes(a.luns),
                ...(a.auth === undefined ? {} : { auth: a.auth }),
              })),
            }),
        ...(t.defaultAccess === undefined ? {} : { defaultAccess: t.defaultAccess }),
      })),
    };
  }

  /**
   * ALUA (SPC-4 5.16): each portal is one target port and its own target port group, both
   * numbered by the portal's tag. A device's groups are the portals of every target that
   * maps it (in `luns` or an ACL entry).
   */
  deviceGroups(config: SpindleConfig): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    if (config.cluster !== undefined) {
      // Every node exports every LU: each LU is reachable through every node's group.
      const all = this.clusterGroups.map((g) => g.id);
      for (const d of config.devices) out[d.name] = [...all];
      return out;
    }
    for (const t of config.targets) {
      const tags = t.portals.map((p) => this.portals[this.portalIndex(p)!]!.tag);
      const devices = new Set([...Object.values(t.luns), ...(t.acls ?? []).flatMap((a) => Object.values(a.luns))]);
      for (const dev of devices) {
        const groups = (out[dev] ??= []);
        for (const tag of tags) if (!groups.includes(tag)) groups.push(tag);
      }
    }
    return out;
  }

  alua(config: SpindleConfig): AluaWire {
    if (config.cluster !== undefined) {
      return {
        implicitTransitionSec: ALUA_IMPLICIT_TRANSITION_SEC,
        groups: this.clusterGroups.map((g) => ({ id: g.id, relativeTargetPortIds: g.relativeTargetPortIds })),
        deviceGroups: this.deviceGroups(config),
        // Until the cluster says otherwise (lease taken, peers seen): not serving.
        states: this.clusterGroups.map((g) => ({ group: g.id, state: g.node === config.nodeId ? AluaState.TRANSITIONING : AluaState.UNAVAILABLE })),
      };
    }
    return {
      implicitTransitionSec: ALUA_IMPLICIT_TRANSITION_SEC,
      groups: this.portals.map((p) => ({ id: p.tag, relativeTargetPortIds: [p.tag] })),
      deviceGroups: this.deviceGroups(config),
      states: this.aluaStates(config),
    };
  }

  /** Target port group id -> configured state, for every group (absent: active/optimized). */
  aluaStates(config: SpindleConfig): { group: number; state: AluaStateValue }[] {
    const byIndex = new Map<number, AluaStateName>();
    for (const s of config.aluaStates) {
      const i = this.portalIndex(s.portal);
      if (i !== undefined) byIndex.set(i, s.state);
    }
    return this.portals.map((p, i) => ({ group: p.tag, state: ALUA_CODES[byIndex.get(i) ?? 'active-optimized'] }));
  }
}
