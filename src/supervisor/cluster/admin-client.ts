/**
 * Operator actions on a cluster from any machine that has the configuration and reaches
 * Redis (spindle cluster status, spindle node drain|undrain|fence, spindle cluster
 * recover). No lease is taken and nothing is served: the client reads and writes the
 * cluster's keys and events as the nodes do, and the nodes act on them.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SpindleConfig } from '../../shared/config-types.ts';
import type { PrState } from '../../shared/state/cluster-state.ts';
import { luKey } from '../../shared/scsi/lu-identity.ts';
import { AluaState } from '../../shared/scsi/alua.ts';
import { createClient } from './redis-connection.ts';
import { ClusterKeys } from './keys.ts';
import { encodeEvent, type ClusterEvent } from './events.ts';
import { STREAM_MAXLEN } from './cluster-link.ts';
import { nodePortGroup } from './ids.ts';
import type { LeaseValue } from './membership.ts';
import { AdminState } from './cluster-node.ts';
import { parseState } from './pr-store.ts';

export interface NodeStatus {
  readonly id: string;
  readonly portals: string[];
  readonly portGroup: number;
  readonly live: boolean;
  /** Lease time left in Redis (ms), 0 when dead. */
  readonly leaseMs: number;
  readonly admin: AdminState;
  /** The port group's asymmetric access state as peers report it. */
  readonly alua: string;
  readonly incarnation: string | null;
  /** The node found Redis had lost the cluster state (it left a recovery snapshot). */
  readonly sawLoss: boolean;
}

export interface LuStatus {
  readonly device: string;
  readonly key: string;
  readonly version: number;
  readonly generation: number;
  readonly registrations: number;
  readonly reservation: { readonly type: number; readonly holder: string | null; readonly key: string | null } | null;
  readonly spc2: string | null;
}

export interface ClusterStatus {
  readonly cluster: string;
  readonly epoch: string | null;
  readonly nodes: NodeStatus[];
  readonly lus: LuStatus[];
}

const ALUA_NAMES: Record<number, string> = {
  [AluaState.ACTIVE_OPTIMIZED]: 'active-optimized',
  [AluaState.ACTIVE_NON_OPTIMIZED]: 'active-non-optimized',
  [AluaState.STANDBY]: 'standby',
  [AluaState.UNAVAILABLE]: 'unavailable',
  [AluaState.TRANSITIONING]: 'transitioning',
};

export class ClusterAdmin {
  readonly #config: SpindleConfig;
  readonly #keys: ClusterKeys;
  readonly #redis: Redis;

  private constructor(config: SpindleConfig, redis: Redis) {
    this.#config = config;
    this.#keys = new ClusterKeys(config.clusterId);
    this.#redis = redis;
  }

