/**
 * Persistent reservations held in Redis (the supervisor's side of RedisClusterState):
 * one JSON PrState per LU, changed only by compare-and-set on its version, with the
 * change published on the event stream in the same atomic step (scripts.ts CAS_PR).
 *
 * A transition: read the state, run the pure SPC-4 transition (applyPrRequest, the same
 * function the embedded store runs), compare-and-set, retry on a version conflict. Then
 * fencing (DESIGN.md "Fencing"): the change is returned to the issuing LU only after
 * every peer that held a live lease when it was made has acknowledged it, which a peer
 * does once it has adopted the state and nothing it admitted under the old one can still
 * write. A peer that does not acknowledge within `ackTimeoutMs` has its lease revoked
 * (its next renewal fails and it fences itself); the transition then waits until that
 * peer's lease is gone or it has resynchronized (its lease `gen` moved).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../shared/logging.ts';
import type { PrRequest, PrResult, PrState } from '../../shared/state/cluster-state.ts';
import { EMPTY_PR_STATE } from '../../shared/state/cluster-state.ts';
import { applyPrRequest } from '../../shared/state/pr-transition.ts';
import { ControlError } from '../../shared/control/errors.ts';
import type { ClusterLink } from './cluster-link.ts';
import { STREAM_MAXLEN } from './cluster-link.ts';
import type { Membership } from './membership.ts';
import { CAS_PR, PUBLISH_FENCED } from './scripts.ts';
import type { LeaseValue } from './membership.ts';
import type { AckWait } from './cluster-link.ts';
import { encodeEvent, prRef, type ClusterEvent } from './events.ts';

/** Error codes a failed transition carries to the LU (which maps them to sense data). */
export const ClusterErrorCode = {
  /** Redis cannot be reached, or this node does not hold its lease. */
  UNAVAILABLE: 'ERR_CLUSTER_UNAVAILABLE',
  /** Redis lost the cluster state (the epoch check in cluster-link.ts): PR OUT is refused until an operator recovers it. */
  STATE_LOST: 'ERR_CLUSTER_STATE_LOST',
  /** Too many concurrent changes of one LU. */
  BUSY: 'ERR_CLUSTER_BUSY',
} as const;

const MAX_CAS_ATTEMPTS = 64;
/**
 * How long a hold (broadcast with giveUp) waits for acknowledgements at most: the nodes
 * that did acknowledge keep the LU's commands queued meanwhile, so a dead peer whose
 * lease still lives must cost each retry little.
 */
const HOLD_ACK_MS = 1000;

export interface PrStoreOptions {
  /** How long peers get to acknowledge a change before their lease is revoked. */
  readonly ackTimeoutMs: number;
  /** Lease time to live (bounds the wait for a revoked peer). */
  readonly leaseTtlMs: number;
  /** Redis replicas that must confirm a change before it is reported (0: none). */
  readonly waitReplicas: number;
}

/** Latency of the last transitions, for the bench and metrics. */
export interface PrTiming {
  readonly totalMs: number;
  readonly ackMs: number;
  readonly attempts: number;
}

export class PrStore {
  readonly #link: ClusterLink;
  readonly #members: Membership;
  readonly #log: Logger;
  readonly #o: PrStoreOptions;
  /** Whether PR OUT may run (false while the epoch is lost or the node is fenced). */
  usable: () => string | null = () => null;
  onTiming: (t: PrTiming) => void = () => {};
  /** Changes reported although fewer than `waitReplicas` replicas confirmed them in time. */
  unreplicated = 0;

  constructor(link: ClusterLink, members: Membership, o: PrStoreOptions, log: Logger) {
    this.#link = link;
    this.#members = members;
    this.#o = o;
    this.#log = log;
    // Key counts vary with the number of peers: the first argument is the key count.
    link.changes.defineCommand('spindleCasPr', { lua: CAS_PR });
    link.cmd.defineCommand('spindlePublishFenced', { lua: PUBLISH_FENCED });
  }

  /** The current state of `lu` in Redis (EMPTY when it has none yet). */
  async load(lu: string): Promise<PrState> {
    const raw = await this.#link.cmd.get(this.#link.keys.pr(lu));
    return raw === null ? EMPTY_PR_STATE : parseState(raw);
  }

