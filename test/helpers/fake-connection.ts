/**
 * A full-feature iSCSI connection on a test bench: the real IscsiConnection and every
 * module behind it (receiver, command intake, Data-Out/R2T engine, responses, writer),
 * the real TaskPool over a real Slab, and the real LunChannel over real SPSC rings in
 * SharedArrayBuffers. Only the two ends are stand-ins:
 *
 *   test ──PDUs──> FakeSocket ──> IscsiConnection ──> LunChannel ══cmd ring══> FakeLunWorker
 *   test <─PDUs─── (decoded)  <── PduWriter        <── LunChannel <═cpl ring══ (test decides)
 *
 *  - FakeSocket is a stream.Duplex with Node's real Writable semantics (high-water mark,
 *    write() returning false, 'drain', cork/uncork into one writev). Its reader is the
 *    test: it can stop reading (write callbacks are held, so the buffer fills) and go on.
 *  - FakeLunWorker consumes the command ring as a LUN worker would, and completes
 *    commands with the status, sense, data and residual inputs the test chooses (or
 *    holds them), writing read data into the task's slab buffer.
 *  - The SessionWorkerContext is a small stand-in (session-worker.ts builds the real one
 *    inline from workerData and parentPort); it records what the connection asks of the
 *    node (nexus registration and loss, session up/down, TMFs, unit attention events).
 *
 * The connection is put into full feature phase with chosen SessionParams through
 * `enterFullFeature`, the method the login exchange calls after the final Login
 * Response, so every negotiated value is under the test's control.
 */
import { Duplex } from 'node:stream';
import type { IscsiTuning } from '../../src/shared/config-types.ts';
import { createLogger } from '../../src/shared/logging.ts';
import { RESERVED_TAG } from '../../src/shared/iscsi/pdu.ts';
import { defaultSessionParams, type SessionParams } from '../../src/shared/iscsi/session-params.ts';
import { Slab } from '../../src/shared/ring/slab.ts';
import { SpscRing } from '../../src/shared/ring/spsc-ring.ts';
import { Doorbell } from '../../src/shared/ring/doorbell.ts';
import {
  CMD_DESC_BYTES,
  CPL_DESC_BYTES,
  Cmd,
  Cpl,
  DescFlags,
  DescKind,
} from '../../src/shared/ring/descriptors.ts';
import { SenseReason, writeFixedSense } from '../../src/shared/scsi/sense.ts';
import type { SessionWorkerContext } from '../../src/workers/session/context.ts';
import { LunChannel } from '../../src/workers/session/lun-channel.ts';
import type { LunRoute, PortalRoute, TargetRoute } from '../../src/workers/session/routes.ts';
import { TaskPool } from '../../src/workers/session/task.ts';
import { IscsiConnection } from '../../src/workers/session/iscsi/connection.ts';
import type { Transport } from '../../src/workers/session/iscsi/transport.ts';
import { dataOutBhs, scsiCommandBhs, nopOutBhs } from './initiator.ts';
import { InlineIo } from '../../src/workers/session/inline-io.ts';
import { PduStreamDecoder, framePdu, type FrameOptions, type WirePdu } from './pdu-stream.ts';