  static async connect(config: SpindleConfig): Promise<ClusterAdmin> {
    if (config.cluster === undefined) throw new Error('the configuration has no cluster section');
    const redis = createClient(config.cluster.redis, { commandTimeoutMs: 5000, clientName: 'spindle-cli' });
    await redis.connect();
    return new ClusterAdmin(config, redis);
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async status(): Promise<ClusterStatus> {
    const c = this.#config.cluster!;
    const k = this.#keys;
    const r = this.#redis;
    const epoch = await r.get(k.epoch);
    const explicit = await r.hgetall(k.alua);
    const nodes: NodeStatus[] = [];
    for (const n of c.nodes) {
      const [raw, ttl, admin, recovery] = await Promise.all([r.get(k.lease(n.id)), r.pttl(k.lease(n.id)), r.get(k.admin(n.id)), r.exists(k.recovery(n.id))]);
      const lease = raw === null ? null : (JSON.parse(raw) as LeaseValue);
      const live = lease !== null && ttl > 0;
      const a = (Object.values(AdminState) as string[]).includes(admin ?? '') ? (admin as AdminState) : AdminState.ACTIVE;
      const group = nodePortGroup(n);
      const state = !live
        ? AluaState.UNAVAILABLE
        : a === AdminState.DRAINING
          ? AluaState.TRANSITIONING
          : a === AdminState.DRAINED
            ? AluaState.STANDBY
            : a === AdminState.FENCED
              ? AluaState.UNAVAILABLE
              : Number(explicit[String(group)] ?? AluaState.ACTIVE_OPTIMIZED);
      nodes.push({
        id: n.id,
        portals: n.portals.map((p) => (p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`)),
        portGroup: group,
        live,
        leaseMs: live ? ttl : 0,
        admin: a,
        alua: ALUA_NAMES[state] ?? String(state),
        incarnation: lease?.inc ?? null,
        sawLoss: recovery === 1,
      });
    }
    const lus: LuStatus[] = [];
    for (const d of this.#config.devices) {
      const key = luKey(this.#config.clusterId, d.name);
      const raw = await r.get(k.pr(key));
      const s: PrState | null = raw === null ? null : parseState(raw);
      const res = s?.reservation ?? null;
      const holderReg = res?.holder === null || res === null ? undefined : s?.registrations.find((x) => x.id === res.holder);
      lus.push({
        device: d.name,
        key,
        version: s?.version ?? 0,
        generation: s?.generation ?? 0,
        registrations: s?.registrations.length ?? 0,
        reservation: res === null ? null : { type: res.type, holder: res.holder, key: holderReg?.key ?? null },
        spc2: s?.spc2 === null || s === null ? null : `${s.spc2.initiatorName},i,0x${s.spc2.isid}|${s.spc2.relativeTargetPortId}`,
      });
    }
    return { cluster: this.#config.clusterId, epoch, nodes, lus };
  }

  /** Set `node`'s admin state and tell every node (they act on the event). */
  async setAdmin(node: string, state: AdminState): Promise<void> {
    if (!this.#config.cluster!.nodes.some((n) => n.id === node)) throw new Error(`no node ${JSON.stringify(node)} in cluster.nodes`);
    await this.#redis.set(this.#keys.admin(node), state);
    await this.#publish({ k: 'admin', o: 'cli', node, state });
  }

  async admin(node: string): Promise<AdminState> {
    const a = await this.#redis.get(this.#keys.admin(node));
    return (Object.values(AdminState) as string[]).includes(a ?? '') ? (a as AdminState) : AdminState.ACTIVE;
  }

  async #publish(e: ClusterEvent): Promise<void> {
    await this.#redis.xadd(this.#keys.events, 'MAXLEN', '~', STREAM_MAXLEN, '*', 'e', encodeEvent(e));
  }

  /**
   * After Redis lost the cluster state: what the nodes still knew (their recovery
   * snapshots), per LU the newest version any node saw. With `apply`, write those states,
   * start a new epoch (the old ones are remembered, so nodes that knew them follow) and
   * tell every node to resynchronize.
   */
  async recover(apply: boolean): Promise<{ lus: { key: string; version: number; from: string }[]; applied: boolean; epoch: string | null }> {
    const k = this.#keys;
    const r = this.#redis;
    const best = new Map<string, { state: PrState; from: string }>();
    const epochs = new Set<string>();
    for (const n of this.#config.cluster!.nodes) {
      const raw = await r.get(k.recovery(n.id));
      if (raw === null) continue;
      const snap = JSON.parse(raw) as { epoch: string | null; pr: Record<string, PrState> };
      if (snap.epoch !== null) epochs.add(snap.epoch);
      for (const [lu, s] of Object.entries(snap.pr)) {
        const cur = best.get(lu);
        if (cur === undefined || s.version > cur.state.version) best.set(lu, { state: s, from: n.id });
      }
    }
    const lus = [...best].map(([key, b]) => ({ key, version: b.state.version, from: b.from }));
    if (!apply) return { lus, applied: false, epoch: await r.get(k.epoch) };
    const old = await r.get(k.epoch);
    if (old !== null) epochs.add(old);
    const epoch = randomUUID();
    const tx = r.multi();
    for (const [lu, b] of best) {
      // Above anything a node may have cached, so every node adopts it.
      tx.set(k.pr(lu), JSON.stringify({ ...b.state, version: b.state.version + 1 }));
    }
    for (const e of epochs) tx.sadd(`${k.prefix}epoch-history`, e);
    tx.set(k.epoch, epoch);
    for (const n of this.#config.cluster!.nodes) tx.del(k.recovery(n.id));
    await tx.exec();
    await this.#publish({ k: 'resync', o: 'cli' });
    return { lus, applied: true, epoch };
  }
}