  /** Apply `req` to `lu` cluster-wide; see the file comment. */
  async transition(lu: string, req: PrRequest): Promise<PrResult> {
    const refusal = this.usable();
    if (refusal !== null) throw new ControlError(refusal === 'lost' ? ClusterErrorCode.STATE_LOST : ClusterErrorCode.UNAVAILABLE, `cluster state unavailable: ${refusal}`);
    const started = performance.now();
    const keys = this.#link.keys;
    const epoch = this.#link.epoch;
    if (epoch === null) throw new ControlError(ClusterErrorCode.UNAVAILABLE, 'no cluster epoch');
    for (let attempt = 1; attempt <= MAX_CAS_ATTEMPTS; attempt++) {
      let before: PrState;
      try {
        before = await this.load(lu);
      } catch (err) {
        throw new ControlError(ClusterErrorCode.UNAVAILABLE, `redis: ${(err as Error).message}`);
      }
      const result = applyPrRequest(before, req);
      if (result.state === before) return result;
      // Peers that must adopt this change before it is reported: those alive as last seen,
      // and (added below) any other whose lease exists when the change is made.
      const peers = this.#members.livePeers();
      const ref = prRef(lu, result.state.version);
      const wait = this.#link.awaitAcks(ref, new Set(peers.keys()));
      const leaseKeys = this.#peerLeaseKeys();
      let answer: string[];
      try {
        answer = (await (this.#link.changes as unknown as { spindleCasPr(...a: (string | number)[]): Promise<string[]> }).spindleCasPr(
          3 + leaseKeys.length,
          keys.pr(lu),
          keys.events,
          keys.epoch,
          ...leaseKeys,
          epoch,
          String(before.version),
          JSON.stringify(result.state),
          encodeEvent({ k: 'pr', o: this.#link.node, lu, v: result.state.version, s: result.state, e: [...result.effects] }),
          STREAM_MAXLEN,
        ));
      } catch (err) {
        this.#link.cancelAcks(ref);
        // Unknown whether it was applied: the LU follows the stream either way.
        throw new ControlError(ClusterErrorCode.UNAVAILABLE, `redis: ${(err as Error).message}`);
      }
      if (answer[0] === 'CONFLICT') {
        this.#link.cancelAcks(ref);
        continue;
      }
      if (answer[0] === 'EPOCH') {
        this.#link.cancelAcks(ref);
        throw new ControlError(ClusterErrorCode.STATE_LOST, 'the cluster epoch in Redis changed');
      }
      const committed = performance.now();
      this.#joinLivePeers(wait, peers, answer.slice(2));
      // Both at once; neither fails (the change is committed: see #replicated).
      await Promise.all([this.#replicated(ref), this.#fence(ref, wait, peers)]);
      this.onTiming({ totalMs: performance.now() - started, ackMs: performance.now() - committed, attempts: attempt });
      return result;
    }
    throw new ControlError(ClusterErrorCode.BUSY, `${lu}: too many concurrent reservation changes`);
  }

  /**
   * Publish `event` and return once every live peer has acknowledged `ref` (or been
   * fenced off, as for a reservation change). For cluster-wide task management.
   * `giveUp`: a peer silent past ackTimeoutMs fails the broadcast instead (UNAVAILABLE)
   * and keeps its lease: for a request that may be retried (a hold for COMPARE AND WRITE),
   * where one slow peer must not cost that peer its lease.
   */
  async broadcast(event: ClusterEvent, ref: string, giveUp = false): Promise<void> {
    const refusal = this.usable();
    if (refusal !== null) throw new ControlError(refusal === 'lost' ? ClusterErrorCode.STATE_LOST : ClusterErrorCode.UNAVAILABLE, `cluster unavailable: ${refusal}`);
    const peers = this.#members.livePeers();
    const wait = this.#link.awaitAcks(ref, new Set(peers.keys()));
    const epoch = this.#link.epoch;
    const leaseKeys = this.#peerLeaseKeys();
    let answer: string[] | null;
    try {
      if (epoch === null) throw new Error('no cluster epoch');
      answer = await (this.#link.cmd as unknown as { spindlePublishFenced(...a: (string | number)[]): Promise<string[] | null> }).spindlePublishFenced(
        2 + leaseKeys.length,
        this.#link.keys.events,
        this.#link.keys.epoch,
        ...leaseKeys,
        epoch,
        encodeEvent(event),
        STREAM_MAXLEN,
      );
      if (answer === null) throw new Error('cluster epoch changed');
    } catch (err) {
      this.#link.cancelAcks(ref);
      throw new ControlError(ClusterErrorCode.UNAVAILABLE, `redis: ${(err as Error).message}`);
    }
    this.#joinLivePeers(wait, peers, answer.slice(1));
    if (giveUp) {
      // No peer is dropped from this wait: this node's view of the leases can be older
      // than the one the script just read (a peer that joined since the last renewal),
      // and a peer that resynchronized did not close its gate by doing so. A dead peer is
      // left out of later attempts once its lease is gone from Redis.
      const acked = await Promise.race([wait.done.then(() => true), sleep(Math.min(HOLD_ACK_MS, this.#o.ackTimeoutMs)).then(() => false)]);
      if (!acked || !wait.settled) {
        const silent = [...wait.pending];
        this.#link.cancelAcks(ref);
        throw new ControlError(ClusterErrorCode.UNAVAILABLE, `peers did not acknowledge in time: ${silent.join(', ')}`);
      }
      return;
    }
    await this.#fence(ref, wait, peers);
  }

  /**
   * Redis WAIT for the replicas to confirm the change just written on `changes` (which
   * asks them at once, REPLCONF GETACK). Replication is asynchronous: without this a PR
   * OUT could complete while its change exists only on the master, and a failover then
   * loses it (the nodes find a version older than one they adopted: lost state, PR OUT
   * refused until `spindle cluster recover`). Past the wait the change is reported anyway,
   * with a warning: a replica down for maintenance must not stop reservations, and the
   * master still holds the change. The same when the WAIT itself fails: the change is
   * committed and every peer adopted it, so reporting it as failed would leave this
   * node's LU, which adopts its own changes only from the answer, on the old state.
   */
  async #replicated(ref: string): Promise<void> {
    const want = this.#o.waitReplicas;
    if (want <= 0) return;
    let got = 0;
    let error: string | undefined;
    try {
      got = await this.#replicaAcks(want);
    } catch (err) {
      error = (err as Error).message;
    }
    if (got < want) {
      this.unreplicated++;
      this.#log.warn(
        { ref, replicas: got, wanted: want, waitedMs: this.#link.replicaWaitMs, ...(error === undefined ? {} : { err: error }) },
        'a reservation change was not confirmed by enough Redis replicas in time: reporting it anyway',
      );
    }
  }

  /** The WAIT sent last, until it answers; and the one to send after it. */
  #waitSent: Promise<number> | null = null;
  #waitNext: Promise<number> | null = null;

  /**
   * One WAIT at a time on `changes`: Redis runs nothing else of a connection blocked in
   * WAIT, so queued WAITs (and the CAS scripts behind them) would add up past the
   * client's timeout while a replica is away. A WAIT counts every earlier write of its
   * connection, so the one sent after the current one answers covers every change made
   * meanwhile, however many wait for it.
   */
  #replicaAcks(want: number): Promise<number> {
    if (this.#waitSent === null) return this.#sendWait(want);
    this.#waitNext ??= this.#waitSent
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        this.#waitNext = null;
        return this.#sendWait(want);
      });
    return this.#waitNext;
  }

  #sendWait(want: number): Promise<number> {
    const p = this.#link.changes.wait(want, this.#link.replicaWaitMs);
    this.#waitSent = p;
    const done = (): void => {
      if (this.#waitSent === p) this.#waitSent = null;
    };
    p.then(done, done);
    return p;
  }

  /** The lease keys of every other node, in a fixed order. */
  #peerLeaseKeys(): string[] {
    const keys = this.#link.keys;
    return this.#members.nodes.filter((n) => n !== this.#members.node).map((n) => keys.lease(n));
  }

  /**
   * Add to `wait` every node whose lease existed when the change was made (`leases`, read
   * in the same atomic step) but that this node had not seen live yet: it joined since
   * the last renewal and may have loaded the state before the change. Then arm the wait.
   */
  #joinLivePeers(wait: AckWait, gens: Map<string, number>, leases: readonly string[]): void {
    for (const raw of leases) {
      if (raw === '' || raw === null) continue;
      let v: LeaseValue;
      try {
        v = JSON.parse(raw) as LeaseValue;
      } catch {
        continue;
      }
      if (typeof v.node !== 'string' || v.node === this.#members.node || gens.has(v.node)) continue;
      gens.set(v.node, v.gen);
      wait.add(v.node);
    }
    wait.arm();
  }

  /**
   * Wait for the acknowledgements of `ref`. After ackTimeoutMs, revoke the leases of the
   * peers still silent, then wait until each is dead or has resynchronized.
   */
  async #fence(ref: string, wait: AckWait, gens: Map<string, number>): Promise<void> {
    const { pending, done } = wait;
    const acked = await Promise.race([done.then(() => true), sleep(this.#o.ackTimeoutMs).then(() => false)]);
    if (acked || pending.size === 0) return;
    const silent = [...pending];
    this.#log.warn({ ref, peers: silent }, 'peers did not acknowledge a reservation change in time: revoking their leases');
    await Promise.all(silent.map((n) => this.#members.revoke(n).catch(() => undefined)));
    const deadline = performance.now() + this.#o.leaseTtlMs * 2;
    while (pending.size > 0 && performance.now() < deadline && !wait.released) {
      for (const n of [...pending]) {
        const p = this.#members.peer(n);
        if (p === undefined || !p.live || (p.lease !== null && p.lease.gen !== gens.get(n))) this.#link.dropPeer(n, ref);
      }
      if (pending.size === 0) break;
      await Promise.race([done, sleep(50)]);
    }
    if (pending.size > 0) {
      this.#link.cancelAcks(ref);
      this.#log.error({ ref, peers: [...pending] }, 'peers still hold live leases after revocation: reporting the change anyway');
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** Parse a stored state (JSON written by this module). */
export function parseState(raw: string): PrState {
  const s = JSON.parse(raw) as PrState;
  if (typeof s.version !== 'number' || !Array.isArray(s.registrations)) throw new Error('malformed PR state in Redis');
  return s;
}
