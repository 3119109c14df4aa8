/**
 * A session worker: runs the iSCSI connections placed on it (sockets handed over by
 * fabric port workers), and moves SCSI commands to LUN workers over SAB rings. All state
 * here is owned by this thread: connections, sessions, tasks, the slab allocator.
 *
 * A class with no thread of its own: main.ts runs it in a worker thread, with the
 * supervisor's control channel behind `SupervisorLink`.
 */
import { Socket } from 'node:net';
import { Doorbell } from '../../shared/ring/doorbell.ts';
import { ConsumerLoop } from '../../shared/ring/consumer-loop.ts';
import { Slab } from '../../shared/ring/slab.ts';
import type { Logger } from '../../shared/logging.ts';
import { writeFixedSense, SenseReason } from '../../shared/scsi/sense.ts';
import type { AuthConfig } from '../../shared/config-types.ts';
import type { SessionWorkerData } from '../../shared/wire/worker-data.ts';
import type { RoutesWire } from '../../shared/wire/routes.ts';
import { LunChannel } from './lun-channel.ts';
import type { LunChannelInit } from '../../shared/wire/worker-data.ts';
import { ScsiStatus } from '../../shared/scsi/command.ts';
import { TaskPool, type TaskOwner } from './task.ts';
import { NexusSlots, NexusTable, nexusHandle } from '../../shared/ring/nexus-table.ts';
import { TsihTable } from '../../shared/iscsi/tsih-table.ts';
import { SessionCounts } from '../../shared/ring/session-counts.ts';
import { DescKind, TMF_NOT_EVERYWHERE } from '../../shared/ring/descriptors.ts';
import { distinctUnits, routesFromWire } from './routes.ts';
import { IscsiConnection } from './iscsi/connection.ts';
import type { SessionWorkerContext } from './context.ts';
import { InlineCounters } from '../../shared/metrics/inline-counters.ts';
import { InlineIo } from './inline-io.ts';
import { SessionCounters } from '../../shared/metrics/session-counters.ts';
import type { ConnectionInfo } from '../../shared/wire/admin-info.ts';
import { describeConnection } from './iscsi/connection-info.ts';

/** What a session worker asks of, and tells, the supervisor (node-wide coordination). */
export interface SupervisorLink {
  authFailure(key: string): Promise<{ delayMs: number; failures: number }>;
  authSuccess(key: string): void;
  sessionUp(key: string, tsih: number): void;
  sessionDown(key: string): void;
  /** Which worker holds the session with this identity, and its TSIH (worker -1: none). */
  sessionFind(key: string): Promise<{ worker: number; tsih: number }>;
}

/** One socket read at most: 256 KiB takes a 128 KiB write with its header in one or two reads. */
const RX_BUFFER_BYTES = 256 * 1024;
/** Poll for completions only with at most this many commands in flight (see #pollCompletions). */
const POLL_MAX_PENDING = 4;
/** After polls that missed, at most this many commands go unpolled before trying again. */
const POLL_MAX_SKIP = 256;
const POLL_MISS_SHIFT_MAX = 8;

export class SessionWorker {
  readonly index: number;
  readonly log: Logger;
  readonly ctx: SessionWorkerContext;
  readonly doorbell: Doorbell;
  /** Counters in shared memory, read by the supervisor's exporter. */
  readonly metrics: SessionCounters;
  readonly #data: SessionWorkerData;
  readonly #supervisor: SupervisorLink;
  readonly #slab: Slab;
  readonly #pool: TaskPool;
  readonly #channels: LunChannel[];
  /** READs and WRITEs of RAM disks served here (inline-io.ts). */
  readonly #inline: InlineIo;
  readonly #tsihs: TsihTable;
  readonly #nexusTable: NexusTable;
  readonly #sessionCounts: SessionCounts;
  readonly #nexusSlots = new NexusSlots();
  /** How long to poll for completions after submitting, in ms (0: never). */
  readonly #pollBudgetMs: number;
  /** Commands went to a LUN worker since the last poll decision. */
  #submitted = false;
  /** Polls in a row that ended without a completion, and commands to let pass unpolled. */
  #pollMisses = 0;
  #pollSkip = 0;
  readonly #connections = new Set<IscsiConnection>();
  /** Where every connection's socket reads land (see #readerFor). */
  readonly #rxBuffer = Buffer.allocUnsafe(RX_BUFFER_BYTES);
  /** Sessions in full feature phase on this worker, by session identity. */
  readonly #sessions = new Map<string, IscsiConnection>();
  #draining = false;
  readonly #loop: ConsumerLoop;
  #drained: (() => void) | null = null;

