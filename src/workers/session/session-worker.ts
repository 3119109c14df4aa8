/**
 * Session worker entry. Receives accepted sockets from fabric port workers (over
 * MessagePorts, the socket transferred as a handle), runs their iSCSI connections, and
 * moves SCSI commands to LUN workers over SAB rings. All state here is owned by this
 * thread: connections, sessions, tasks, the slab allocator.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Socket } from 'node:net';
import { Doorbell, consumeForever } from '../../shared/ring/doorbell.ts';
import { Slab } from '../../shared/ring/slab.ts';
import { createLogger } from '../../shared/logging.ts';
import { writeFixedSense, SenseReason } from '../../shared/scsi/sense.ts';
import { decodeControl, encodeControl } from '../../shared/messages.ts';
import type { AuthConfig, IscsiTuning } from '../../shared/config-types.ts';
import { LunChannel, type LunChannelInit } from './lun-channel.ts';
import { TaskPool, type TaskOwner } from './task.ts';
import { NexusSlots, NexusTable, nexusHandle } from '../../shared/ring/nexus-table.ts';
import { TsihTable } from '../../shared/iscsi/tsih-table.ts';
import { DescKind } from '../../shared/ring/descriptors.ts';
import { distinctUnits, routesFromWire, type RoutesWire } from './routes.ts';
import { IscsiConnection } from './iscsi/connection.ts';
import type { SessionWorkerContext } from './context.ts';

export interface SessionWorkerData {
  index: number;
  slab: SharedArrayBuffer;
  slabMinBlock: number;
  doorbell: SharedArrayBuffer;
  /** This worker's nexus table (it writes, LUN workers read). */
  nexusTable: SharedArrayBuffer;
  channels: LunChannelInit[];
  routes: RoutesWire;
  /** Target name -> its slot in `sessionCounts` (supervisor/topology.ts; stable across reloads). */
  targetSlots: [string, number][];
  tuning: IscsiTuning;
  discoveryAuth?: AuthConfig;
  cmdWindow: number;
  /** Sessions per target, node-wide (Int32 per target, shared by all session workers). */
  sessionCounts: SharedArrayBuffer;
  /** TSIHs in use, node-wide (tsih-table.ts). */
  tsihTable: SharedArrayBuffer;
  /** Microseconds to poll for completions after submitting (0 disables). */
  pollBudgetUs: number;
  logLevel: string;
  pretty: boolean;
  /** One port per fabric port worker, in portal-worker order. */
  portalPorts: MessagePort[];
}

const data = workerData as SessionWorkerData;
const log = createLogger({ name: 'session', level: data.logLevel, pretty: data.pretty, bindings: { worker: data.index } });
const slab = new Slab(data.slab.byteLength, data.slabMinBlock, data.slab);
const pool = new TaskPool(slab);
const channels = data.channels.map((c) => new LunChannel(c, pool));
const doorbell = new Doorbell(data.doorbell);
const { targets, portals } = routesFromWire(data.routes);
const pollBudgetNs = BigInt(Math.max(0, data.pollBudgetUs) * 1000);
const tsihs = new TsihTable(data.tsihTable, data.index);
const nexusTable = new NexusTable(data.nexusTable);
const sessionCounts = new Int32Array(data.sessionCounts);
const nexusSlots = new NexusSlots();

/**
 * Queue a control descriptor (TMF, NEXUS_LOSS, UNIT_ATTENTION: no data, no CDB but
 * `cdbWord` in its first four bytes) for `nexus` to LUN worker `lunWorker`; `owner`
 * gets the acknowledgement. False when no task object is free. The caller rings.
 */
function submitControl(
  lunWorker: number,
  kind: number,
  attribute: number,
  luIndex: number,
  nexus: number,
  owner: TaskOwner,
  cdbWord = 0,
): boolean {
  const t = pool.acquire();
  if (t === null) return false;
  t.kind = kind;
  t.attribute = attribute;
  t.luIndex = luIndex;
  t.owner = owner;
  t.cdbLength = 0;
  t.cdb.fill(0);
  t.cdb.writeUInt32LE(cdbWord, 0);
  channels[lunWorker].submit(t, nexus);
  return true;
}

/** Owner of control descriptors whose acknowledgement only frees the task. */
const releaseOnly: TaskOwner = {
  onTaskComplete(t) {
    pool.release(t);
  },
};

