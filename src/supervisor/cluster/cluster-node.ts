/**
 * This node's membership of the cluster, as the supervisor runs it: the Redis link, the
 * lease, persistent reservations, the event stream, and what follows from them:
 *
 *   - PR changes made elsewhere are handed to the LUN worker owning the LU, and
 *     acknowledged once it has adopted them (fencing, pr-store.ts);
 *   - the lease decides whether this node may serve; losing it fences the node (its port
 *     groups go TRANSITIONING: every command but the few SPC-4 5.16.2.4.5 admits fails
 *     with NOT READY 04/0A, which initiators retry on another path), and regaining it
 *     runs a full resynchronization before serving again;
 *   - the asymmetric access state of every node's port group, from the operator's admin
 *     state, explicit SET TARGET PORT GROUPS states and liveness (a dead peer's group is
 *     UNAVAILABLE);
 *   - the epoch: a Redis that lost data is detected and PR OUT refused until recovery.
 *
 * READ and WRITE never wait on any of this: LUN workers check their local copies.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../shared/logging.ts';
import type { ClusterConfig } from '../../shared/cluster-config.ts';
import type { PrEffect, PrRequest, PrResult, PrState } from '../../shared/state/cluster-state.ts';
import type { ModePageImage } from '../../shared/state/mode-image.ts';
import { AluaState, type AluaStateValue } from '../../shared/scsi/alua.ts';
import { ControlError } from '../../shared/control/errors.ts';
import { ClusterLink } from './cluster-link.ts';
import { Membership, type LeaseLoss } from './membership.ts';
import { ClusterErrorCode, PrStore, parseState, type PrTiming } from './pr-store.ts';
import { holdRef, prRef, resetRef, type ClusterEvent } from './events.ts';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { UNLOCK } from './scripts.ts';

/** How long a cluster LU lock lives if its holder dies; and how long a taker waits for it. */
const LOCK_TTL_MS = 10_000;
const LOCK_WAIT_MS = 10_000;
/** Reads of a LU's state after a change of unknown outcome (#catchUp), this far apart. */
const CATCH_UP_ATTEMPTS = 20;
const CATCH_UP_PAUSE_MS = 500;
/** How often a kept hold is checked against its lock key (#trackHold). */
const HOLD_POLL_MS = 250;

/** Operator state of a node (spindle node drain|undrain|fence). */
export const AdminState = {
  ACTIVE: 'active',
  DRAINING: 'draining',
  DRAINED: 'drained',
  FENCED: 'fenced',
} as const;
export type AdminState = (typeof AdminState)[keyof typeof AdminState];
const ADMIN_STATES: ReadonlySet<string> = new Set(Object.values(AdminState));

/** What the cluster asks of the rest of the supervisor. */
export interface ClusterHost {
  /**
   * Hand a PR state to LUN worker `worker`; resolves once adopted and drained (fencing).
   * `reload`: a full reload after a resynchronization (effects unknown, PrEvent.reload).
   */
  applyPr(worker: number, lu: string, state: PrState, effects: readonly PrEffect[], reload?: boolean): Promise<void>;
  /** Task management from another node (LOGICAL UNIT RESET, CLEAR TASK SET, target resets) for LU `lu`. */
  applyReset(worker: number, lu: string, fn: number): Promise<void>;
  /** Another node grew LU `lu` to `bytes`. */
  applyCapacity(worker: number, lu: string, bytes: number): Promise<void>;
  /** Mode pages changed by MODE SELECT on another node. */
  applyModes(worker: number, lu: string, pages: readonly ModePageImage[]): Promise<void>;
  /**
   * Another node runs an exclusive command on LU `lu`: hold the LU's commands for at most
   * `ttlMs`; resolves once none is in flight. `releaseHold` ends the hold.
   */
  applyHold(worker: number, lu: string, id: string, ttlMs: number): Promise<void>;
  releaseHold(worker: number, lu: string, id: string): Promise<void>;
  /** The asymmetric access states of every port group changed. */
  aluaStates(states: readonly { group: number; state: AluaStateValue }[]): Promise<void>;
  /** The operator changed this node's admin state. */
  adminChanged(state: AdminState): void;
}