  /** Owner of control descriptors whose acknowledgement only frees the task. */
  readonly #releaseOnly: TaskOwner = {
    onTaskComplete: (t) => this.#pool.release(t),
  };

  constructor(data: SessionWorkerData, log: Logger, supervisor: SupervisorLink) {
    this.index = data.index;
    this.log = log;
    this.#data = data;
    this.#supervisor = supervisor;
    this.#slab = new Slab(data.slab.byteLength, data.slabMinBlock, data.slab);
    this.#pool = new TaskPool(this.#slab);
    this.#channels = data.channels.map((c, l) => {
      const ch = new LunChannel(c, this.#pool);
      ch.onStale = (tag) => log.error({ lunWorker: l, tag }, 'completion for no task in flight (stale or duplicate): dropped');
      return ch;
    });
    this.doorbell = new Doorbell(data.doorbell);
    this.#loop = new ConsumerLoop(this.doorbell, () => this.#drainCompletions());
    this.#tsihs = new TsihTable(data.tsihTable, data.index);
    this.#nexusTable = new NexusTable(data.nexusTable);
    this.#sessionCounts = new SessionCounts(data.sessionCounts, data.index);
    this.#pollBudgetMs = Math.max(0, data.pollBudgetUs) / 1000;
    this.metrics = new SessionCounters(data.metrics);
    this.#inline = new InlineIo(
      data.index,
      data.channels.map((c) => c.grants),
      data.inlineMemory ?? [],
      data.inlineFiles ?? [],
      log,
      data.inlineMetrics === undefined ? null : new InlineCounters(data.inlineMetrics),
    );
    this.ctx = this.#context(routesFromWire(data.routes));
  }

  /** Consume completions until stopped. */
  run(): Promise<void> {
    return this.#loop.run();
  }

  /** Stop the completion loop (after drain: nothing is in flight). */
  stopLoop(): void {
    this.#loop.stop();
  }

  /** A socket handed over by fabric port worker `portalIndex`; `closed` runs when it ends. */
  accept(socket: Socket, portalIndex: number, closed: () => void): void {
    if (this.#draining) {
      socket.destroy();
      closed();
      return;
    }
    const onClosed = (conn: IscsiConnection): void => {
      this.#connections.delete(conn);
      closed();
      if (this.#draining) this.#maybeDrained();
    };
    const reader = this.#readerFor(socket);
    if (reader === null) {
      this.#connections.add(new IscsiConnection(this.ctx, socket, portalIndex, onClosed));
      return;
    }
    const rx = this.#rxBuffer;
    let c: IscsiConnection | null = null;
    const s = reader({
      buffer: rx,
      callback: (n: number) => {
        c?.receive(rx, n);
        return true;
      },
    });
    c = new IscsiConnection(this.ctx, s, portalIndex, onClosed, true);
    this.#connections.add(c);
  }

  /**
   * Reading a socket into this worker's one reusable buffer (net.Socket `onread`) rather
   * than through 'data' events, which hand over a freshly allocated Buffer per read: the
   * stream path cost 5-6x the CPU of a static buffer on a 200 MiB transfer, and for large
   * writes its garbage was most of this thread's GC time (issue 13 profile, design notes).
   * One buffer serves every connection: receive() copies each byte out (PduReceiver)
   * before the next read can happen on this thread.
   *
   * `onread` exists only at construction, and the socket handed over by a portal worker
   * is already built, so a new Socket is made around the same handle (Node's internal
   * `handle` option; the received one, never read from, is left alone). Where that
   * internal is absent, null: the connection reads through 'data' events as before.
   */
  #readerFor(socket: Socket): ((onread: { buffer: Buffer; callback: (n: number) => boolean }) => Socket) | null {
    const handle = (socket as unknown as { _handle?: unknown })._handle;
    if (handle === undefined || handle === null || process.env['SPINDLE_RX_STREAM'] === '1') return null;
    return (onread) => new Socket({ handle, onread } as unknown as ConstructorParameters<typeof Socket>[0]);
  }

  /** A newer session with this identity logged in on another session worker: close ours. */
  reinstated(key: string): void {
    const old = this.#sessions.get(key);
    if (old !== undefined) {
      this.#sessions.delete(key);
      old.close('session reinstatement');
    }
  }

  /**
   * Configuration reload (supervisor/reload.ts). The maps are updated in place, so every
   * holder of ctx sees the new tables; live sessions then re-resolve their own view (LUN
   * map, access) and learn inventory changes as unit attentions.
   */
  applyRoutes(routes: RoutesWire, targetSlots: [string, number][], discoveryAuth: AuthConfig | undefined): void {
    const next = routesFromWire(routes);
    const ctx = this.ctx;
    ctx.targets.clear();
    for (const [iqn, t] of next.targets) ctx.targets.set(iqn, t);
    ctx.targetIndex.clear();
    for (const [iqn, slot] of targetSlots) ctx.targetIndex.set(iqn, slot);
    ctx.discoveryAuth = discoveryAuth;
    for (const c of this.#connections) c.applyRoutes();
    ctx.flushDoorbells();
  }

  /**
   * Shutting down: ask every initiator to log out now (RFC 7143 11.9.1, AsyncEvent 1) so
   * it can move to another path, let in-flight commands finish, then close every
   * connection. Resolves when drained or at the deadline.
   */
  drain(timeoutMs: number): Promise<void> {
    this.#draining = true;
    (this.ctx as { draining: boolean }).draining = true;
    for (const c of this.#connections) c.requestLogout(0);
    return new Promise<void>((resolve) => {
      const deadline = setTimeout(() => {
        for (const c of this.#connections) c.close('shutdown deadline');
        done();
      }, timeoutMs);
      const poll = setInterval(() => this.#maybeDrained(), 50);
      const done = () => {
        clearTimeout(deadline);
        clearInterval(poll);
        this.#drained = null;
        resolve();
      };
      this.#drained = done;
      this.#maybeDrained();
    });
  }

  /**
   * LUN worker `l` died (issue 12). Its commands end now with CHECK CONDITION, UNIT
   * ATTENTION, DEVICE INTERNAL RESET (06/29/04), which every initiator retries; commands
   * for it that arrive meanwhile wait until its replacement's channel comes
   * (lunWorkerRestarted). Returns how many commands were ended.
   */
  lunWorkerLost(l: number): number {
    const ch = this.#channels[l];
    if (ch === undefined) return 0;
    const sense = Buffer.alloc(18);
    const n = writeFixedSense(sense, SenseReason.DEVICE_INTERNAL_RESET);
    // Nothing of it is served here until its replacement has opened the units again.
    this.#inline.setTable(l, undefined);
    const ended = ch.failInFlight(ScsiStatus.CHECK_CONDITION, sense.subarray(0, n));
    this.ctx.flushDoorbells();
    if (ended > 0) this.log.warn({ lunWorker: l, commands: ended }, 'LUN worker lost: its commands ended with DEVICE INTERNAL RESET');
    return ended;
  }

  /** A RAM disk's memory for inline I/O (sent by the supervisor as it changes). */
  inlineMemory(lunWorker: number, luIndex: number, gen: number, memory: SharedArrayBuffer): void {
    this.#inline.setMemory(lunWorker, luIndex, gen, memory);
  }

  /** A buffered file this worker may serve inline: open it. */
  inlineFile(lunWorker: number, luIndex: number, path: string): void {
    this.#inline.setFile(lunWorker, luIndex, path, this.log);
  }

  /** That unit was removed: let its memory or file go. */
  forgetUnit(lunWorker: number, luIndex: number): void {
    this.#inline.forget(lunWorker, luIndex);
  }

  /** LUN worker `l`'s replacement is up: a channel over fresh rings; queued commands go on. */
  lunWorkerRestarted(l: number, init: LunChannelInit): void {
    const old = this.#channels[l];
    const next = new LunChannel(init, this.#pool);
    next.onStale = old?.onStale ?? next.onStale;
    this.#channels[l] = next;
    this.#inline.setTable(l, init.grants);
    if (old !== undefined) next.adopt(old);
    next.flushDoorbell();
  }

  /** Ask every initiator to log out (node drain); returns the commands still in flight. */
  logoutAll(time2WaitSec: number): { tasks: number } {
    for (const c of this.#connections) c.requestLogout(time2WaitSec);
    let tasks = 0;
    for (const c of this.#connections) tasks += c.busy;
    return { tasks };
  }

  /** Close every connection now (node fence). */
  closeAll(reason: string): void {
    for (const c of [...this.#connections]) c.close(reason);
  }

  stats(): { connections: number; tasks: number; slabInUse: number } {
    return { connections: this.#connections.size, tasks: this.#pool.inUse, slabInUse: this.#slab.inUse };
  }

  /** Gauges and the liveness heartbeat for the exporter (a timer in main.ts). */
  publishMetrics(): void {
    this.metrics.publish(this.#connections.size, this.#pool.inUse, this.#slab.inUse, this.#slab.size);
  }

  /** Admin API: every connection of this worker (connection-info.ts). */
  sessions(): ConnectionInfo[] {
    return [...this.#connections].map((c) => describeConnection(c, this.index));
  }

  /** Admin API: the full-feature connection of the session with this TSIH, if it is here. */
  #byTsih(tsih: number): IscsiConnection | undefined {
    for (const c of this.#connections) if (c.isFullFeature && c.session?.tsih === tsih) return c;
    return undefined;
  }

  /** Admin API: ask the initiator of session `tsih` to log out (RFC 7143 11.9.1). */
  logoutSession(tsih: number, time2WaitSec: number): { found: boolean } {
    const c = this.#byTsih(tsih);
    if (c === undefined) return { found: false };
    c.log.info({ time2WaitSec }, 'logout requested by an operator');
    c.requestLogout(time2WaitSec);
    return { found: true };
  }

  /** Admin API: close the connection of session `tsih` now. */
  closeSession(tsih: number, reason: string): { found: boolean } {
    const c = this.#byTsih(tsih);
    if (c === undefined) return { found: false };
    c.log.warn({ reason }, 'session closed by an operator');
    c.close(reason);
    return { found: true };
  }

  #maybeDrained(): void {
    if (this.#drained === null) return;
    let busy = 0;
    for (const c of this.#connections) busy += c.busy;
    for (const ch of this.#channels) busy += ch.pending;
    if (busy === 0) {
      for (const c of this.#connections) c.close('target shutting down');
      this.#drained();
    }
  }

  /**
   * A wake-up through the doorbell costs ~30 us on a VM (futex wake, IPI, the waiting
   * thread's event loop turning over) and a RAM or page-cache command completes faster
   * than that, so right after submitting the session worker polls the completion rings
   * for at most the budget; if nothing comes back the doorbell path takes over. Polling
   * burns this thread's CPU, so it is spent only where it buys latency:
   *  - only when this input submitted a command (a chunk that carried only part of a
   *    write's data has nothing to wait for);
   *  - only at shallow depth (POLL_MAX_PENDING): with more in flight, completions keep
   *    arriving and the doorbell batches them, so a spin buys nothing;
   *  - not while polls keep missing (a disk-backed LU slower than the budget): each miss
   *    in a row doubles the number of commands that go unpolled, up to POLL_MAX_SKIP, and
   *    one hit resets it.
   * performance.now() rather than hrtime.bigint(): no BigInt allocated per check.
   */
  #pollCompletions(): void {
    if (!this.#submitted) return;
    this.#submitted = false;
    if (this.#pollBudgetMs <= 0) return;
    if (this.#pollSkip > 0) {
      this.#pollSkip--;
      return;
    }
    const channels = this.#channels;
    let pending = 0;
    for (let i = 0; i < channels.length; i++) pending += channels[i]!.pending;
    if (pending === 0 || pending > POLL_MAX_PENDING) return;
    const deadline = performance.now() + this.#pollBudgetMs;
    do {
      let n = 0;
      for (let i = 0; i < channels.length; i++) n += channels[i]!.drain();
      if (n > 0) {
        this.#pollMisses = 0;
        this.ctx.flushDoorbells();
        return;
      }
    } while (performance.now() < deadline);
    this.#pollMisses = Math.min(this.#pollMisses + 1, POLL_MISS_SHIFT_MAX);
    this.#pollSkip = Math.min(POLL_MAX_SKIP, 1 << this.#pollMisses);
  }

  /** Drain every completion ring, then push tasks waiting for ring space. */
  #drainCompletions(): number {
    const channels = this.#channels;
    let n = 0;
    for (let i = 0; i < channels.length; i++) n += channels[i]!.drain();
    // Completions freed ring slots and may have moved queued tasks onto the rings.
    this.ctx.flushDoorbells();
    return n;
  }

  /**
   * Queue a control descriptor (TMF, NEXUS_LOSS, UNIT_ATTENTION: no data, no CDB but
   * `cdbWord` in its first four bytes) for `nexus` to LUN worker `lunWorker`; `owner`
   * gets the acknowledgement. False when no task object is free. The caller rings.
   */
  #submitControl(lunWorker: number, kind: number, attribute: number, luIndex: number, nexus: number, owner: TaskOwner, cdbWord = 0): boolean {
    const t = this.#pool.acquire();
    if (t === null) return false;
    t.kind = kind;
    t.attribute = attribute;
    t.luIndex = luIndex;
    t.owner = owner;
    t.cdbLength = 0;
    t.cdb.fill(0);
    t.cdb.writeUInt32LE(cdbWord, 0);
    this.#channels[lunWorker]!.submit(t, nexus);
    return true;
  }

  #context(routes: ReturnType<typeof routesFromWire>): SessionWorkerContext {
    const data = this.#data;
    const pool = this.#pool;
    const channels = this.#channels;
    const tsihs = this.#tsihs;
    const supervisor = this.#supervisor;
    const log = this.log;
    const ctx: SessionWorkerContext = {
      draining: false,
      index: data.index,
      log,
      pool,
      channels,
      targets: routes.targets,
      portals: routes.portals,
      tuning: data.tuning,
      discoveryAuth: data.discoveryAuth,
      cmdWindow: data.cmdWindow,
      targetIndex: new Map(data.targetSlots),
      // Counted node-wide in a SharedArrayBuffer all session workers share.
      reserveSession: (i) => this.#sessionCounts.reserve(i, data.tuning.maxSessionsPerTarget),
      releaseSession: (i) => this.#sessionCounts.release(i),
      authFailure: (key) => supervisor.authFailure(key),
      authSuccess: (key) => supervisor.authSuccess(key),
      // TSIHs are unique node-wide through a shared table (RFC 7143 11.12.6: TSIH is
      // target-assigned, non-zero); nexus ids carry the worker index.
      allocTsih: () => tsihs.allocate(),
      tsihOwner: (tsih) => tsihs.owner(tsih),
      adoptTsih: (tsih, from) => tsihs.adopt(tsih, from),
      releaseTsih: (tsih) => tsihs.release(tsih),
      sessionUp: (key, tsih, conn) => {
        const old = this.#sessions.get(key);
        this.#sessions.set(key, conn as IscsiConnection);
        if (old !== undefined && old !== conn) old.close('session reinstatement');
        supervisor.sessionUp(key, tsih);
      },
      sessionDown: (key, conn) => {
        if (this.#sessions.get(key) !== conn) return;
        this.#sessions.delete(key);
        supervisor.sessionDown(key);
      },
      sendTmf: (lunWorker, luIndex, fn, nexus, waiter, refTag = 0) => {
        const inline = this.#inline;
        const owner: TaskOwner = {
          onTaskComplete(done) {
            const everywhere = done.status !== TMF_NOT_EVERYWHERE;
            inline.tmfInFlight--;
            pool.release(done);
            waiter.settle(everywhere);
          },
        };
        // ABORT TASK: the referenced task rides in the CDB bytes (descriptors.ts).
        if (!this.#submitControl(lunWorker, DescKind.TMF, fn, luIndex, nexus, owner, refTag)) return false;
        // No inline command overtakes a function on its way (inline-io.ts).
        inline.tmfInFlight++;
        ctx.flushDoorbells();
        return true;
      },
      hasSession: (tsih, isid) => {
        for (const c of this.#connections) if (c.isSession(tsih, isid)) return true;
        const owner = tsihs.owner(tsih);
        return owner >= 0 && owner !== data.index;
      },
      localSessionTsih: (key) => this.#sessions.get(key)?.session?.tsih ?? 0,
      findSession: async (key) => {
        const found = await supervisor.sessionFind(key);
        return found.worker < 0 ? null : found;
      },
      closeSession: (tsih, isid, keep, why) => {
        for (const c of this.#connections) if (c !== keep && c.isSession(tsih, isid)) c.close(why);
      },
      registerNexus: (r) => {
        const got = this.#nexusSlots.acquire();
        if (got === undefined) return undefined;
        const [slot, gen] = got;
        this.#nexusTable.write(slot, gen, r);
        return nexusHandle(data.index, gen, slot);
      },
      signalLuns: (nexus, target, event) => {
        for (const route of distinctUnits(target)) {
          if (!this.#submitControl(route.lunWorker, DescKind.UNIT_ATTENTION, event, route.luIndex, nexus, this.#releaseOnly)) {
            log.error({ nexus }, 'no task for a unit attention event');
            break;
          }
        }
        ctx.flushDoorbells();
      },
      releaseNexus: (id) => {
        // One NEXUS_LOSS descriptor per LUN worker, queued behind the session's own
        // commands on each ring; the slot is reused once all of them are acknowledged.
        let waiting = channels.length;
        const ack: TaskOwner = {
          onTaskComplete: (t) => {
            pool.release(t);
            if (--waiting === 0) this.#nexusSlots.release(id & 0xfff);
          },
        };
        for (let w = 0; w < channels.length; w++) {
          if (!this.#submitControl(w, DescKind.NEXUS_LOSS, 0, 0, id, ack)) {
            // Pool exhausted (cannot happen below 65536 tasks): leak the slot, not the state.
            log.error({ nexus: id }, 'no task for nexus loss notification');
          }
        }
        ctx.flushDoorbells();
      },
      flushDoorbells: () => {
        for (let i = 0; i < channels.length; i++) if (channels[i]!.flushDoorbell()) this.#submitted = true;
      },
      inputStarts: () => this.#loop.inputStarts(),
      inputEnds: () => {
        ctx.flushDoorbells();
        this.#pollCompletions();
        this.#loop.inputEnds();
      },
      pendingWrites: { bytes: 0, limit: Math.floor(this.#slab.size / 2) },
      writeSense: (buf, reason) => writeFixedSense(buf, SenseReason[reason as keyof typeof SenseReason]),
      metrics: this.metrics,
      inline: this.#inline,
    };
    return ctx;
  }
}