const ctx: SessionWorkerContext = {
  draining: false,
  index: data.index,
  log,
  pool,
  channels,
  targets,
  portals,
  tuning: data.tuning,
  discoveryAuth: data.discoveryAuth,
  cmdWindow: data.cmdWindow,
  targetIndex: new Map(data.targetSlots),
  reserveSession(i) {
    // Counted node-wide in a SharedArrayBuffer all session workers share.
    if (Atomics.add(sessionCounts, i, 1) >= data.tuning.maxSessionsPerTarget) {
      Atomics.sub(sessionCounts, i, 1);
      return false;
    }
    return true;
  },
  releaseSession(i) {
    Atomics.sub(sessionCounts, i, 1);
  },
  authFailure(key) {
    const id = ++authRequestId;
    return new Promise((resolve) => {
      authWaiters.set(id, resolve);
      parentPort!.postMessage(encodeControl({ type: 'auth-failure', id, key }));
    });
  },
  authSuccess(key) {
    parentPort!.postMessage(encodeControl({ type: 'auth-success', key }));
  },
  // TSIHs are unique node-wide through a shared table (RFC 7143 11.12.6: TSIH is
  // target-assigned, non-zero); nexus ids carry the worker index.
  allocTsih: () => tsihs.allocate(),
  tsihOwner: (tsih) => tsihs.owner(tsih),
  adoptTsih: (tsih, from) => tsihs.adopt(tsih, from),
  releaseTsih: (tsih) => tsihs.release(tsih),
  sessionUp(key, tsih, conn) {
    const old = sessions.get(key);
    sessions.set(key, conn as IscsiConnection);
    if (old !== undefined && old !== conn) old.close('session reinstatement');
    parentPort!.postMessage(encodeControl({ type: 'session-up', key, tsih }));
  },
  sessionDown(key, conn) {
    if (sessions.get(key) !== conn) return;
    sessions.delete(key);
    parentPort!.postMessage(encodeControl({ type: 'session-down', key }));
  },
  sendTmf(lunWorker, luIndex, fn, nexus, waiter, refTag = 0) {
    const owner: TaskOwner = {
      onTaskComplete(done) {
        pool.release(done);
        waiter.settle();
      },
    };
    // ABORT TASK: the referenced task rides in the CDB bytes (descriptors.ts).
    if (!submitControl(lunWorker, DescKind.TMF, fn, luIndex, nexus, owner, refTag)) return false;
    ctx.flushDoorbells();
    return true;
  },
  hasSession(tsih, isid) {
    for (const c of connections) if (c.isSession(tsih, isid)) return true;
    const owner = tsihs.owner(tsih);
    return owner >= 0 && owner !== data.index;
  },
  localSessionTsih(key) {
    return sessions.get(key)?.session?.tsih ?? 0;
  },
  findSession(key) {
    const id = ++sessionFindId;
    return new Promise((resolve) => {
      sessionFinds.set(id, resolve);
      parentPort!.postMessage(encodeControl({ type: 'session-find', id, key }));
    });
  },
  closeSession(tsih, isid, keep, why) {
    for (const c of connections) if (c !== keep && c.isSession(tsih, isid)) c.close(why);
  },
  registerNexus(r) {
    const got = nexusSlots.acquire();
    if (got === undefined) return undefined;
    const [slot, gen] = got;
    nexusTable.write(slot, gen, r);
    return nexusHandle(data.index, gen, slot);
  },
  signalLuns(nexus, target, event) {
    for (const route of distinctUnits(target)) {
      if (!submitControl(route.lunWorker, DescKind.UNIT_ATTENTION, event, route.luIndex, nexus, releaseOnly)) {
        log.error({ nexus }, 'no task for a unit attention event');
        break;
      }
    }
    ctx.flushDoorbells();
  },
  releaseNexus(id) {
    // One NEXUS_LOSS descriptor per LUN worker, queued behind the session's own
    // commands on each ring; the slot is reused once all of them are acknowledged.
    let waiting = channels.length;
    const ack: TaskOwner = {
      onTaskComplete(t) {
        pool.release(t);
        if (--waiting === 0) nexusSlots.release(id & 0xfff);
      },
    };
    for (let w = 0; w < channels.length; w++) {
      if (!submitControl(w, DescKind.NEXUS_LOSS, 0, 0, id, ack)) {
        // Pool exhausted (cannot happen below 65536 tasks): leak the slot, not the state.
        log.error({ nexus: id }, 'no task for nexus loss notification');
      }
    }
    ctx.flushDoorbells();
  },
  flushDoorbells() {
    for (let i = 0; i < channels.length; i++) channels[i].flushDoorbell();
  },
  pollCompletions() {
    // A wake-up through the doorbell costs ~30 us on a VM (futex wake, IPI, the
    // waiting thread's event loop turning over); a RAM or page-cache command completes
    // faster than that. So right after submitting, poll the rings for at most
    // pollBudgetNs; if nothing comes back the doorbell path takes over as usual. The
    // budget bounds how long other sockets on this worker can be kept waiting.
    if (data.pollBudgetUs <= 0) return;
    let pending = 0;
    for (let i = 0; i < channels.length; i++) pending += channels[i].pending;
    if (pending === 0) return;
    const deadline = process.hrtime.bigint() + pollBudgetNs;
    do {
      let n = 0;
      for (let i = 0; i < channels.length; i++) n += channels[i].drain();
      if (n > 0) {
        ctx.flushDoorbells();
        return;
      }
    } while (process.hrtime.bigint() < deadline);
  },
  writeSense(buf, reason) {
    return writeFixedSense(buf, SenseReason[reason as keyof typeof SenseReason]);
  },
};