export interface ClusterNodeOptions {
  readonly clusterId: string;
  readonly node: string;
  readonly config: ClusterConfig;
  readonly stateDir: string;
  /** Port group id of each node (topology). */
  readonly groups: ReadonlyMap<string, number>;
  readonly log: Logger;
}

export class ClusterNode {
  readonly node: string;
  readonly link: ClusterLink;
  readonly members: Membership;
  readonly prs: PrStore;
  readonly #o: ClusterNodeOptions;
  readonly #log: Logger;
  #host: ClusterHost | null = null;
  /** LU key -> the LUN worker that opened it. */
  readonly #owners = new Map<string, number>();
  /** Last PR state known per LU (regression detection, resync). */
  readonly #known = new Map<string, PrState>();
  /**
   * LUs opened while Redis had lost the cluster state, of which neither this node nor any
   * node's recovery snapshot knew anything: their reservations are unknown, so the node
   * stays fenced until an operator recovers the state (spindle cluster recover).
   */
  readonly #unknownLus = new Set<string>();
  /** start() has taken the lease and joined. */
  #joined = false;
  readonly #admin = new Map<string, AdminState>();
  /** Explicit ALUA states by group (SET TARGET PORT GROUPS). */
  readonly #explicit = new Map<number, AluaStateValue>();
  #lastStates = '';
  #fenced = true;
  #lostEpoch: { found: string | null; known: string } | null = null;
  #resyncing: Promise<void> | null = null;
  #stopped = false;
  #lostLogAt = 0;
  /** Lock tokens whose hold was broadcast (lockLu): unlockLu releases them. */
  readonly #holding = new Set<string>();
  /** Holds kept here for other nodes' exclusive commands, by id (see #trackHold). */
  readonly #peerHolds = new Map<string, { lu: string; worker: number }>();
  #holdPoll: ReturnType<typeof setInterval> | null = null;
  lastPrTiming: PrTiming | null = null;