export const TARGET_IQN = 'iqn.2024-01.io.spindle:unit';
export const INITIATOR_IQN = 'iqn.1993-08.org.debian:01:unit';
export const ISID = Buffer.from([0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);

/** One macrotask: cork/uncork microtasks, write callbacks and stream ticks have all run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

// ---------------------------------------------------------------------------------------
// The socket

/**
 * The connection's socket. Input is what the test delivers; output is recorded (copied:
 * Data-In is written straight from slab memory that is reused once the task is freed).
 */
export class FakeSocket extends Duplex implements Transport {
  readonly remoteAddress = '192.0.2.7';
  readonly remotePort = 40001;
  /** Every chunk the target wrote, in order. */
  readonly written: Buffer[] = [];
  /** Callbacks of writes the "peer" has not read yet (peerReading = false). */
  private held: Array<() => void> = [];
  private reading = true;
  /** Number of writev/write calls the stream made (one per uncorked batch). */
  flushes = 0;

  constructor(writableHighWaterMark = 16 * 1024) {
    super({ writableHighWaterMark, allowHalfOpen: true });
  }

  setNoDelay(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.flushes++;
    this.written.push(Buffer.from(chunk));
    this.done(cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.flushes++;
    for (const c of chunks) this.written.push(Buffer.from(c.chunk));
    this.done(cb);
  }

  private done(cb: () => void): void {
    if (this.reading) cb();
    else this.held.push(cb);
  }

  /** Bytes from the initiator. */
  deliver(bytes: Buffer): void {
    this.push(bytes);
  }

  /**
   * The peer stops reading (false): what the target writes stays in the stream's buffer,
   * so write() starts returning false past the high-water mark. true: it reads again.
   */
  setPeerReading(on: boolean): void {
    this.reading = on;
    if (!on) return;
    const held = this.held;
    this.held = [];
    for (const cb of held) cb();
  }

  /** Take the output written so far. */
  takeWritten(): Buffer[] {
    return this.written.splice(0, this.written.length);
  }
}

// ---------------------------------------------------------------------------------------
// The LUN side

/** A command descriptor as the LUN worker reads it off the ring. */
export interface LunCommand {
  kind: number;
  tag: number;
  attribute: number;
  nexus: number;
  luIndex: number;
  lun: number;
  read: boolean;
  write: boolean;
  slabOffset: number;
  /** EDTL as the descriptor gives it (the task's buffer length). */
  expectedLength: number;
  /** Write bytes present in the buffer. */
  dataOutLength: number;
  cdb: Buffer;
  /** The task's data buffer in the slab (live: a copy is taken only by the caller). */
  data: Buffer;
}

export interface Completion {
  /** SAM status (default GOOD). */
  status?: number;
  /** Sense bytes (at most 80), or a SenseReason name for fixed-format sense. */
  sense?: Buffer | keyof typeof SenseReason;
  /** Read data written into the task's buffer (only what fits is copied). */
  dataIn?: Buffer;
  /** Bytes the command transferred; defaults to dataIn's length (may exceed EDTL: overflow). */
  dataInLength?: number;
  /** Data-out bytes the CDB called for (write residuals); 0: as expected. */
  dataOutWanted?: number;
  /** Aborted at the LU by a task management function: no status goes to the initiator. */
  aborted?: boolean;
}

/**
 * The LUN worker end of one channel: consumes the command ring and produces completions,
 * as lun-worker.ts does, with the test choosing each outcome.
 */
export class FakeLunWorker {
  private readonly cmd: SpscRing;
  private readonly cpl: SpscRing;
  private readonly slabBytes: Buffer;
  private readonly afterComplete: () => void;
  /** Commands read off the ring and not yet completed, oldest first. */
  private readonly queue: LunCommand[] = [];
  /** Every command ever received (for order checks). */
  readonly history: LunCommand[] = [];

  constructor(
    cmdRing: SharedArrayBuffer,
    cplRing: SharedArrayBuffer,
    capacity: number,
    slab: Slab,
    afterComplete: () => void,
  ) {
    this.cmd = new SpscRing(cmdRing, capacity, CMD_DESC_BYTES);
    this.cpl = new SpscRing(cplRing, capacity, CPL_DESC_BYTES);
    this.slabBytes = Buffer.from(slab.sab);
    this.afterComplete = afterComplete;
  }

  private poll(): void {
    const v = this.cmd.view;
    const b = this.cmd.bytes;
    for (let o = this.cmd.peek(); o >= 0; o = this.cmd.peek()) {
      const flags = v.getUint8(o + Cmd.FLAGS);
      const slabOffset = v.getUint32(o + Cmd.SLAB_OFFSET, true);
      const expectedLength = v.getUint32(o + Cmd.EXPECTED_LENGTH, true);
      const c: LunCommand = {
        kind: v.getUint8(o + Cmd.KIND),
        tag: v.getUint32(o + Cmd.TAG, true),
        attribute: v.getUint8(o + Cmd.ATTRIBUTE),
        nexus: v.getUint32(o + Cmd.NEXUS, true),
        luIndex: v.getUint32(o + Cmd.LU_INDEX, true),
        lun: v.getUint32(o + Cmd.LUN, true),
        read: (flags & DescFlags.DATA_IN) !== 0,
        write: (flags & DescFlags.DATA_OUT) !== 0,
        slabOffset,
        expectedLength,
        dataOutLength: v.getUint32(o + Cmd.DATA_OUT_LENGTH, true),
        cdb: Buffer.from(b.subarray(o + Cmd.CDB, o + Cmd.CDB + v.getUint8(o + Cmd.CDB_LENGTH))),
        data: this.slabBytes.subarray(slabOffset, slabOffset + expectedLength),
      };
      this.cmd.release();
      this.queue.push(c);
      this.history.push(c);
    }
  }

  /** Commands received and not completed yet (the LU holds them). */
  pending(): LunCommand[] {
    this.poll();
    return [...this.queue];
  }

  /** The oldest command not completed yet; throws when there is none. */
  take(): LunCommand {
    this.poll();
    const c = this.queue.shift();
    if (c === undefined) throw new Error('no command reached the LUN worker');
    return c;
  }

  /** Complete `c` (taken or still pending) and let the session side handle it. */
  complete(c: LunCommand, r: Completion = {}): void {
    const i = this.queue.indexOf(c);
    if (i >= 0) this.queue.splice(i, 1);
    if (r.dataIn !== undefined) r.dataIn.copy(c.data, 0, 0, Math.min(r.dataIn.length, c.data.length));
    let sense: Buffer = Buffer.alloc(0);
    if (typeof r.sense === 'string') {
      sense = Buffer.alloc(18);
      writeFixedSense(sense, SenseReason[r.sense]);
    } else if (r.sense !== undefined) sense = r.sense;
    const o = this.cpl.reserve();
    if (o < 0) throw new Error('completion ring full');
    const v = this.cpl.view;
    v.setUint8(o + Cpl.KIND, r.aborted ? DescKind.COMPLETION_ABORTED : DescKind.COMPLETION);
    v.setUint8(o + Cpl.STATUS, r.status ?? 0);
    v.setUint16(o + Cpl.SENSE_LENGTH, sense.length, true);
    v.setUint32(o + Cpl.TAG, c.tag, true);
    v.setUint32(o + Cpl.DATA_IN_LENGTH, r.dataInLength ?? r.dataIn?.length ?? 0, true);
    v.setUint32(o + Cpl.DATA_OUT_WANTED, r.dataOutWanted ?? 0, true);
    this.cpl.bytes.set(sense, o + Cpl.SENSE);
    this.cpl.publish();
    this.afterComplete();
  }
}

// ---------------------------------------------------------------------------------------
// The harness

export interface FakeConnectionOptions {
  /** Negotiated values (RFC 7143 13); the rest are the RFC defaults. */
  params?: Partial<SessionParams>;
  tuning?: Partial<IscsiTuning>;
  /** Command window per session (MaxCmdSN - ExpCmdSN + 1 when idle). */
  cmdWindow?: number;
  /** CmdSN of the leading Login Request: the session's first ExpCmdSN. */
  firstCmdSN?: number;
  /** StatSN of the first status-carrying PDU in full feature phase. */
  statSN?: number;
  /** LUN numbers mapped on the target (all to LU 0..n-1 of LUN worker 0). */
  luns?: number[];
  ringCapacity?: number;
  slabBytes?: number;
  /** The socket's writable high-water mark. */
  writableHighWaterMark?: number;
  /** Log level captured into `logs` (default warn). */
  logLevel?: string;
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface CommandOptions {
  read?: boolean;
  write?: boolean;
  edtl?: number;
  cdb?: Buffer;
  lun?: number;
  immediate?: boolean;
  /** F bit (default true; false announces unsolicited Data-Out). */
  final?: boolean;
  /** Default: the next CmdSN (not advanced for immediate commands). */
  cmdSN?: number;
  itt?: number;
  /** Immediate data. */
  data?: Buffer;
  frame?: FrameOptions;
}

export interface DataOutOptions {
  itt: number;
  ttt?: number;
  offset: number;
  data: Buffer;
  dataSN?: number;
  final?: boolean;
  lun?: number;
  frame?: FrameOptions;
}

const READ10 = 0x28;
const WRITE10 = 0x2a;

/** A READ(10) or WRITE(10) CDB for `bytes` at 512-byte blocks (the LU side is fake: only its shape matters). */
export function rwCdb(write: boolean, bytes: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = write ? WRITE10 : READ10;
  c.writeUInt16BE(Math.ceil(bytes / 512), 7);
  return c;
}

export class FakeConnection {
  readonly socket: FakeSocket;
  readonly conn: IscsiConnection;
  readonly ctx: SessionWorkerContext;
  readonly pool: TaskPool;
  readonly slab: Slab;
  readonly channel: LunChannel;
  readonly lun: FakeLunWorker;
  readonly params: SessionParams;
  readonly logs: LogLine[] = [];
  /** What the connection asked of the node. */
  readonly events: string[] = [];
  /** The connection reported itself closed (teardown ran). */
  closed = false;
  /** Next CmdSN the helpers use for non-immediate commands. */
  cmdSN: number;
  private nextItt = 0x100;
  private readonly decoder = new PduStreamDecoder();

  constructor(o: FakeConnectionOptions = {}) {
    const tuning: IscsiTuning = {
      maxRecvDataSegmentLength: 8192,
      maxBurstLength: 262144,
      firstBurstLength: 65536,
      maxOutstandingR2T: 1,
      maxTransferLength: 1024 * 1024,
      maxConnectionsPerPortal: 16,
      loginTimeoutSec: 15,
      nopIntervalSec: 0,
      nopTimeoutSec: 15,
      maxSessionsPerTarget: 16,
      authBackoffMaxSec: 0,
      ...o.tuning,
    };
    this.params = {
      ...defaultSessionParams(),
      SessionType: 'Normal',
      InitiatorName: INITIATOR_IQN,
      TargetName: TARGET_IQN,
      ...o.params,
    };
    const capacity = o.ringCapacity ?? 64;
    this.slab = new Slab(o.slabBytes ?? 8 * 1024 * 1024, 4096);
    this.pool = new TaskPool(this.slab);
    const cmdRing = new SharedArrayBuffer(SpscRing.byteLength(capacity, CMD_DESC_BYTES));
    const cplRing = new SharedArrayBuffer(SpscRing.byteLength(capacity, CPL_DESC_BYTES));
    this.channel = new LunChannel(
      { cmdRing, cplRing, capacity, peerDoorbell: new Doorbell().sab },
      this.pool,
    );
    const lunNumbers = o.luns ?? [0];
    const luns = new Map<number, LunRoute>(
      lunNumbers.map((n, i) => [n, { lunWorker: 0, luIndex: i, device: `d${i}` }]),
    );
    const target: TargetRoute = {
      iqn: TARGET_IQN,
      luns,
      lunList: [...luns.keys()].sort((a, b) => a - b),
      portals: [0],
      acls: [],
      defaultAccess: 'allow',
    };
    const portals: PortalRoute[] = [{ host: '192.0.2.1', port: 3260, tag: 1, group: 1 }];
    const log = createLogger({
      name: 'fake-connection',
      level: o.logLevel ?? 'warn',
      pretty: false,
      destination: { write: (line: string) => void this.logs.push(JSON.parse(line) as LogLine) },
    });
    const ev = this.events;
    const channels = [this.channel];
    const ctx: SessionWorkerContext = {
      index: 0,
      log,
      inline: new InlineIo(0, [], [], [], log, null),
      pool: this.pool,
      channels,
      targets: new Map([[TARGET_IQN, target]]),
      portals,
      tuning,
      cmdWindow: o.cmdWindow ?? 32,
      targetIndex: new Map([[TARGET_IQN, 0]]),
      draining: false,
      reserveSession: () => true,
      releaseSession: (i) => void ev.push(`releaseSession ${i}`),
      authFailure: () => Promise.resolve({ delayMs: 0, failures: 1 }),
      authSuccess: () => {},
      allocTsih: () => 0x21,
      tsihOwner: () => -1,
      adoptTsih: () => true,
      releaseTsih: (tsih) => void ev.push(`releaseTsih ${tsih}`),
      sessionUp: (_key, tsih) => void ev.push(`sessionUp ${tsih}`),
      sessionDown: () => void ev.push('sessionDown'),
      localSessionTsih: () => 0,
      findSession: () => Promise.resolve(null),
      hasSession: () => false,
      closeSession: () => {},
      registerNexus: () => 7,
      releaseNexus: (id) => void ev.push(`releaseNexus ${id}`),
      sendTmf: (_w, luIndex, fn) => {
        ev.push(`tmf ${fn} lu ${luIndex}`);
        return false;
      },
      signalLuns: (_n, _t, event) => void ev.push(`signalLuns ${event}`),
      flushDoorbells: () => {
        for (const ch of channels) ch.flushDoorbell();
      },
      inputStarts: () => {},
      inputEnds: () => ctx.flushDoorbells(),
      pendingWrites: { bytes: 0, limit: Math.floor(this.slab.size / 2) },
      writeSense: (buf, reason) => writeFixedSense(buf, SenseReason[reason as keyof typeof SenseReason]),
    };
    this.ctx = ctx;
    this.lun = new FakeLunWorker(cmdRing, cplRing, capacity, this.slab, () => {
      // What the session worker's completion loop does after a doorbell wake-up.
      this.channel.drain();
      ctx.flushDoorbells();
    });
    this.socket = new FakeSocket(o.writableHighWaterMark);
    this.conn = new IscsiConnection(ctx, this.socket, 0, () => {
      this.closed = true;
    });
    this.cmdSN = o.firstCmdSN ?? 1;
    this.conn.statSN = o.statSN ?? 0x1000;
    this.conn.enterFullFeature(
      {
        transit: true,
        cont: false,
        csg: 1,
        nsg: 3,
        versionMax: 0,
        versionMin: 0,
        isid: ISID,
        tsih: 0,
        itt: 0,
        cid: 0,
        cmdSN: this.cmdSN,
        expStatSN: 0,
        data: Buffer.alloc(0),
      },
      0x21,
      this.params,
    );
    this.decoder.headerDigest = this.params.HeaderDigest === 'CRC32C';
    this.decoder.dataDigest = this.params.DataDigest === 'CRC32C';
  }

  /** A connection in full feature phase, its socket flowing. */
  static async open(o: FakeConnectionOptions = {}): Promise<FakeConnection> {
    const h = new FakeConnection(o);
    await settle();
    return h;
  }

  allocItt(): number {
    return this.nextItt++;
  }

  /** Frame one PDU with the session's digests and deliver it. */
  send(bhs: Buffer, data?: Buffer, frame: FrameOptions = {}): void {
    this.socket.deliver(
      framePdu(bhs, data, {
        headerDigest: this.params.HeaderDigest === 'CRC32C',
        dataDigest: this.params.DataDigest === 'CRC32C',
        ...frame,
      }),
    );
  }

  /** A SCSI Command (RFC 7143 11.3); returns its ITT and CmdSN. */
  command(c: CommandOptions = {}): { itt: number; cmdSN: number } {
    const itt = c.itt ?? this.allocItt();
    let cmdSN = c.cmdSN;
    if (cmdSN === undefined) {
      cmdSN = this.cmdSN;
      if (!c.immediate) this.cmdSN = (this.cmdSN + 1) >>> 0;
    }
    const edtl = c.edtl ?? 0;
    const bhs = scsiCommandBhs({
      immediate: c.immediate,
      final: c.final,
      read: c.read,
      write: c.write,
      edtl,
      cmdSN,
      lun: c.lun ?? 0,
      itt,
      cdb: c.cdb ?? (c.read || c.write ? rwCdb(c.write === true, edtl) : Buffer.alloc(6)),
    });
    this.send(bhs, c.data, c.frame);
    return { itt, cmdSN };
  }

  /** One SCSI Data-Out PDU (RFC 7143 11.7). */
  dataOut(d: DataOutOptions): void {
    this.send(
      dataOutBhs({
        itt: d.itt,
        ttt: d.ttt ?? RESERVED_TAG,
        bufferOffset: d.offset,
        dataSN: d.dataSN ?? 0,
        final: d.final ?? true,
        lun: d.lun ?? 0,
      }),
      d.data,
      d.frame,
    );
  }

  /**
   * One data sequence: [offset, offset + length) of `all` in PDUs of at most the target's
   * MaxRecvDataSegmentLength, DataSN from 0, F on the last.
   */
  dataSequence(
    itt: number,
    ttt: number,
    all: Buffer,
    offset: number,
    length: number,
    pduBytes?: number,
  ): void {
    const max = pduBytes ?? this.params.TargetMaxRecvDataSegmentLength;
    let dataSN = 0;
    for (let at = offset; at < offset + length;) {
      const n = Math.min(max, offset + length - at);
      this.dataOut({
        itt,
        ttt,
        offset: at,
        data: all.subarray(at, at + n),
        dataSN: dataSN++,
        final: at + n === offset + length,
      });
      at += n;
    }
  }

  /** A NOP-Out ping (RFC 7143 11.18), immediate: its NOP-In shows ExpCmdSN/MaxCmdSN. */
  ping(): number {
    const itt = this.allocItt();
    this.send(nopOutBhs({ immediate: true, itt, cmdSN: this.cmdSN }));
    return itt;
  }

  settle(): Promise<void> {
    return settle();
  }

  /** Target PDUs written since the last call, decoded (digests and padding checked). */
  async take(): Promise<WirePdu[]> {
    await settle();
    for (const b of this.socket.takeWritten()) this.decoder.push(b);
    return this.decoder.drain();
  }

  /** Exactly one PDU was written since the last call: it. */
  async takeOne(): Promise<WirePdu> {
    const got = await this.take();
    if (got.length !== 1)
      throw new Error(`expected one PDU, got ${got.length} (${got.map((p) => p.opcode.toString(16))})`);
    return got[0]!;
  }

  /** Warnings and errors logged by the connection (messages only). */
  warnings(): string[] {
    return this.logs.filter((l) => l.level >= 40).map((l) => l.msg);
  }

  /** Nothing left behind: no task, no slab block, no task known to the connection. */
  get leftovers(): { tasks: number; slabBytes: number; connectionTasks: number; atLun: number } {
    return {
      tasks: this.pool.inUse,
      slabBytes: this.slab.inUse,
      connectionTasks: this.conn.busy,
      atLun: this.channel.pending,
    };
  }

  /** The initiator goes away. */
  async close(): Promise<void> {
    this.socket.destroy();
    await settle();
  }
}