let authRequestId = 0;
let sessionFindId = 0;
const sessionFinds = new Map<number, (r: { worker: number; tsih: number } | null) => void>();
const authWaiters = new Map<number, (r: { delayMs: number; failures: number }) => void>();
const connections = new Set<IscsiConnection>();
/** Sessions in full feature phase on this worker, by session identity. */
const sessions = new Map<string, IscsiConnection>();
let draining = false;

function onConnectionClosed(c: IscsiConnection, port: MessagePort): void {
  connections.delete(c);
  port.postMessage(encodeControl({ type: 'closed' }));
  if (draining) maybeDrained();
}

data.portalPorts.forEach((port, portalWorker) => {
  port.on('message', (msg: { socket?: Socket; portal?: number }) => {
    if (!msg.socket) return;
    const socket = msg.socket;
    if (draining) {
      socket.destroy();
      port.postMessage(encodeControl({ type: 'closed' }));
      return;
    }
    const c = new IscsiConnection(ctx, socket, msg.portal ?? portalWorker, (conn) => onConnectionClosed(conn, port));
    connections.add(c);
  });
});

// ---- completion loop: drain every completion ring, then park on the doorbell ----
function drainCompletions(): number {
  let n = 0;
  for (let i = 0; i < channels.length; i++) n += channels[i].drain();
  // Completions freed ring slots and may have moved queued tasks onto the rings.
  ctx.flushDoorbells();
  return n;
}

function maybeDrained(): void {
  let busy = 0;
  for (const c of connections) busy += c.busy;
  for (const ch of channels) busy += ch.pending;
  if (busy === 0) {
    for (const c of connections) c.close('target shutting down');
    parentPort!.postMessage(encodeControl({ type: 'drained' }));
  }
}

parentPort!.on('message', (raw: Uint8Array) => {
  const msg = decodeControl(raw);
  if (msg.type === 'drain') {
    draining = true;
    (ctx as { draining: boolean }).draining = true;
    // Ask every initiator to log out now (RFC 7143 11.9.1, AsyncEvent 1) so it can
    // move to another path before the connection closes.
    for (const c of connections) c.requestLogout(0);
    const deadline = setTimeout(() => {
      for (const c of connections) c.close('shutdown deadline');
      parentPort!.postMessage(encodeControl({ type: 'drained' }));
    }, msg.timeoutMs);
    deadline.unref();
    const poll = setInterval(() => {
      maybeDrained();
    }, 50);
    poll.unref();
    maybeDrained();
  } else if (msg.type === 'auth-delay') {
    const w = authWaiters.get(msg.id);
    authWaiters.delete(msg.id);
    w?.({ delayMs: msg.delayMs, failures: msg.failures });
  } else if (msg.type === 'session-found') {
    const w = sessionFinds.get(msg.id);
    sessionFinds.delete(msg.id);
    w?.(msg.worker < 0 ? null : { worker: msg.worker, tsih: msg.tsih });
  } else if (msg.type === 'reinstate') {
    // A newer session with this identity logged in on another session worker.
    const old = sessions.get(msg.key);
    if (old !== undefined) {
      sessions.delete(msg.key);
      old.close('session reinstatement');
    }
  } else if (msg.type === 'routes') {
    // Configuration reload (supervisor/reload.ts). The maps are updated in place, so
    // every holder of ctx sees the new tables; live sessions then re-resolve their own
    // view (LUN map, access) and learn inventory changes as unit attentions.
    const next = routesFromWire(msg.routes);
    targets.clear();
    for (const [iqn, t] of next.targets) targets.set(iqn, t);
    ctx.targetIndex.clear();
    for (const [iqn, slot] of msg.targetSlots) ctx.targetIndex.set(iqn, slot);
    ctx.discoveryAuth = msg.discoveryAuth;
    for (const c of connections) c.applyRoutes();
    ctx.flushDoorbells();
    parentPort!.postMessage(encodeControl({ type: 'done', id: msg.id }));
  } else if (msg.type === 'stats') {
    parentPort!.postMessage(
      encodeControl({ type: 'stats', connections: connections.size, tasks: pool.inUse, slabInUse: slab.inUse }),
    );
  }
});

void consumeForever(doorbell, drainCompletions);
parentPort!.postMessage(encodeControl({ type: 'ready' }));