  constructor(o: ClusterNodeOptions) {
    this.#o = o;
    this.node = o.node;
    this.#log = o.log.child({ component: 'cluster' });
    const lease = o.config.lease;
    this.link = new ClusterLink({
      clusterId: o.clusterId,
      node: o.node,
      redis: o.config.redis,
      stateDir: o.stateDir,
      commandTimeoutMs: Math.max(200, Math.min(2000, lease.marginMs / 2)),
      log: this.#log,
    });
    this.members = new Membership(this.link, o.config.nodes.map((n) => n.id), lease, this.#log);
    this.prs = new PrStore(this.link, this.members, { ackTimeoutMs: Math.max(500, Math.min(5000, lease.ttlMs / 2)), leaseTtlMs: lease.ttlMs, waitReplicas: o.config.redis.waitReplicas ?? 0 }, this.#log);
    this.prs.usable = () => (this.#lostEpoch !== null ? 'lost' : this.#fenced ? 'fenced' : null);
    this.prs.onTiming = (t) => (this.lastPrTiming = t);
    this.link.onEvent = (e) => this.#onEvent(e);
    this.link.onReconnect = () => {
      this.#log.warn({}, 'redis connection re-established: resynchronizing');
      void this.#resync('reconnect');
    };
    this.members.onLost = (why) => this.#fence(why);
    this.members.onRegained = () => {
      if (this.#fenced) void this.#resync('lease regained');
    };
    this.members.onPeerChange = (n, live) => {
      this.#log.info({ peer: n, live }, live ? 'peer node is live' : 'peer node lease is gone: its port group is unavailable');
      void this.#publishAlua();
    };
  }

  /** True while this node holds its lease and is in sync (it may serve I/O). */
  get serving(): boolean {
    return !this.#fenced && this.members.holding;
  }

  get epochLost(): boolean {
    return this.#lostEpoch !== null;
  }

  admin(node: string): AdminState {
    return this.#admin.get(node) ?? AdminState.ACTIVE;
  }

  /**
   * Connect, check the epoch, take the lease and load the shared state. Rejects when Redis
   * cannot be reached within `timeoutMs`, or another process holds this node id. `signal`
   * cancels the join (an operator stopping a node that is still trying to reach Redis, or
   * waiting out its predecessor's lease): the waits end at once and start() rejects with
   * the signal's reason.
   */
  async start(host: ClusterHost, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    this.#host = host;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      try {
        await this.link.connect();
        break;
      } catch (err) {
        if (performance.now() > deadline) throw new Error(`cannot reach Redis: ${(err as Error).message}`, { cause: err });
        await sleep(250, undefined, signal === undefined ? undefined : { signal });
      }
    }
    await this.#checkEpoch();
    const tail = await this.link.streamTail();
    await this.#loadShared();
    // A revocation left from an earlier life of this node no longer means anything.
    await this.members.clearRevocation();
    // A lease still held under this node id is either an earlier process of this node that
    // was killed without releasing it (it expires within ttl: wait, so a restart after a
    // crash just works) or another process running as this node (it keeps renewing: give up).
    const lease = this.#o.config.lease;
    const leaseDeadline = performance.now() + lease.ttlMs + lease.renewMs;
    let waiting = false;
    while (!(await this.members.renew())) {
      if (performance.now() > leaseDeadline) {
        throw new Error(`node ${this.node}: cannot take the lease (is another process running as this node?)`);
      }
      if (!waiting) {
        waiting = true;
        this.#log.warn({ node: this.node, ttlMs: lease.ttlMs }, 'the lease of this node id is held (a killed earlier process, or another process running as this node): waiting for it to expire');
      }
      await sleep(lease.renewMs, undefined, signal === undefined ? undefined : { signal });
    }
    signal?.throwIfAborted();
    this.link.startReading(tail);
    this.members.start();
    this.#fenced = false;
    this.#joined = true;
    this.#log.info({ node: this.node, epoch: this.link.epoch, lostEpoch: this.#lostEpoch !== null }, 'joined the cluster');
  }

  /** Leave cleanly: give up the lease so peers stop waiting for this node at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#holdPoll !== null) clearInterval(this.#holdPoll);
    await this.members.release().catch(() => undefined);
    await this.link.close();
  }

  // ---- persistent reservations (LUN workers' requests) ----

  /**
   * A LUN worker opened `lu`: its current state (it follows changes from here on), and
   * the hold to keep if another node's exclusive command may be running on it: a `hold`
   * event read before the owner was known was acknowledged without holding.
   */
  async prLoad(worker: number, lu: string): Promise<{ state: PrState; hold?: { id: string; ttlMs: number } }> {
    const state = await this.#loadPr(worker, lu);
    const id = await this.link.cmd.get(this.link.keys.cawLock(lu)).catch(() => null);
    if (id === null || this.#holding.has(id)) return { state };
    this.#trackHold(id, lu, worker);
    return { state, hold: { id, ttlMs: LOCK_TTL_MS } };
  }

  async #loadPr(worker: number, lu: string): Promise<PrState> {
    this.#owners.set(lu, worker);
    // What this node knew before reading: a change that arrives while the read is in
    // flight is newer than the answer without Redis having gone back in time (the LU
    // applies it on top of the answer: PrEngine.open).
    const known = this.#known.get(lu);
    const s = await this.prs.load(lu);
    if (known !== undefined && known.version > s.version) {
      this.#regressed(lu, known, s);
      return known;
    }
    if (this.#lostEpoch !== null && known === undefined && s.version === 0) {
      // Serving it as unreserved could let any host write past a reservation that stands
      // on another node: refuse media commands (TRANSITIONING) until recovery.
      this.#unknownLus.add(lu);
      this.#fenced = true;
      this.#log.error({ lu }, 'Redis has lost the cluster state and no node knows the reservations of this LU: not serving until `spindle cluster recover`');
      void this.#publishAlua();
    }
    const now = this.#known.get(lu);
    if (now === undefined || s.version >= now.version) this.#known.set(lu, s);
    return s;
  }

  async prTransition(lu: string, req: PrRequest): Promise<PrResult> {
    let result: PrResult;
    try {
      result = await this.prs.transition(lu, req);
    } catch (err) {
      // A CAS whose answer was lost (a timeout, the connection dropping) may have been
      // committed, and every other node adopts it from the stream; this node's LU adopts
      // its own changes only from the answer, and this node skips its own events.
      if (err instanceof ControlError && err.code === ClusterErrorCode.UNAVAILABLE) void this.#catchUp(lu);
      throw err;
    }
    const known = this.#known.get(lu);
    if (known === undefined || result.state.version > known.version) this.#known.set(lu, result.state);
    return result;
  }

  /**
   * After a reservation change of unknown outcome: read the LU's state until Redis
   * answers (a few seconds at most) and hand a newer one to the LU as a reload, so it
   * never enforces less than the other nodes do.
   */
  async #catchUp(lu: string): Promise<void> {
    for (let attempt = 0; attempt < CATCH_UP_ATTEMPTS && !this.#stopped; attempt++) {
      try {
        const s = await this.prs.load(lu);
        const known = this.#known.get(lu);
        if (known !== undefined && s.version <= known.version) return;
        this.#known.set(lu, s);
        const worker = this.#owners.get(lu);
        if (worker !== undefined) await this.#host?.applyPr(worker, lu, s, [], true);
        this.#log.warn({ lu, version: s.version }, 'a reservation change reported as failed was made after all: the LU took it from Redis');
        return;
      } catch {
        await sleep(CATCH_UP_PAUSE_MS);
      }
    }
  }

  // ---- events ----

  #onEvent(e: ClusterEvent): void {
    if (this.#stopped) return;
    switch (e.k) {
      case 'pr':
        if (e.o !== this.node) void this.#applyRemotePr(e.lu, e.v, e.s, e.e, e.o);
        return;
      case 'reset':
        if (e.o !== this.node) void this.#applyRemoteReset(e.lu, e.fn, e.id, e.o);
        return;
      case 'hold':
        if (e.o !== this.node) void this.#applyRemoteHold(e.lu, e.id, e.o);
        return;
      case 'release':
        if (e.o !== this.node) this.#endHold(e.id);
        return;
      case 'admin':
        if (!ADMIN_STATES.has(e.state)) return;
        this.#admin.set(e.node, e.state as AdminState);
        if (e.node === this.node) this.#host?.adminChanged(e.state as AdminState);
        void this.#publishAlua();
        return;
      case 'alua':
        for (const s of e.states) this.#explicit.set(s.group, s.state as AluaStateValue);
        void this.#publishAlua();
        return;
      case 'capacity':
        if (e.o !== this.node) {
          const worker = this.#owners.get(e.lu);
          if (worker !== undefined)
            void this.#host?.applyCapacity(worker, e.lu, e.bytes).catch((err: unknown) => this.#log.error({ lu: e.lu, err: (err as Error).message }, 'could not grow a LU another node grew'));
        }
        return;
      case 'mode':
        if (e.o !== this.node) {
          const worker = this.#owners.get(e.lu);
          if (worker !== undefined)
            void this.#host?.applyModes(worker, e.lu, e.pages).catch((err: unknown) => this.#log.error({ lu: e.lu, err: (err as Error).message }, 'could not apply mode pages from another node'));
        }
        return;
      case 'resync':
        void this.#resync('operator recovery');
        return;
      default:
        return;
    }
  }

  async #applyRemotePr(lu: string, version: number, state: PrState, effects: PrEffect[], origin: string): Promise<void> {
    const worker = this.#owners.get(lu);
    try {
      if (worker !== undefined) {
        const known = this.#known.get(lu);
        if (known === undefined || version > known.version) this.#known.set(lu, state);
        await this.#host?.applyPr(worker, lu, state, effects);
      }
      await this.link.ack(origin, prRef(lu, version));
    } catch (err) {
      // Not acknowledged: the origin revokes this node's lease, which resynchronizes it.
      this.#log.error({ lu, version, err: (err as Error).message }, 'could not apply a reservation change from another node');
    }
  }

