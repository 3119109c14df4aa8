/**
 * A loopback fabric for the LUN worker, in the spirit of LIO's tcm_loop: a real
 * LunWorker driven in this thread over real SpscRings, slabs, doorbells and nexus tables,
 * with the session side played by the real LunChannel and TaskPool. No threads, no
 * sockets: a test submits descriptors, pumps both ends, and reads what came back, in
 * order. The ring protocol (commands, NEXUS_LOSS, TMF, UNIT_ATTENTION descriptors and
 * their completions) is tested through it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DeviceConfig } from '../../src/shared/config-types.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { Doorbell } from '../../src/shared/ring/doorbell.ts';
import { SpscRing } from '../../src/shared/ring/spsc-ring.ts';
import { Slab } from '../../src/shared/ring/slab.ts';
import { CMD_DESC_BYTES, CPL_DESC_BYTES, DescKind } from '../../src/shared/ring/descriptors.ts';
import { NexusSlots, NexusTable, nexusHandle } from '../../src/shared/ring/nexus-table.ts';
import { TaskAttribute } from '../../src/shared/scsi/command.ts';
import type { AluaWire } from '../../src/shared/scsi/alua.ts';
import type { LunWorkerData } from '../../src/shared/wire/worker-data.ts';
import { LunWorker } from '../../src/workers/lun/lun-worker.ts';
import { LunChannel } from '../../src/workers/session/lun-channel.ts';
import { TaskPool, type Task } from '../../src/workers/session/task.ts';

const RING = 64;
const SLAB = 16 * 1024 * 1024;
const MIN_BLOCK = 4096;

/** What came back for one descriptor, in arrival order. */
export interface Returned {
  /** Sequence number of the submission this answers. */
  readonly id: number;
  readonly session: number;
  /** COMMAND or a control kind (the descriptor that was answered). */
  readonly kind: number;
  /** The completion's own kind: COMPLETION or COMPLETION_ABORTED. */
  readonly aborted: boolean;
  readonly status: number;
  readonly sense: Buffer;
  readonly dataIn: Buffer;
  readonly dataInLength: number;
}

export interface CommandOptions {
  luIndex?: number;
  lun?: number;
  attribute?: number;
  /** Data-Out bytes (a write). */
  dataOut?: Buffer;
  /** Data-In buffer size (a read). */
  dataIn?: number;
}

interface SessionSide {
  readonly pool: TaskPool;
  readonly channel: LunChannel;
  readonly nexusTable: NexusTable;
  readonly slots: NexusSlots;
  readonly doorbell: Doorbell;
}

export class LunLoopback {
  readonly worker: LunWorker;
  readonly sessions: SessionSide[];
  /** Every completion in the order the session side drained it. */
  readonly returned: Returned[] = [];
  readonly dir: string;
  #nextId = 0;
  readonly #inFlight = new Map<number, Task>();

  private constructor(worker: LunWorker, sessions: SessionSide[], dir: string) {
    this.worker = worker;
    this.sessions = sessions;
    this.dir = dir;
  }

  /**
   * A LUN worker with `devices` (unit index = position; a function gets the loopback's
   * scratch directory, for file devices) and `sessions` session sides.
   */
  static async open(
    devices: DeviceConfig[] | ((dir: string) => DeviceConfig[]),
    opts: { sessions?: number; alua?: AluaWire } = {},
  ): Promise<LunLoopback> {
    const n = opts.sessions ?? 1;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-loopback-'));
    const lunDoorbell = new Doorbell();
    const sides: SessionSide[] = [];
    const links: LunWorkerData['sessions'] = [];
    for (let s = 0; s < n; s++) {
      const cmd = SpscRing.create(RING, CMD_DESC_BYTES).sab;
      const cpl = SpscRing.create(RING, CPL_DESC_BYTES).sab;
      const slabSab = new SharedArrayBuffer(SLAB);
      const nexusTable = NexusTable.create();
      const doorbell = new Doorbell();
      const pool = new TaskPool(new Slab(SLAB, MIN_BLOCK, slabSab));
      const channel = new LunChannel({ cmdRing: cmd, cplRing: cpl, capacity: RING, peerDoorbell: lunDoorbell.sab }, pool);
      sides.push({ pool, channel, nexusTable, slots: new NexusSlots(), doorbell });
      links.push({ cmdRing: cmd, cplRing: cpl, capacity: RING, slab: slabSab, slabMinBlock: MIN_BLOCK, doorbell: doorbell.sab, nexusTable: nexusTable.sab });
    }
    const data: LunWorkerData = {
      index: 0,
      clusterId: 'loopback',
      stateDir: dir,
      maxTransferLength: 8 * 1024 * 1024,
      devices: typeof devices === 'function' ? devices(dir) : devices,
      doorbell: lunDoorbell.sab,
      sessions: links,
      logLevel: 'silent',
      pretty: false,
      ...(opts.alua === undefined ? {} : { alua: opts.alua }),
    };
    const worker = new LunWorker(data, createLogger({ name: 'lun', level: 'silent', pretty: false }));
    await worker.start();
    return new LunLoopback(worker, sides, dir);
  }

