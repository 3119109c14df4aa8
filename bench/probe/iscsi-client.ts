/**
 * A lean iSCSI initiator (RFC 7143) for the latency probe: one connection, one session,
 * a fixed queue depth of commands kept in flight, and each command's time from the
 * moment its PDU is handed to the socket to the moment its status is parsed.
 *
 * It is a measuring instrument, so it is separate from the code it measures (nothing
 * from src/) and does as little per command as Node allows:
 *   - every command PDU (BHS, immediate data, unsolicited Data-Out PDUs) is built once per
 *     queue slot; per command only ITT, CmdSN, ExpStatSN and the LBA are patched in place,
 *     and the slot's buffer is reused only once its command has completed, which means the
 *     target has received all of it;
 *   - received bytes go through a state machine that copies the 48-byte header and skips
 *     data it does not need (read data is counted, not kept);
 *   - start times are kept in a preallocated BigInt64Array and latencies in a
 *     preallocated Float64Array; no closures or promises per command.
 * What remains per command is Node's own: process.hrtime.bigint() returns a heap BigInt,
 * socket.write() allocates its write request, and an R2T costs one Buffer view.
 *
 * Login (RFC 7143 6.2, 13): straight into the operational stage (no security stage, as
 * neither target asks for authentication here) with the keys QEMU's initiator, libiscsi,
 * offers by default, so both targets negotiate what they negotiate with qemu-img bench:
 * HeaderDigest=None, DataDigest=None, InitialR2T=No, ImmediateData=Yes,
 * MaxRecvDataSegmentLength=FirstBurstLength=MaxBurstLength=262144. (libiscsi offers
 * HeaderDigest "None,CRC32C" and both targets pick None; this client offers None only.)
 *
 * Written from RFC 7143 and SPC-4/SBC-4 for this project; not derived from any initiator.
 */
import net from 'node:net';
import { negotiate, OUR_MAX_RECV, parseKeys, LOGIN_KEYS, type Negotiated } from './negotiation.ts';
import { BHS, commandBhs, dataOutBhs, NO_TAG, Op, prKey, prOutCdb, snGreater } from './pdu.ts';

export type { Negotiated } from './negotiation.ts';

/** What the timed loop sends. */
export const ProbeOp = {
  READ: 'read',
  WRITE: 'write',
  /** PERSISTENT RESERVE OUT, REGISTER (SPC-4 6.16.2), changing the key every time. */
  PR_REGISTER: 'pr-register',
} as const;
export type ProbeOp = (typeof ProbeOp)[keyof typeof ProbeOp];

export interface LoopSpec {
  readonly op: ProbeOp;
  /** Bytes per command (READ/WRITE). */
  readonly size: number;
  readonly depth: number;
  /** Bytes between consecutive offsets (READ/WRITE), wrapping at the capacity. */
  readonly step: number;
  /** Timed commands. */
  readonly count: number;
  /** Commands run first and not timed (warm the target and the connection up). */
  readonly warmup: number;
}

export interface LoopResult {
  /** Latency of each timed command, nanoseconds, in completion order. */
  readonly samplesNs: Float64Array;
  /** From the end of the warm-up to the last completion. */
  readonly seconds: number;
}

export interface ScsiOutcome {
  readonly status: number;
  readonly data: Buffer;
  readonly sense: Buffer;
}

const SLOW_ITT_BASE = 0x10000;
const LOGOUT_ITT = 0x20000;
const STATUS_GOOD = 0;
const STATUS_CHECK_CONDITION = 0x02;

export class LeanInitiator {
  readonly #socket: net.Socket;
  readonly #lun: number;

  // ---- receive state machine ----
  readonly #hdr = Buffer.alloc(BHS);
  #hdrFill = 0;
  /** Bytes of the current PDU's AHS + data + padding still to come. */
  #payloadLeft = 0;
  #payloadCollect = false;
  #payloadFill = 0;
  readonly #payload = Buffer.alloc(OUR_MAX_RECV + 8);

  // ---- sequence numbers (RFC 7143 4.2.2) ----
  #cmdSN = 1;
  #expStatSN = 0;
  #maxCmdSN = 1;