  /**
   * Task management that SAM-5 applies to every I_T nexus of the LU (LOGICAL UNIT RESET,
   * CLEAR TASK SET with one task set per LU, target resets): the nexuses on other nodes
   * too. Resolves once every live node has done it (its aborted commands have finished).
   */
  async reset(lus: readonly string[], fn: number): Promise<void> {
    await Promise.all(
      lus.map((lu) => {
        const id = randomUUID();
        return this.prs.broadcast({ k: 'reset', o: this.node, lu, id, fn }, resetRef(id));
      }),
    );
  }

  /** Another node's exclusive command on `lu` (lockLu): hold the LU here, then acknowledge. */
  async #applyRemoteHold(lu: string, id: string, origin: string): Promise<void> {
    const worker = this.#owners.get(lu);
    try {
      if (worker !== undefined) {
        this.#trackHold(id, lu, worker);
        await this.#host?.applyHold(worker, lu, id, LOCK_TTL_MS);
      }
      await this.link.ack(origin, holdRef(id));
    } catch (err) {
      // Not acknowledged: the origin's command fails retryably and frees the lock, which
      // ends a hold taken here at the next check (#checkHolds), or at its TTL.
      this.#log.error({ lu, err: (err as Error).message }, 'could not hold a LU for another node\'s exclusive command');
    }
  }

  /**
   * Holds kept here for other nodes' exclusive commands. Each normally ends with its
   * `release` event; one that is lost (its publish failed, a resync skipped it, the
   * origin died) would hold the LU until its TTL, long enough for a reservation change
   * waiting on the held commands to time out. So while any is kept, the lock keys are
   * read every HOLD_POLL_MS, and a hold whose token no longer holds its key ends.
   */
  #trackHold(id: string, lu: string, worker: number): void {
    this.#peerHolds.set(id, { lu, worker });
    if (this.#holdPoll === null) {
      this.#holdPoll = setInterval(() => void this.#checkHolds(), HOLD_POLL_MS);
      this.#holdPoll.unref();
    }
  }

  #endHold(id: string): void {
    const h = this.#peerHolds.get(id);
    if (h === undefined) return;
    this.#peerHolds.delete(id);
    void this.#host?.releaseHold(h.worker, h.lu, id).catch(() => undefined);
    if (this.#peerHolds.size === 0 && this.#holdPoll !== null) {
      clearInterval(this.#holdPoll);
      this.#holdPoll = null;
    }
  }

  async #checkHolds(): Promise<void> {
    for (const [id, h] of [...this.#peerHolds]) {
      // Unknown (Redis away) keeps the hold: its TTL still bounds it.
      const holder = await this.link.cmd.get(this.link.keys.cawLock(h.lu)).catch(() => id);
      if (holder !== id) this.#endHold(id);
    }
  }

  async #applyRemoteReset(lu: string, fn: number, id: string, origin: string): Promise<void> {
    const worker = this.#owners.get(lu);
    try {
      if (worker !== undefined) await this.#host?.applyReset(worker, lu, fn);
      await this.link.ack(origin, resetRef(id));
    } catch (err) {
      this.#log.error({ lu, fn, err: (err as Error).message }, 'could not apply task management from another node');
    }
  }

  /**
   * The cluster-wide lock of one LU for its LU-wide exclusive commands (VMware ATS:
   * COMPARE AND WRITE, ORWRITE, WRITE ATOMIC), which SBC-4 makes atomic against every
   * other command of the LU (5.3, 4.29.2), whichever node it comes through:
   *  1. a Redis key with a random token and a time to live (LOCK_TTL_MS), so one node at a
   *     time, and a node that dies holding it blocks the others at most that long;
   *  2. a `hold` broadcast: every other live node closes the LU's gate (sbc/state.ts) and
   *     acknowledges once nothing of the LU is in flight there. A node silent past the
   *     acknowledgement timeout fails the command (retryable, 02/04/0A) rather than
   *     losing its lease: the initiator retries, and a dead node's lease runs out.
   * The command runs only after both; unlockLu releases the hold, then the key.
   * While Redis has lost the cluster state (#lostEpoch) no event can be published, so the
   * hold is skipped: until an operator recovers, these commands are atomic only against
   * each other, as I/O goes on with what each node knows.
   */
  async lockLu(lu: string): Promise<string> {
    if (!this.serving) throw new ControlError(ClusterErrorCode.UNAVAILABLE, 'not serving');
    const token = randomUUID();
    const key = this.link.keys.cawLock(lu);
    const deadline = performance.now() + LOCK_WAIT_MS;
    let pause = 1;
    for (;;) {
      let got: string | null;
      try {
        got = await this.link.cmd.set(key, token, 'PX', LOCK_TTL_MS, 'NX');
      } catch (err) {
        throw new ControlError(ClusterErrorCode.UNAVAILABLE, `redis: ${(err as Error).message}`);
      }
      if (got === 'OK') break;
      if (performance.now() > deadline) throw new ControlError(ClusterErrorCode.BUSY, `${lu}: lock held elsewhere for ${LOCK_WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 20);
    }
    if (this.#lostEpoch !== null) return token;
    this.#holding.add(token);
    try {
      await this.prs.broadcast({ k: 'hold', o: this.node, lu, id: token }, holdRef(token), true);
    } catch (err) {
      // Nothing ran: end the hold where it was taken, free the key, and fail retryably.
      await this.unlockLu(lu, token).catch(() => undefined);
      throw err instanceof ControlError ? err : new ControlError(ClusterErrorCode.UNAVAILABLE, (err as Error).message);
    }
    return token;
  }

  /** End the hold of `token` on every node, then free the LU's key (see lockLu). */
  async unlockLu(lu: string, token: string): Promise<void> {
    if (this.#holding.delete(token)) {
      try {
        await this.link.publish({ k: 'release', o: this.node, lu, id: token });
      } catch (err) {
        // The other nodes end the hold when they see the lock free (#checkHolds).
        this.#log.warn({ lu, err: (err as Error).message }, 'could not publish the end of an exclusive command: other nodes hold the LU until they see its lock free');
      }
    }
    await this.link.cmd.eval(UNLOCK, 1, this.link.keys.cawLock(lu), token);
  }

  /** A reload grew `lu` here: every other node grows it too. */
  async publishCapacity(lu: string, bytes: number): Promise<void> {
    await this.link.publish({ k: 'capacity', o: this.node, lu, bytes });
  }

  /** MODE SELECT here changed `lu`'s pages: every other node takes them. */
  async publishModes(lu: string, pages: readonly ModePageImage[]): Promise<void> {
    await this.link.publish({ k: 'mode', o: this.node, lu, pages: [...pages] });
  }

  /** Keep LU `lu`'s pending unit attentions of this node's nexuses (restored after a restart). */
  async saveUa(lu: string, entries: readonly unknown[]): Promise<void> {
    const key = this.link.keys.ua(this.node, lu);
    if (entries.length === 0) await this.link.cmd.del(key);
    else await this.link.cmd.set(key, JSON.stringify(entries));
  }

  async loadUa(lu: string): Promise<unknown[]> {
    const raw = await this.link.cmd.get(this.link.keys.ua(this.node, lu));
    return raw === null ? [] : (JSON.parse(raw) as unknown[]);
  }

  // ---- fencing and resynchronization ----

  #fence(why: LeaseLoss): void {
    // Before start() has joined, it handles a refused lease itself (it waits or gives up).
    if (this.#stopped || !this.#joined) return;
    const was = this.#fenced;
    this.#fenced = true;
    if (!was) this.#log.error({ why }, 'lease lost: this node stops serving I/O until it has resynchronized');
    if (why === 'taken') this.#log.fatal({ node: this.node }, 'another process holds this node id: not serving');
    void this.#publishAlua();
    if (why === 'revoked') void this.#resync('lease revoked');
  }

  /** Reload everything from Redis, then serve again (if the lease holds). One at a time. */
  #resync(why: string): Promise<void> {
    if (this.#resyncing !== null) return this.#resyncing;
    this.#resyncing = (async () => {
      try {
        // While the lease holds, nothing was missed that matters: a peer completes a
        // change only once this node has adopted it (acknowledged), or after this node's
        // lease ran out or was revoked, which fences it anyway (membership.ts). So a
        // reconnect within the lease keeps serving while it reloads.
        if (!this.members.holding) this.#fenced = true;
        await this.#publishAlua();
        await this.#checkEpoch();
        const tail = await this.link.streamTail();
        await this.#loadShared();
        await Promise.all(
          [...this.#owners].map(async ([lu, worker]) => {
            const s = await this.prs.load(lu);
            const known = this.#known.get(lu);
            if (known !== undefined && known.version > s.version) {
              this.#regressed(lu, known, s);
              return;
            }
            if (known === undefined || s.version !== known.version) {
              this.#known.set(lu, s);
              await this.#host?.applyPr(worker, lu, s, [], true);
            }
          }),
        );
        this.members.bumpGen();
        await this.members.clearRevocation();
        this.link.seek(tail);
        if (await this.members.renew()) {
          if (this.#unknownLus.size === 0) {
            this.#fenced = false;
            this.#log.info({ why }, 'resynchronized with the cluster: serving again');
          } else {
            this.#fenced = true;
            this.#log.error({ why, lus: [...this.#unknownLus] }, 'resynchronized, but the reservations of some LUs are unknown: not serving until `spindle cluster recover`');
          }
        }
      } catch (err) {
        this.#log.warn({ why, err: (err as Error).message }, 'resynchronization failed; retrying at the next lease renewal');
      } finally {
        this.#resyncing = null;
        await this.#publishAlua().catch(() => undefined);
      }
    })();
    return this.#resyncing;
  }

  async #checkEpoch(): Promise<void> {
    const v = await this.link.checkEpoch();
    if (v.kind === 'lost') {
      if (this.#lostEpoch === null || performance.now() - this.#lostLogAt > 30_000) {
        this.#lostLogAt = performance.now();
        this.#log.error(
          { found: v.found, known: v.known },
          'Redis has lost the cluster state (epoch marker missing or unknown): PR OUT is refused until an operator runs `spindle cluster recover`; I/O continues with the reservations this node knows',
        );
      }
      this.#lostEpoch = { found: v.found, known: v.known };
      // A node (re)started after the loss knows nothing yet: take what the other nodes
      // knew (their recovery snapshots) before saving ours, or an empty snapshot of ours
      // would overwrite the knowledge an operator's recovery needs.
      await this.#adoptRecoverySnapshots().catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'could not read the recovery snapshots'));
      await this.#saveRecovery().catch(() => undefined);
    } else if (this.#lostEpoch !== null) {
      this.#log.warn({ epoch: v.epoch }, 'cluster state recovered by an operator: PR OUT accepted again');
      this.#lostEpoch = null;
      this.#unknownLus.clear();
    }
  }

  /** Redis went back in time for `lu` (a failover to a replica that missed writes). */
  #regressed(lu: string, known: PrState, found: PrState): void {
    this.#log.error({ lu, known: known.version, found: found.version }, 'Redis holds an older reservation state than this node has seen: treating the cluster state as lost');
    this.#lostEpoch ??= { found: this.link.epoch, known: this.link.epoch ?? '' };
    void this.#saveRecovery().catch(() => undefined);
  }

  /** Fill in this node's knowledge from every node's recovery snapshot (newest version per LU). */
  async #adoptRecoverySnapshots(): Promise<void> {
    const nodes = this.#o.config.nodes.map((n) => n.id);
    const raws = await this.link.cmd.mget(...nodes.map((n) => this.link.keys.recovery(n)));
    for (const raw of raws) {
      if (raw === null || raw === undefined) continue;
      let pr: Record<string, PrState>;
      try {
        pr = (JSON.parse(raw) as { pr?: Record<string, PrState> }).pr ?? {};
      } catch {
        continue; // not ours to judge here; `spindle cluster recover` reports it
      }
      for (const [lu, st] of Object.entries(pr)) {
        const known = this.#known.get(lu);
        if (known === undefined || st.version > known.version) this.#known.set(lu, st);
      }
    }
  }

  /** What this node knows, for `spindle cluster recover` to restore. */
  async #saveRecovery(): Promise<void> {
    const snapshot = { node: this.node, at: Date.now(), epoch: this.#lostEpoch?.known ?? null, pr: Object.fromEntries(this.#known) };
    await this.link.cmd.set(this.link.keys.recovery(this.node), JSON.stringify(snapshot));
  }

  async #loadShared(): Promise<void> {
    const keys = this.link.keys;
    const nodes = this.#o.config.nodes.map((n) => n.id);
    const admin = await this.link.cmd.mget(...nodes.map((n) => keys.admin(n)));
    nodes.forEach((n, i) => {
      const a = admin[i];
      this.#admin.set(n, a !== null && a !== undefined && ADMIN_STATES.has(a) ? (a as AdminState) : AdminState.ACTIVE);
    });
    const explicit = await this.link.cmd.hgetall(keys.alua);
    this.#explicit.clear();
    for (const [g, s] of Object.entries(explicit)) this.#explicit.set(Number(g), Number(s) as AluaStateValue);
  }

  // ---- ALUA ----

  /** The asymmetric access state of every node's port group, as this node sees it. */
  aluaTable(): { group: number; node: string; state: AluaStateValue }[] {
    return this.#o.config.nodes.map((n) => {
      const group = this.#o.groups.get(n.id)!;
      return { group, node: n.id, state: this.#stateOf(n.id, group) };
    });
  }

  #stateOf(node: string, group: number): AluaStateValue {
    if (node === this.node) {
      if (this.#fenced || !this.members.holding) return AluaState.TRANSITIONING;
    } else if (!(this.members.peer(node)?.live ?? false)) {
      return AluaState.UNAVAILABLE;
    }
    switch (this.admin(node)) {
      case AdminState.DRAINING:
        return AluaState.TRANSITIONING;
      case AdminState.DRAINED:
        return AluaState.STANDBY;
      case AdminState.FENCED:
        return AluaState.UNAVAILABLE;
      default:
        return this.#explicit.get(group) ?? AluaState.ACTIVE_OPTIMIZED;
    }
  }

  /** Tell the LUN workers when any group's state changed. */
  async #publishAlua(): Promise<void> {
    const table = this.aluaTable().map(({ group, state }) => ({ group, state }));
    const key = JSON.stringify(table);
    if (key === this.#lastStates) return;
    this.#lastStates = key;
    await this.#host?.aluaStates(table);
  }

  // ---- operator actions (also used by the CLI through its own link) ----

  /** Set a node's admin state and tell every node. */
  async setAdmin(node: string, state: AdminState): Promise<void> {
    await this.link.cmd.set(this.link.keys.admin(node), state);
    await this.link.publish({ k: 'admin', o: this.node, node, state });
  }

  /** SET TARGET PORT GROUPS (explicit ALUA) cluster-wide. */
  async setExplicitAlua(states: readonly { group: number; state: AluaStateValue }[]): Promise<void> {
    if (this.#lostEpoch !== null || this.#fenced) throw new ControlError(ClusterErrorCode.UNAVAILABLE, 'cluster state unavailable');
    const pipe = this.link.cmd.pipeline();
    for (const s of states) pipe.hset(this.link.keys.alua, String(s.group), String(s.state));
    await pipe.exec();
    await this.link.publish({ k: 'alua', o: this.node, states: states.map((s) => ({ group: s.group, state: s.state })) });
    for (const s of states) this.#explicit.set(s.group, s.state);
    await this.#publishAlua();
  }
}

export { parseState };