  #side(s: number): SessionSide {
    const side = this.sessions[s];
    if (side === undefined) throw new RangeError(`no session side ${s}`);
    return side;
  }

  /** Publish an I_T nexus in session side `s`'s table, as a login does; its handle. */
  login(s: number, initiatorName: string, isid = '400001370000', rtpi = 1): number {
    const side = this.#side(s);
    const got = side.slots.acquire();
    if (got === undefined) throw new Error('nexus table full');
    const [slot, gen] = got;
    side.nexusTable.write(slot, gen, {
      initiatorName,
      isid: Buffer.from(isid, 'hex'),
      targetName: 'iqn.2026-11.io.spindle:loopback',
      relativeTargetPortId: rtpi,
      targetPortGroup: rtpi,
    });
    return nexusHandle(s, gen, slot);
  }

  #acquire(s: number, kind: number): { task: Task; id: number } {
    const side = this.#side(s);
    const task = side.pool.acquire();
    if (task === null) throw new Error('task pool exhausted');
    const id = ++this.#nextId;
    task.kind = kind;
    this.#inFlight.set(id, task);
    task.owner = {
      onTaskComplete: (t) => {
        const dataIn = t.read && t.data.length > 0 ? Buffer.from(t.data.subarray(0, Math.min(t.dataInLength, t.data.length))) : Buffer.alloc(0);
        this.returned.push({
          id,
          session: s,
          kind,
          aborted: t.aborted,
          status: t.status,
          sense: Buffer.from(t.sense.subarray(0, t.senseLength)),
          dataIn,
          dataInLength: t.dataInLength,
        });
        this.#inFlight.delete(id);
        side.pool.release(t);
      },
    };
    return { task, id };
  }

  /** Queue a SCSI command for `nexus` from session side `s`; returns its id (see Returned). */
  command(s: number, nexus: number, cdb: readonly number[], o: CommandOptions = {}): number {
    const { task: t, id } = this.#acquire(s, DescKind.COMMAND);
    const side = this.#side(s);
    t.cdb.fill(0);
    Buffer.from(cdb).copy(t.cdb);
    t.cdbLength = Math.max(6, cdb.length);
    t.attribute = o.attribute ?? TaskAttribute.SIMPLE;
    t.luIndex = o.luIndex ?? 0;
    t.lun = o.lun ?? 0;
    t.read = o.dataIn !== undefined && o.dataIn > 0;
    t.write = o.dataOut !== undefined;
    const length = o.dataOut?.length ?? o.dataIn ?? 0;
    if (!side.pool.attachBuffer(t, length)) throw new Error('slab full');
    if (o.dataOut !== undefined) {
      o.dataOut.copy(t.data);
      t.received = o.dataOut.length;
    }
    side.channel.submit(t, nexus);
    return id;
  }

  /** Queue a control descriptor (NEXUS_LOSS, TMF, UNIT_ATTENTION); returns its id. */
  control(s: number, kind: number, nexus: number, o: { luIndex?: number; attribute?: number; refTag?: number } = {}): number {
    const { task: t, id } = this.#acquire(s, kind);
    t.attribute = o.attribute ?? 0;
    t.luIndex = o.luIndex ?? 0;
    t.cdbLength = 0;
    t.cdb.fill(0);
    t.cdb.writeUInt32LE(o.refTag ?? 0, 0);
    this.#side(s).channel.submit(t, nexus);
    return id;
  }

  /** The ring tag of submission `id` while it is in flight (ABORT TASK names it so). */
  ringTagOf(id: number): number {
    const t = this.#inFlight.get(id);
    if (t === undefined) throw new Error(`no submission ${id} in flight`);
    return t.ringTag;
  }

  /** One round: the LUN worker drains its command rings, the session sides their completions. */
  pump(): number {
    let n = this.worker.drainAll();
    for (const side of this.sessions) {
      n += side.channel.drain();
      side.channel.flushDoorbell();
    }
    return n;
  }

  /**
   * Pump until `done()` holds, letting the event loop run between rounds (backing I/O
   * completes on libuv's pool). Throws after `timeoutMs`.
   */
  async until(done: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.pump();
      if (done()) return;
      if (Date.now() > deadline) throw new Error('loopback: condition not reached in time');
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  /** Pump until submission `id` has come back; returns it. */
  async result(id: number, timeoutMs?: number): Promise<Returned> {
    await this.until(() => this.returned.some((r) => r.id === id), timeoutMs);
    return this.returned.find((r) => r.id === id)!;
  }

  async close(): Promise<void> {
    await this.worker.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