  // ---- failure and the one waiter of the slow path ----
  #fatal: Error | undefined;
  #waiter: { resolve: (v: unknown) => void; reject: (e: Error) => void } | undefined;
  #closed = false;

  // ---- slow path (login, setup commands, logout) ----
  #slowItt = SLOW_ITT_BASE;
  #slowData: Buffer = Buffer.alloc(0);
  #slowSense: Buffer = Buffer.alloc(0);
  #loginResponse:
    { flags: number; statusClass: number; statusDetail: number; tsih: number; keys: string } | undefined;

  negotiated: Negotiated | undefined;

  // ---- fast path (the timed loop); allocated once by run() ----
  #spec: LoopSpec | undefined;
  #blockSize = 512;
  #capacity = 0;
  #slotPdu: Buffer[] = [];
  /** The bytes of each slot's command PDUs, a view made once. */
  #slotView: Buffer[] = [];
  #slotR2t: Buffer[] = [];
  #slotStart = new BigInt64Array(0);
  #samples = new Float64Array(0);
  #waitQ = new Int32Array(0);
  #waitHead = 0;
  #waitLen = 0;
  #nextOffset = 0;
  #size = 0;
  #issued = 0;
  #completed = 0;
  #total = 0;
  #t0 = 0n;
  #tEnd = 0n;
  #pattern = Buffer.alloc(0);
  #immediateLen = 0;
  #unsolicitedPdus = 0;
  #registrations = 0;
  #loopDone: ((v: unknown) => void) | undefined;

  private constructor(socket: net.Socket, lun: number) {
    this.#socket = socket;
    this.#lun = lun;
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', (e) => this.#fail(e));
    socket.on('close', () => {
      this.#closed = true;
      this.#fail(new Error('connection closed by the target'));
    });
  }

