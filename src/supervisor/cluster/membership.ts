/**
 * Membership and leases (DESIGN.md "Leases"). Every node renews a lease key in Redis each
 * `renewMs`; the key lives `ttlMs` after each renewal. A node may serve I/O only while its
 * own view of the lease holds:
 *
 *     serving allowed while  now < sentAt(last successful renewal) + ttlMs - marginMs
 *
 * with `now` and `sentAt` on this process's monotonic clock. The renewal was sent before
 * Redis set the key's expiry, so the node's deadline always falls before the key can
 * expire in Redis, by at least `marginMs`: room for I/O already in flight when the node
 * fences itself, and for the clock-rate difference between node and Redis. Peers treat a
 * node whose key is gone as dead: they stop waiting for it and report its port group
 * unavailable.
 *
 * A renewal is refused when a peer revoked the lease (it waited too long for this node's
 * acknowledgement, see pr-store.ts) or when another process holds the key under the same
 * node id; either fences this node at once.
 *
 * The lease value carries `gen`, bumped each time this node completes a full
 * resynchronization: a peer waiting on this node may stop waiting when it sees `gen`
 * move (the node has since adopted everything in Redis, including the peer's change).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../shared/logging.ts';
import type { ClusterLeaseConfig } from '../../shared/cluster-config.ts';
import type { ClusterLink } from './cluster-link.ts';
import { RENEW_LEASE } from './scripts.ts';

export interface LeaseValue {
  readonly node: string;
  /** Random per process start: two processes with one node id are told apart. */
  readonly inc: string;
  /** Full resynchronizations completed by this process. */
  readonly gen: number;
  /** Wall-clock time of the renewal (diagnostics only). */
  readonly at: number;
}

export interface PeerView {
  readonly live: boolean;
  readonly lease: LeaseValue | null;
  /** Remaining lease time as Redis reports it (ms), 0 when dead. */
  readonly ttlMs: number;
}

export type LeaseLoss = 'expired' | 'revoked' | 'taken';

export class Membership {
  readonly node: string;
  readonly nodes: readonly string[];
  readonly incarnation = randomUUID();
  readonly #link: ClusterLink;
  readonly #lease: ClusterLeaseConfig;
  readonly #log: Logger;
  #gen = 0;
  /** Monotonic deadline (ms) until which this node may serve. */
  #validUntil = 0;
  #renewTimer: NodeJS.Timeout | null = null;
  #watchTimer: NodeJS.Timeout | null = null;
  /** The renewal in flight, if any (one at a time). */
  #renewing: Promise<boolean> | null = null;
  #holding = false;
  readonly #peers = new Map<string, PeerView>();
  /** Redis round-trip time of the last renewal (ms), for metrics. */
  lastRoundTripMs = 0;
  /** The lease can no longer be trusted: fence now. */
  onLost: (why: LeaseLoss) => void = () => {};
  /** A renewal succeeded while not holding the lease (after a loss, or the first one). */
  onRegained: () => void = () => {};
  /** Peer liveness changed (node id, now live?). */
  onPeerChange: (node: string, live: boolean) => void = () => {};

  constructor(link: ClusterLink, nodes: readonly string[], lease: ClusterLeaseConfig, log: Logger) {
    this.#link = link;
    this.node = link.node;
    this.nodes = nodes;
    this.#lease = lease;
    this.#log = log;
    link.cmd.defineCommand('spindleRenew', { numberOfKeys: 2, lua: RENEW_LEASE });
    for (const n of nodes) if (n !== this.node) this.#peers.set(n, { live: false, lease: null, ttlMs: 0 });
  }

  get gen(): number {
    return this.#gen;
  }

  /** A full resynchronization completed: tell waiting peers through the lease value. */
  bumpGen(): void {
    this.#gen++;
  }

  /** True while this node may serve I/O (its lease is certainly still valid). */
  get holding(): boolean {
    return this.#holding && performance.now() < this.#validUntil;
  }

  /** Milliseconds of lease left by this node's own clock (0 when not holding). */
  get remainingMs(): number {
    return this.#holding ? Math.max(0, this.#validUntil - performance.now()) : 0;
  }

  peer(node: string): PeerView | undefined {
    return this.#peers.get(node);
  }

  /** Peers whose lease is live now, with their resync generation. */
  livePeers(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [n, p] of this.#peers) if (p.live && p.lease !== null) out.set(n, p.lease.gen);
    return out;
  }