  static connect(host: string, port: number, lun: number, timeoutMs = 5000): Promise<LeanInitiator> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      const onErr = (e: Error): void => {
        clearTimeout(timer);
        reject(e);
      };
      s.once('error', onErr);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeListener('error', onErr);
        resolve(new LeanInitiator(s, lun));
      });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Receive

  #onData(chunk: Buffer): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.#hdrFill < BHS) {
        const take = Math.min(BHS - this.#hdrFill, n - pos);
        chunk.copy(this.#hdr, this.#hdrFill, pos, pos + take);
        this.#hdrFill += take;
        pos += take;
        if (this.#hdrFill < BHS) return;
        this.#headerComplete();
        if (this.#payloadLeft === 0) this.#pduComplete();
        continue;
      }
      const take = Math.min(this.#payloadLeft, n - pos);
      if (this.#payloadCollect) chunk.copy(this.#payload, this.#payloadFill, pos, pos + take);
      this.#payloadFill += take;
      this.#payloadLeft -= take;
      pos += take;
      if (this.#payloadLeft === 0) this.#pduComplete();
    }
  }

  #headerComplete(): void {
    const h = this.#hdr;
    const ahs = h[4]! * 4;
    const dsl = (h[5]! << 16) | (h[6]! << 8) | h[7]!;
    const padded = (dsl + 3) & ~3;
    this.#payloadLeft = ahs + padded; // no digests: HeaderDigest=DataDigest=None
    this.#payloadFill = 0;
    const op = h[0]! & 0x3f;
    // Read data of the timed loop is counted, not kept; everything else is small and read.
    this.#payloadCollect = op !== Op.DATA_IN || h.readUInt32BE(16) >= SLOW_ITT_BASE;
    if (this.#payloadCollect && this.#payloadLeft > this.#payload.length) {
      this.#fail(new Error(`target PDU 0x${op.toString(16)} carries ${dsl} bytes, more than declared`));
      this.#payloadCollect = false;
    }
  }

  #pduComplete(): void {
    const h = this.#hdr;
    this.#hdrFill = 0;
    const op = h[0]! & 0x3f;
    // ExpCmdSN (28) and MaxCmdSN (32) are in every target PDU this client receives.
    if (op !== Op.LOGIN_RESPONSE || h[36] === 0) {
      const maxCmdSN = h.readUInt32BE(32);
      if (snGreater(maxCmdSN, this.#maxCmdSN)) this.#maxCmdSN = maxCmdSN;
    }
    switch (op) {
      case Op.SCSI_RESPONSE: {
        this.#expStatSN = (h.readUInt32BE(24) + 1) >>> 0;
        const itt = h.readUInt32BE(16);
        // Response (byte 2) other than "command completed at target" is a failure too.
        const status = h[2] === 0 ? h[3]! : 0x100 | h[2]!;
        if (itt >= SLOW_ITT_BASE) this.#slowDone(status, true);
        else this.#complete(itt, status);
        break;
      }
      case Op.DATA_IN: {
        const itt = h.readUInt32BE(16);
        if (itt >= SLOW_ITT_BASE) {
          const off = h.readUInt32BE(40);
          const dsl = (h[5]! << 16) | (h[6]! << 8) | h[7]!;
          if (off + dsl <= this.#slowData.length) this.#payload.copy(this.#slowData, off, 0, dsl);
        }
        if ((h[1]! & 0x01) !== 0) {
          // S bit: the status is in this PDU (RFC 7143 11.7.5).
          this.#expStatSN = (h.readUInt32BE(24) + 1) >>> 0;
          if (itt >= SLOW_ITT_BASE) this.#slowDone(h[3]!, false);
          else this.#complete(itt, h[3]!);
        }
        break;
      }
      case Op.R2T:
        this.#r2t(h.readUInt32BE(16), h.readUInt32BE(20), h.readUInt32BE(40), h.readUInt32BE(44));
        break;
      case Op.NOP_IN:
        if (h.readUInt32BE(20) !== NO_TAG) this.#nopReply(h.readUInt32BE(20));
        break;
      case Op.LOGIN_RESPONSE:
        this.#expStatSN = (h.readUInt32BE(24) + 1) >>> 0;
        this.#maxCmdSN = h.readUInt32BE(32);
        this.#loginResponse = {
          flags: h[1]!,
          statusClass: h[36]!,
          statusDetail: h[37]!,
          tsih: h.readUInt16BE(14),
          keys: this.#payload.toString('utf8', 0, (h[5]! << 16) | (h[6]! << 8) | h[7]!),
        };
        this.#wake(undefined);
        break;
      case Op.LOGOUT_RESPONSE:
        this.#wake(undefined);
        break;
      case Op.ASYNC_MESSAGE:
        break; // nothing a probe of a few seconds must act on
      case Op.REJECT:
        this.#fail(new Error(`target rejected a PDU (reason 0x${h[2]!.toString(16)})`));
        break;
      default:
        this.#fail(new Error(`unexpected target PDU opcode 0x${op.toString(16)}`));
    }
    if (this.#waitLen > 0) this.#drainWaiting();
  }

  // -------------------------------------------------------------------------------------------
  // Failure and the slow path's single waiter

  #fail(e: Error): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = e;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(e);
  }

  #wake(v: unknown): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve(v);
  }

  #wait<T>(timeoutMs: number, what: string): Promise<T> {
    if (this.#fatal !== undefined) return Promise.reject(this.#fatal);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => this.#fail(new Error(`${what}: no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiter = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  #send(b: Buffer): void {
    if (!this.#closed) this.#socket.write(b);
  }

  // -------------------------------------------------------------------------------------------
  // Login (RFC 7143 6.2, 11.12): operational stage only, then full feature phase.

  async login(initiatorName: string, targetName: string, timeoutMs = 5000): Promise<Negotiated> {
    const text = Buffer.from(
      [['InitiatorName', initiatorName], ['TargetName', targetName], ['SessionType', 'Normal'], ...LOGIN_KEYS]
        .map(([k, v]) => `${k}=${v}\0`)
        .join(''),
    );
    const isid = Buffer.from([
      0x80,
      (process.pid >>> 16) & 0xff,
      (process.pid >>> 8) & 0xff,
      process.pid & 0xff,
      0x00,
      0x01,
    ]);
    let tsih = 0;
    let keys = '';
    let first = true;
    for (let step = 0; step < 8; step++) {
      const data = first ? text : Buffer.alloc(0);
      first = false;
      const padded = (data.length + 3) & ~3;
      const pdu = Buffer.alloc(BHS + padded);
      pdu[0] = 0x40 | Op.LOGIN_REQUEST; // the I bit is always set on Login Requests
      pdu[1] = 0x80 | (1 << 2) | 3; // T, CSG = operational (1), NSG = full feature (3)
      pdu[5] = (data.length >>> 16) & 0xff;
      pdu[6] = (data.length >>> 8) & 0xff;
      pdu[7] = data.length & 0xff;
      isid.copy(pdu, 8);
      pdu.writeUInt16BE(tsih, 14);
      pdu.writeUInt32BE(0, 16); // ITT
      pdu.writeUInt32BE(this.#cmdSN, 24); // the session's initial CmdSN; not advanced (immediate)
      pdu.writeUInt32BE(this.#expStatSN, 28);
      data.copy(pdu, BHS);
      const got = this.#wait<void>(timeoutMs, 'login');
      this.#send(pdu);
      await got;
      const r = this.#loginResponse!;
      if (r.statusClass !== 0) {
        throw new Error(`login refused: status class ${r.statusClass} detail ${r.statusDetail}`);
      }
      keys += `${r.keys}\0`;
      tsih = r.tsih;
      if ((r.flags & 0x80) !== 0 && (r.flags & 3) === 3) {
        this.negotiated = negotiate(parseKeys(keys));
        return this.negotiated;
      }
    }
    throw new Error('login did not reach the full feature phase');
  }

  // -------------------------------------------------------------------------------------------
  // Slow path: one command at a time, for setup (TEST UNIT READY, READ CAPACITY) and teardown.

  async scsi(
    cdb: Uint8Array,
    o: { dataIn?: number; dataOut?: Buffer; timeoutMs?: number } = {},
  ): Promise<ScsiOutcome> {
    const itt = this.#slowItt++;
    const out = o.dataOut ?? Buffer.alloc(0);
    const write = out.length > 0;
    const padded = (out.length + 3) & ~3;
    const pdu = Buffer.alloc(BHS + padded);
    commandBhs(pdu, 0, this.#lun, write, write ? out.length : (o.dataIn ?? 0), out.length);
    if (!write && (o.dataIn ?? 0) === 0) pdu[1] = 0x81; // F, no data direction, SIMPLE
    pdu.writeUInt32BE(itt, 16);
    pdu.writeUInt32BE(this.#cmdSN, 24);
    this.#cmdSN = (this.#cmdSN + 1) >>> 0;
    pdu.writeUInt32BE(this.#expStatSN, 28);
    Buffer.from(cdb).copy(pdu, 32, 0, Math.min(16, cdb.length));
    out.copy(pdu, BHS);
    this.#slowData = Buffer.alloc(o.dataIn ?? 0);
    this.#slowSense = Buffer.alloc(0);
    const got = this.#wait<number>(o.timeoutMs ?? 10_000, `command 0x${cdb[0]!.toString(16)}`);
    this.#send(pdu);
    const status = await got;
    return { status, data: this.#slowData, sense: this.#slowSense };
  }

  #slowDone(status: number, fromResponse: boolean): void {
    if (fromResponse && status === STATUS_CHECK_CONDITION) {
      // SCSI Response data segment: SenseLength (2 bytes), then the sense data (11.4.7).
      const len = this.#payload.readUInt16BE(0);
      this.#slowSense = Buffer.from(this.#payload.subarray(2, 2 + len));
    }
    this.#wake(status);
  }

  /**
   * TEST UNIT READY until GOOD: the first command of a new I_T nexus meets POWER ON,
   * RESET (SAM-5 6.3), which initiators absorb this way before real I/O.
   */
  async untilReady(): Promise<void> {
    let last = '';
    for (let i = 0; i < 10; i++) {
      const r = await this.scsi(new Uint8Array(6));
      if (r.status === STATUS_GOOD) return;
      last = `status 0x${r.status.toString(16)} sense ${r.sense.toString('hex')}`;
    }
    throw new Error(`LU not ready: ${last}`);
  }

  /** READ CAPACITY(16) (SBC-4 5.16): capacity in bytes and the logical block size. */
  async readCapacity(): Promise<{ bytes: number; blockSize: number }> {
    const cdb = new Uint8Array(16);
    cdb[0] = 0x9e; // SERVICE ACTION IN(16)
    cdb[1] = 0x10; // READ CAPACITY(16)
    cdb[13] = 32; // allocation length
    const r = await this.scsi(cdb, { dataIn: 32 });
    if (r.status !== STATUS_GOOD)
      throw new Error(`READ CAPACITY(16) failed: status 0x${r.status.toString(16)}`);
    const lastLba = r.data.readUInt32BE(0) * 2 ** 32 + r.data.readUInt32BE(4);
    const blockSize = r.data.readUInt32BE(8);
    return { bytes: (lastLba + 1) * blockSize, blockSize };
  }

  /** PR OUT REGISTER (SPC-4 6.16.2) from `from` to `to` (0 unregisters), on the slow path. */
  async prRegister(from: { hi: number; lo: number }, to: { hi: number; lo: number }): Promise<number> {
    const param = Buffer.alloc(24);
    param.writeUInt32BE(from.hi, 0);
    param.writeUInt32BE(from.lo, 4);
    param.writeUInt32BE(to.hi, 8);
    param.writeUInt32BE(to.lo, 12);
    return (await this.scsi(prOutCdb(), { dataOut: param })).status;
  }

  /** The key the timed PR loop left registered, if any. */
  get lastRegisteredKey(): { hi: number; lo: number } | undefined {
    return this.#registrations > 0 ? prKey(this.#registrations - 1) : undefined;
  }

  async logout(timeoutMs = 3000): Promise<void> {
    if (this.#closed || this.#fatal !== undefined) return;
    const pdu = Buffer.alloc(BHS);
    pdu[0] = 0x40 | Op.LOGOUT_REQUEST; // immediate
    pdu[1] = 0x80; // reason 0: close the session
    pdu.writeUInt32BE(LOGOUT_ITT, 16);
    pdu.writeUInt32BE(this.#cmdSN, 24);
    pdu.writeUInt32BE(this.#expStatSN, 28);
    const got = this.#wait<void>(timeoutMs, 'logout');
    this.#send(pdu);
    await got.catch(() => undefined);
  }

  close(): void {
    this.#socket.destroy();
  }

  // -------------------------------------------------------------------------------------------
  // The timed loop

  /**
   * Runs `spec.warmup + spec.count` commands with `spec.depth` in flight and returns the
   * latencies of the last `spec.count`. Needs login(), and for READ/WRITE the capacity.
   */
  run(spec: LoopSpec, capacity: { bytes: number; blockSize: number }): Promise<LoopResult> {
    const neg = this.negotiated;
    if (neg === undefined) throw new Error('run() before login()');
    if (spec.depth < 1 || spec.depth > 256) throw new RangeError('depth must be 1-256');
    if (spec.op === ProbeOp.PR_REGISTER && spec.depth !== 1)
      throw new RangeError('PR REGISTER runs at QD1 (each changes the key)');
    const write = spec.op !== ProbeOp.READ;
    const size = spec.op === ProbeOp.PR_REGISTER ? 24 : spec.size;
    if (
      spec.op !== ProbeOp.PR_REGISTER &&
      (size % capacity.blockSize !== 0 || spec.step % capacity.blockSize !== 0)
    ) {
      throw new RangeError(`size and step must be multiples of the ${capacity.blockSize}-byte block`);
    }
    this.#spec = spec;
    this.#blockSize = capacity.blockSize;
    this.#capacity = capacity.bytes;
    this.#pattern = Buffer.alloc(Math.max(size, 4), 0xa5);

    // Immediate data up to FirstBurstLength and the target's MaxRecvDataSegmentLength;
    // with InitialR2T=No, unsolicited Data-Out PDUs up to FirstBurstLength (RFC 7143 13.10,
    // 13.11, 13.14); the rest on R2T.
    const seg = neg.targetMaxRecvDataSegmentLength;
    const firstBurst = Math.min(neg.firstBurstLength, size);
    this.#immediateLen = write && neg.immediateData ? Math.min(seg, firstBurst) : 0;
    const unsolicitedBytes = write && !neg.initialR2T ? firstBurst - this.#immediateLen : 0;
    this.#unsolicitedPdus = Math.ceil(unsolicitedBytes / seg);
    if (spec.op === ProbeOp.PR_REGISTER && this.#immediateLen < size) {
      throw new Error('the PR probe sends its parameter list as immediate data: needs ImmediateData=Yes');
    }
    this.#size = size;
    const cmdLen = BHS + this.#immediateLen + this.#unsolicitedPdus * BHS + unsolicitedBytes;

    this.#slotPdu = [];
    this.#slotView = [];
    this.#slotR2t = [];
    for (let s = 0; s < spec.depth; s++) {
      const b = Buffer.alloc(cmdLen);
      commandBhs(b, 0, this.#lun, write, size, this.#immediateLen);
      if (spec.op === ProbeOp.PR_REGISTER) prOutCdb().forEach((v, i) => (b[32 + i] = v));
      else {
        b[32] = write ? 0x2a : 0x28; // WRITE(10) / READ(10) (SBC-4 5.40, 5.16); no FUA, as qemu with cache=none
        b.writeUInt16BE(size / capacity.blockSize, 32 + 7); // TRANSFER LENGTH in blocks
      }
      // PR OUT's parameter list is zeros but for the keys patched in per command (no
      // SPEC_I_PT, ALL_TG_PT or APTPL); READ/WRITE data is the non-zero pattern.
      if (spec.op !== ProbeOp.PR_REGISTER) this.#pattern.copy(b, BHS, 0, this.#immediateLen);
      let at = BHS + this.#immediateLen;
      for (let off = this.#immediateLen; off < firstBurst && unsolicitedBytes > 0; off += seg) {
        const len = Math.min(seg, firstBurst - off);
        dataOutBhs(
          b,
          at,
          this.#lun,
          s,
          NO_TAG,
          (off - this.#immediateLen) / seg,
          off,
          len,
          off + len >= firstBurst,
        );
        this.#pattern.copy(b, at + BHS, 0, len);
        at += BHS + len;
      }
      this.#slotPdu.push(b);
      this.#slotView.push(b.subarray(0, cmdLen));
      const r2tPdus = Math.ceil(size / seg) + 1;
      this.#slotR2t.push(write ? Buffer.alloc(r2tPdus * BHS + size) : Buffer.alloc(0));
    }
    this.#slotStart = new BigInt64Array(spec.depth);
    this.#samples = new Float64Array(spec.count);
    this.#waitQ = new Int32Array(spec.depth);
    this.#waitHead = 0;
    this.#waitLen = 0;
    this.#nextOffset = 0;
    this.#issued = 0;
    this.#completed = 0;
    this.#total = spec.warmup + spec.count;
    this.#t0 = process.hrtime.bigint();

    const done = new Promise((resolve, reject) => {
      this.#loopDone = resolve;
      this.#waiter = { resolve, reject };
    });
    // A stalled target must not hang the bench: fail if nothing completes for 15 s.
    let seen = -1;
    const watchdog = setInterval(() => {
      if (this.#completed === seen)
        this.#fail(new Error(`no command completed in 15 s (${this.#completed}/${this.#total})`));
      seen = this.#completed;
    }, 15_000);
    for (let s = 0; s < spec.depth && this.#issued < this.#total; s++) {
      this.#issued++;
      this.#submit(s);
    }
    return done
      .then(() => ({ samplesNs: this.#samples, seconds: Number(this.#tEnd - this.#t0) / 1e9 }))
      .finally(() => clearInterval(watchdog));
  }

  #submit(slot: number): void {
    if (snGreater(this.#cmdSN, this.#maxCmdSN)) {
      // Outside the command window (RFC 7143 3.2.2.1): wait for MaxCmdSN to advance.
      this.#waitQ[(this.#waitHead + this.#waitLen) % this.#waitQ.length] = slot;
      this.#waitLen++;
      return;
    }
    const b = this.#slotPdu[slot]!;
    const spec = this.#spec!;
    b.writeUInt32BE(slot, 16);
    b.writeUInt32BE(this.#cmdSN, 24);
    b.writeUInt32BE(this.#expStatSN, 28);
    this.#cmdSN = (this.#cmdSN + 1) >>> 0;
    if (spec.op === ProbeOp.PR_REGISTER) {
      // RESERVATION KEY = the key registered last (0 the first time), SERVICE ACTION
      // RESERVATION KEY = a new one (SPC-4 6.16.2, Table 215).
      const n = this.#registrations++;
      const from = n === 0 ? { hi: 0, lo: 0 } : prKey(n - 1);
      const to = prKey(n);
      b.writeUInt32BE(from.hi, BHS);
      b.writeUInt32BE(from.lo, BHS + 4);
      b.writeUInt32BE(to.hi, BHS + 8);
      b.writeUInt32BE(to.lo, BHS + 12);
    } else {
      // A request never crosses the end of the LU: wrap to 0 first (qemu-img bench does the same).
      if (this.#nextOffset + this.#size > this.#capacity) this.#nextOffset = 0;
      b.writeUInt32BE(this.#nextOffset / this.#blockSize, 32 + 2); // LOGICAL BLOCK ADDRESS
      this.#nextOffset = (this.#nextOffset + spec.step) % this.#capacity;
    }
    for (let p = 0, at = BHS + this.#immediateLen; p < this.#unsolicitedPdus; p++) {
      b.writeUInt32BE(this.#expStatSN, at + 28);
      at += BHS + ((b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!);
    }
    this.#slotStart[slot] = process.hrtime.bigint();
    this.#send(this.#slotView[slot]!);
  }

  #drainWaiting(): void {
    while (this.#waitLen > 0 && !snGreater(this.#cmdSN, this.#maxCmdSN)) {
      const slot = this.#waitQ[this.#waitHead]!;
      this.#waitHead = (this.#waitHead + 1) % this.#waitQ.length;
      this.#waitLen--;
      this.#submit(slot);
    }
  }

  #complete(slot: number, status: number): void {
    const now = process.hrtime.bigint();
    if (slot >= this.#slotStart.length) {
      this.#fail(new Error(`status for unknown task tag ${slot}`));
      return;
    }
    if (status !== STATUS_GOOD) {
      const sense =
        status === STATUS_CHECK_CONDITION ? ` sense ${this.#payload.subarray(2, 20).toString('hex')}` : '';
      this.#fail(new Error(`command failed: status 0x${status.toString(16)}${sense}`));
      return;
    }
    const i = this.#completed++;
    const warmup = this.#spec!.warmup;
    if (i >= warmup) this.#samples[i - warmup] = Number(now - this.#slotStart[slot]!);
    if (i + 1 === warmup) this.#t0 = now;
    if (this.#issued < this.#total) {
      this.#issued++;
      this.#submit(slot);
    } else if (this.#completed === this.#total) {
      this.#tEnd = now;
      this.#waiter = undefined;
      this.#loopDone?.(undefined);
    }
  }

  /** Data-Out PDUs for one R2T (RFC 7143 11.8, 11.7), in chunks the target accepts. */
  #r2t(slot: number, ttt: number, offset: number, length: number): void {
    const b = this.#slotR2t[slot];
    if (b === undefined || b.length === 0) {
      this.#fail(new Error(`R2T for task tag ${slot}, which has no data to send`));
      return;
    }
    const seg = this.negotiated!.targetMaxRecvDataSegmentLength;
    let at = 0;
    let dataSN = 0;
    for (let off = offset; off < offset + length; off += seg) {
      const len = Math.min(seg, offset + length - off);
      dataOutBhs(b, at, this.#lun, slot, ttt, dataSN++, off, len, off + len >= offset + length);
      b.writeUInt32BE(this.#expStatSN, at + 28);
      this.#pattern.copy(b, at + BHS, 0, len);
      at += BHS + len;
    }
    this.#send(b.subarray(0, at)); // one view per R2T (see the module comment)
  }

  /** Answers a target's ping (RFC 7143 11.18: NOP-Out with its TTT, ITT reserved). */
  #nopReply(ttt: number): void {
    const pdu = Buffer.alloc(BHS);
    pdu[0] = 0x40 | Op.NOP_OUT;
    pdu[1] = 0x80;
    this.#hdr.copy(pdu, 8, 8, 16); // LUN as received
    pdu.writeUInt32BE(NO_TAG, 16);
    pdu.writeUInt32BE(ttt, 20);
    pdu.writeUInt32BE(this.#cmdSN, 24);
    pdu.writeUInt32BE(this.#expStatSN, 28);
    this.#send(pdu);
  }
}