  start(): void {
    const tick = Math.max(20, Math.min(100, this.#lease.renewMs / 4));
    this.#renewTimer = setInterval(() => {
      if (this.#renewing === null) void this.renew();
    }, this.#lease.renewMs);
    this.#watchTimer = setInterval(() => this.#watch(), tick);
    this.#renewTimer.unref();
    this.#watchTimer.unref();
  }

  stop(): void {
    if (this.#renewTimer !== null) clearInterval(this.#renewTimer);
    if (this.#watchTimer !== null) clearInterval(this.#watchTimer);
    this.#renewTimer = null;
    this.#watchTimer = null;
    this.#holding = false;
  }

  /** Give the lease up now (clean shutdown): peers stop waiting for this node at once. */
  async release(): Promise<void> {
    this.stop();
    const k = this.#link.keys.lease(this.node);
    const cur = await this.#link.cmd.get(k).catch(() => null);
    if (cur !== null && (JSON.parse(cur) as LeaseValue).inc === this.incarnation) await this.#link.cmd.del(k).catch(() => 0);
  }

  /** One renewal, then a look at every peer's lease. Resolves false when it failed. */
  async renew(): Promise<boolean> {
    // A caller (a resynchronization that just bumped its generation) needs a renewal sent
    // after its call: wait out one in flight rather than report its outcome, or "false"
    // from a timer's renewal racing it would leave the node fenced with its lease held.
    while (this.#renewing !== null) await this.#renewing;
    const p = this.#renewOnce();
    this.#renewing = p;
    try {
      return await p;
    } finally {
      if (this.#renewing === p) this.#renewing = null;
    }
  }

  async #renewOnce(): Promise<boolean> {
    const keys = this.#link.keys;
    const sentAt = performance.now();
    try {
      const value: LeaseValue = { node: this.node, inc: this.incarnation, gen: this.#gen, at: Date.now() };
      const r = await (this.#link.cmd as unknown as { spindleRenew(...a: (string | number)[]): Promise<string> }).spindleRenew(
        keys.lease(this.node),
        keys.revoked(this.node),
        JSON.stringify(value),
        this.#lease.ttlMs,
        this.incarnation,
      );
      this.lastRoundTripMs = performance.now() - sentAt;
      if (r === 'REVOKED' || r === 'TAKEN') {
        this.#holding = false;
        this.#validUntil = 0;
        // Reported on every refused renewal, also when the lease had already run out here
        // (a partition longer than the lease): only a full resynchronization clears a
        // revocation, and nothing else would start one on a link that never dropped.
        this.onLost(r === 'REVOKED' ? 'revoked' : 'taken');
        return false;
      }
      this.#validUntil = sentAt + this.#lease.ttlMs - this.#lease.marginMs;
      const regained = !this.#holding;
      this.#holding = true;
      await this.#readPeers().catch((err: unknown) => this.#log.debug({ err: (err as Error).message }, 'reading peer leases failed'));
      if (regained) this.onRegained();
      return true;
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'lease renewal failed');
      return false;
    }
  }

  /** Clear a revocation of this node's lease (after a full resynchronization). */
  async clearRevocation(): Promise<void> {
    await this.#link.cmd.del(this.#link.keys.revoked(this.node));
  }

  /** Revoke a peer's lease: its next renewal fails, so it fences itself (pr-store.ts). */
  async revoke(node: string): Promise<void> {
    // The flag outlives any lease it could have to stop: the peer deletes it after resyncing.
    await this.#link.cmd.set(this.#link.keys.revoked(node), this.node, 'PX', this.#lease.ttlMs * 10);
  }

  async #readPeers(): Promise<void> {
    const peers = [...this.#peers.keys()];
    if (peers.length === 0) return;
    const keys = this.#link.keys;
    const pipe = this.#link.cmd.pipeline();
    for (const n of peers) {
      pipe.get(keys.lease(n));
      pipe.pttl(keys.lease(n));
    }
    const res = await pipe.exec();
    if (res === null) return;
    peers.forEach((n, i) => {
      const raw = res[2 * i]?.[1] as string | null | undefined;
      const ttl = Number(res[2 * i + 1]?.[1] ?? -2);
      let lease: LeaseValue | null = null;
      if (typeof raw === 'string') {
        try {
          lease = JSON.parse(raw) as LeaseValue;
        } catch {
          lease = null;
        }
      }
      const live = lease !== null && ttl > 0;
      const before = this.#peers.get(n);
      this.#peers.set(n, { live, lease, ttlMs: live ? ttl : 0 });
      if (before === undefined || before.live !== live) this.onPeerChange(n, live);
    });
  }

  /** Fence as soon as this node's own deadline passes, whatever Redis is doing. */
  #watch(): void {
    if (this.#holding && performance.now() >= this.#validUntil) {
      this.#holding = false;
      this.#log.error({ ttlMs: this.#lease.ttlMs, marginMs: this.#lease.marginMs }, 'lease not renewed in time: fencing this node');
      this.onLost('expired');
    }
  }
}
