/**
 * One iSCSI connection on a session worker: receive state machine, login phase, and
 * the full feature phase (RFC 7143). With MaxConnections=1 the connection also owns its
 * session.
 *
 * Receive path, two phases per PDU (as SPDK does): when the header (BHS + AHS + header
 * digest) is in, `onHeader` checks it and chooses where the data segment goes: straight
 * into a task's slab buffer (immediate data, Data-Out) or into the connection's control
 * buffer (login, text, NOP-Out ping data). When the data segment (+ padding + data
 * digest) is in, `onPdu` acts on it. Partial reads resume where they stopped.
 */
import type { Socket } from 'node:net';
import {
  AsyncEvent,
  BHS_LENGTH,
  Field,
  LogoutReason,
  LogoutResponse,
  Opcode,
  RESERVED_TAG,
  RejectReason,
  ResidualFlag,
  ScsiCmdFlags,
  TmfFunction,
  TmfResponse,
  ahsLength,
  buildAsyncMessage,
  buildDataIn,
  buildLoginResponse,
  buildLogoutResponse,
  buildNopIn,
  buildR2T,
  buildReject,
  buildScsiResponse,
  buildTextResponse,
  buildTmfResponse,
  dataSegmentLength,
  decodeLun,
  finalBit,
  isImmediate,
  opcodeOf,
  pad4,
  putU16,
  u16,
  u32,
  type SeqNumbers,
} from '../../../shared/iscsi/pdu.ts';
import { crc32c, readDigest } from '../../../shared/iscsi/digest.ts';
import type { SessionParams } from '../../../shared/iscsi/session-params.ts';
import { ScsiStatus, type ScsiCommand } from '../../../shared/scsi/command.ts';
import { Opcode as ScsiOp } from '../../../shared/scsi/opcodes.ts';
import { cdbLengthOf } from '../../../shared/scsi/cdb.ts';
import { buildReportLuns } from '../../../shared/scsi/report-luns.ts';
import { executeWithoutLun } from '../../../shared/scsi/no-lun.ts';
import { LoginPhase } from './login/login-phase.ts';
import { type LoginContext, type LoginRequest, type LoginResponse, type LoginTargetInfo } from './login/types.ts';
import { authThrottleKey } from './login/auth-throttle.ts';
import { handleTextRequest } from './login/discovery.ts';
import { INLINE_MAX, PduWriter } from './pdu-writer.ts';
import { IscsiSession, snLess } from './session.ts';
import { TaskState, type Task, type TaskOwner } from '../task.ts';
import type { SessionWorkerContext } from '../context.ts';
import type { Logger } from '../../../shared/logging.ts';
import { formatTargetAddress, loginAccess, sessionRoute, type TargetRoute } from '../routes.ts';

const Rx = { BHS: 0, AHS: 1, DATA: 2, PAD: 3, DDIGEST: 4 } as const;
/** What the current PDU's data segment is for, decided in onHeader. */
const Act = { CONTROL: 0, SCSI: 1, DATA_OUT: 2, DISCARD: 3 } as const;
const Phase = { LOGIN: 0, FULL_FEATURE: 1, LOGOUT: 2, CLOSED: 3 } as const;

/** Data segment limit during login: the RFC 7143 13.12 default MaxRecvDataSegmentLength. */
const LOGIN_MAX_DSL = 8192;
const EMPTY = Buffer.alloc(0);

/** Sense-less completion as a reusable ScsiCommand for commands answered on this worker. */
class LocalCommand implements ScsiCommand {
  readonly cdb = Buffer.alloc(32);
  cdbLength = 0;
  data: Buffer = EMPTY;
  expectedLength = 0;
  dataOutLength = 0;
  dataInLength = 0;
  dataOutWanted = 0;
  status = 0;
  readonly sense = Buffer.alloc(252);
  senseLength = 0;
  lun = 0;
  nexus = 0;
  attribute = 0;
  onIo = null;
  readonly ioTrampoline = (): void => {};
  finish(): void {}
}

/** A task management function waiting for its victims (and LU acknowledgements). */
class PendingTmf {
  readonly itt: number;
  readonly fn: number;
  waiting = 0;
  /** Drop the connection once answered (TARGET COLD RESET, RFC 7143 11.5.1). */
  readonly thenClose: boolean;
  private readonly conn: IscsiConnection;

  constructor(conn: IscsiConnection, itt: number, fn: number, thenClose: boolean) {
    this.conn = conn;
    this.itt = itt;
    this.fn = fn;
    this.thenClose = thenClose;
  }

  /** One victim ended or one LUN worker acknowledged; answer when all have. */
  settle(): void {
    if (--this.waiting === 0) this.conn.answerTmf(this, TmfResponse.FUNCTION_COMPLETE);
  }
}

export class IscsiConnection implements TaskOwner {
  private readonly ctx: SessionWorkerContext;
  private readonly socket: Socket;
  private log: Logger;
  readonly portalIndex: number;
  readonly peer: string;
  private readonly writer: PduWriter;
  private phase: number = Phase.LOGIN;
  private login: LoginPhase | null;
  private loginTimer: NodeJS.Timeout | null = null;
  session: IscsiSession | null = null;
  private sessionKey = '';
  /** Index of the target whose session count this connection holds (-1: none). */
  private sessionTargetIndex = -1;
  private statSN = 0;
  private maxDsl = LOGIN_MAX_DSL;

  // ---- receive state ----
  private rxState: number = Rx.BHS;
  private readonly hdr = Buffer.alloc(BHS_LENGTH + 255 * 4 + 4);
  private hdrHave = 0;
  private hdrNeed = BHS_LENGTH;
  private headerDigest = false;
  private dataDigest = false;
  private dsl = 0;
  private dataHave = 0;
  private padNeed = 0;
  private dataCrc = 0;
  private readonly ddBuf = Buffer.alloc(4);
  private ddHave = 0;
  private act: number = Act.CONTROL;
  private dst: Buffer = EMPTY;
  private dstOff = 0;
  private curTask: Task | null = null;
  /** Control data buffer (login, text, NOP-Out data); sized to the largest allowed DSL. */
  private ctrl: Buffer = Buffer.alloc(LOGIN_MAX_DSL);
  /** Reject reason decided in onHeader, sent in onPdu (0 = none). */
  private rejectReason = 0;

  // ---- full feature phase ----
  /** Tasks of this connection by ITT. */
  private readonly tasks = new Map<number, Task>();
  private readonly local = new LocalCommand();
  /** Tasks with all data, waiting for a lower CmdSN (gap) to arrive. */
  private held: Task[] = [];
  private nopTimer: NodeJS.Timeout | null = null;
  private nopDeadline: NodeJS.Timeout | null = null;
  private nopOutstanding = false;
  private nopTtt = 1;
  private readonly seq: SeqNumbers = { statSN: 0, expCmdSN: 0, maxCmdSN: 0 };
  private textPending: Buffer | null = null;
  /** A long Text Response being sent in parts (C bit), and the tags naming it. */
  private textOut: { itt: number; ttt: number; data: Buffer; offset: number } | null = null;
  private textTtt = 0;
  private onClosed: ((c: IscsiConnection) => void) | null;

  constructor(
    ctx: SessionWorkerContext,
    socket: Socket,
    portalIndex: number,
    onClosed: (c: IscsiConnection) => void,
  ) {
    this.ctx = ctx;
    this.socket = socket;
    this.portalIndex = portalIndex;
    this.onClosed = onClosed;
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = ctx.log.child({ peer: this.peer });
    this.writer = new PduWriter(socket);
    this.writer.onBackpressure = (on) => {
      // The initiator is not reading our responses: stop reading its commands until
      // the socket drains, so memory stays bounded (each response waits in the socket).
      if (on) {
        socket.pause();
        socket.once('drain', () => {
          if (this.phase !== Phase.CLOSED) socket.resume();
        });
      }
    };
    this.login = new LoginPhase(this.loginContext());
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'socket error'));
    socket.on('close', () => this.teardown('socket closed'));
    this.loginTimer = setTimeout(() => {
      this.log.warn({ timeoutSec: ctx.tuning.loginTimeoutSec }, 'login phase timed out');
      this.close('login timeout');
    }, ctx.tuning.loginTimeoutSec * 1000);
    this.loginTimer.unref();
    socket.resume();
  }

  private loginContext(): LoginContext {
    const portal = this.ctx.portals[this.portalIndex];
    const targets: LoginTargetInfo[] = [];
    for (const t of this.ctx.targets.values()) {
      if (!t.portals.includes(this.portalIndex)) continue;
      targets.push({
        iqn: t.iqn,
        alias: t.alias,
        portalGroupTag: portal.tag,
        addresses: t.portals.map((i) => formatTargetAddress(this.ctx.portals[i])),
        auth: t.auth,
        ...loginAccess(t),
      });
    }
    return {
      targets,
      portalGroupTag: portal.tag,
      discoveryAuth: this.ctx.discoveryAuth,
      tuning: this.ctx.tuning,
      allocTsih: () => this.ctx.allocTsih(),
      hasSession: (tsih, isid) => this.ctx.hasSession(tsih, isid),
      peer: this.peer,
      log: this.log,
    };
  }

  // =========================================================================
  // Receive state machine

  private onData(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len && this.phase !== Phase.CLOSED) {
      switch (this.rxState) {
        case Rx.BHS:
        case Rx.AHS: {
          const n = Math.min(this.hdrNeed - this.hdrHave, len - pos);
          chunk.copy(this.hdr, this.hdrHave, pos, pos + n);
          this.hdrHave += n;
          pos += n;
          if (this.hdrHave < this.hdrNeed) break;
          if (this.rxState === Rx.BHS) {
            const extra = ahsLength(this.hdr, 0) + (this.headerDigest ? 4 : 0);
            if (extra > 0) {
              this.rxState = Rx.AHS;
              this.hdrNeed = BHS_LENGTH + extra;
              break;
            }
          }
          this.headerComplete();
          break;
        }
        case Rx.DATA: {
          const n = Math.min(this.dsl - this.dataHave, len - pos);
          if (this.dataDigest) this.dataCrc = crc32c(chunk, pos, pos + n, this.dataCrc);
          if (this.act !== Act.DISCARD) chunk.copy(this.dst, this.dstOff + this.dataHave, pos, pos + n);
          this.dataHave += n;
          pos += n;
          if (this.dataHave === this.dsl) this.afterData();
          break;
        }
        case Rx.PAD: {
          const n = Math.min(this.padNeed, len - pos);
          if (this.dataDigest) this.dataCrc = crc32c(chunk, pos, pos + n, this.dataCrc);
          this.padNeed -= n;
          pos += n;
          if (this.padNeed === 0) this.afterPad();
          break;
        }
        case Rx.DDIGEST: {
          const n = Math.min(4 - this.ddHave, len - pos);
          chunk.copy(this.ddBuf, this.ddHave, pos, pos + n);
          this.ddHave += n;
          pos += n;
          if (this.ddHave === 4) this.pduComplete(readDigest(this.ddBuf, 0) === this.dataCrc);
          break;
        }
      }
    }
    this.ctx.flushDoorbells();
    this.ctx.pollCompletions();
  }

  private headerComplete(): void {
    const h = this.hdr;
    const ahs = ahsLength(h, 0);
    if (this.headerDigest) {
      const got = readDigest(h, BHS_LENGTH + ahs);
      if (got !== crc32c(h, 0, BHS_LENGTH + ahs)) {
        // RFC 7143 7.8: with a bad header digest the PDU boundaries cannot be trusted;
        // at ErrorRecoveryLevel 0 the connection is dropped.
        this.log.warn({}, 'header digest error: dropping connection');
        this.close('header digest error');
        return;
      }
    }
    this.dsl = dataSegmentLength(h, 0);
    this.dataHave = 0;
    this.dataCrc = 0;
    this.rejectReason = 0;
    this.curTask = null;
    if (this.dsl > this.maxDsl) {
      // RFC 7143 11.2.1.5 / 13.12: a data segment longer than our MaxRecvDataSegmentLength
      // is a protocol error; the stream cannot be trusted to resynchronise, so reject and close.
      this.log.warn({ dsl: this.dsl, max: this.maxDsl }, 'data segment longer than MaxRecvDataSegmentLength');
      this.sendReject(RejectReason.PROTOCOL_ERROR, h);
      this.close('oversized data segment');
      return;
    }
    this.act = Act.CONTROL;
    this.dst = this.ctrl;
    this.dstOff = 0;
    if (this.phase === Phase.FULL_FEATURE) this.onHeader();
    if (this.phase === Phase.CLOSED) return;
    if (this.dsl > 0) {
      this.rxState = Rx.DATA;
    } else {
      this.pduComplete(true);
    }
  }

  private afterData(): void {
    this.padNeed = pad4(this.dsl);
    if (this.padNeed > 0) this.rxState = Rx.PAD;
    else this.afterPad();
  }

  private afterPad(): void {
    if (this.dataDigest) {
      this.ddHave = 0;
      this.rxState = Rx.DDIGEST;
    } else {
      this.pduComplete(true);
    }
  }

  private pduComplete(dataDigestOk: boolean): void {
    this.rxState = Rx.BHS;
    this.hdrHave = 0;
    this.hdrNeed = BHS_LENGTH;
    if (!dataDigestOk) {
      this.onDataDigestError();
      return;
    }
    if (this.phase === Phase.LOGIN) this.onLoginPdu();
    else if (this.phase === Phase.FULL_FEATURE) this.onPdu();
    // LOGOUT phase: the initiator should send nothing more; ignore it.
  }

  private onDataDigestError(): void {
    // RFC 7143 7.8 / 11.17.1: a PDU with a data digest error is discarded and rejected
    // with reason "Data (payload) Digest Error". A Data-Out or a command with immediate
    // data loses bytes we cannot re-request at ErrorRecoveryLevel 0, so the task is
    // failed by dropping the connection (session recovery, RFC 7143 7.1.5).
    this.log.warn({ opcode: opcodeOf(this.hdr, 0) }, 'data digest error');
    this.sendReject(RejectReason.DATA_DIGEST_ERROR, this.hdr);
    if (this.act === Act.SCSI || this.act === Act.DATA_OUT) this.close('data digest error on SCSI data');
  }

  // =========================================================================
  // Login phase

  private onLoginPdu(): void {
    const h = this.hdr;
    if (opcodeOf(h, 0) !== Opcode.LOGIN_REQUEST || this.login === null) {
      // RFC 7143 6.3: only Login Requests are allowed before the full feature phase.
      this.log.warn({ opcode: opcodeOf(h, 0) }, 'non-login PDU during login');
      this.sendLoginFailure(h, 0x02, 0x0b);
      return;
    }
    const req: LoginRequest = {
      transit: (h[1] & 0x80) !== 0,
      cont: (h[1] & 0x40) !== 0,
      csg: (h[1] >> 2) & 3,
      nsg: h[1] & 3,
      versionMax: h[2],
      versionMin: h[3],
      isid: Buffer.from(h.subarray(8, 14)),
      tsih: u16(h, 14),
      itt: u32(h, 16),
      cid: u16(h, 20),
      cmdSN: u32(h, 24),
      expStatSN: u32(h, 28),
      data: Buffer.from(this.ctrl.subarray(0, this.dsl)),
    };
    let result;
    try {
      result = this.login.step(req);
    } catch (err) {
      this.log.error({ err }, 'login logic failed');
      this.sendLoginFailure(h, 0x03, 0x00);
      return;
    }
    const r = result.response;
    let failed = result.failed;
    if (result.complete && result.params && result.params.SessionType === 'Normal') {
      // Node-wide cap on sessions per target (iscsi.maxSessionsPerTarget): over it the
      // login fails with "out of resources" (RFC 7143 11.13.5, class 3 detail 2).
      const ti = this.ctx.targetIndex.get(result.params.TargetName);
      if (ti !== undefined && !this.ctx.reserveSession(ti)) {
        this.log.warn({ target: result.params.TargetName, max: this.ctx.tuning.maxSessionsPerTarget }, 'session limit reached: login refused');
        failed = true;
        r.statusClass = 0x03;
        r.statusDetail = 0x02;
        r.transit = false;
        r.tsih = 0;
        r.data = EMPTY;
      } else if (ti !== undefined) {
        this.sessionTargetIndex = ti;
      }
    }
    // Failed authentications are answered late, with exponential backoff per initiator
    // and address, so secrets cannot be guessed at wire speed (issue: brute force).
    const key = authThrottleKey(this.login.initiatorName, this.socket.remoteAddress ?? '');
    if (failed && r.statusClass === 0x02 && r.statusDetail === 0x01) {
      // Hold the failure response for the node-wide backoff; read nothing meanwhile.
      this.socket.pause();
      if (this.loginTimer) clearTimeout(this.loginTimer);
      this.loginTimer = null;
      const initiator = this.login.initiatorName;
      void this.ctx.authFailure(key).then(({ delayMs, failures }) => {
        this.log.warn({ initiator, address: this.socket.remoteAddress, failures, delayMs }, 'authentication failed');
        if (this.phase === Phase.CLOSED) return;
        const send = () => {
          if (this.phase !== Phase.CLOSED) this.sendLoginResponse(req, r, true, false);
        };
        if (delayMs <= 0) return send();
        this.loginTimer = setTimeout(send, delayMs);
        this.loginTimer.unref();
      });
      return;
    } else if (result.complete) {
      this.ctx.authSuccess(key);
    }
    this.sendLoginResponse(req, r, failed, result.complete);
    if (!failed && result.complete && result.params) this.enterFullFeature(req, r.tsih, result.params);
  }

  private sendLoginResponse(req: LoginRequest, r: LoginResponse, failed: boolean, _complete: boolean): void {
    if (this.statSN === 0) this.statSN = (Math.random() * 0x7fffffff) >>> 0 || 1;
    const w = this.writer;
    const data = r.data;
    this.seq.statSN = this.statSN;
    this.seq.expCmdSN = req.cmdSN;
    this.seq.maxCmdSN = (req.cmdSN + this.ctx.cmdWindow - 1) >>> 0;
    this.statSN = (this.statSN + 1) >>> 0;
    w.begin();
    buildLoginResponse(
      w.buf,
      w.off,
      r.transit,
      r.cont,
      r.csg,
      r.nsg,
      0x00,
      0x00,
      req.isid,
      r.tsih,
      req.itt,
      r.statusClass,
      r.statusDetail,
      data.length,
      this.seq,
    );
    this.sendControlData(data);
    if (failed) {
      this.log.info({ statusClass: r.statusClass, statusDetail: r.statusDetail }, 'login failed');
      this.closeAfterFlush();
    }
  }

  private sendLoginFailure(h: Buffer, cls: number, detail: number): void {
    const w = this.writer;
    this.seq.statSN = this.statSN;
    this.seq.expCmdSN = u32(h, 24);
    this.seq.maxCmdSN = this.seq.expCmdSN;
    w.begin();
    buildLoginResponse(w.buf, w.off, false, false, 0, 0, 0, 0, h.subarray(8, 14), 0, u32(h, 16), cls, detail, 0, this.seq);
    w.sendInline(0);
    this.closeAfterFlush();
  }

  private enterFullFeature(req: LoginRequest, tsih: number, params: SessionParams): void {
    let target: TargetRoute | null = null;
    if (params.SessionType === 'Normal') {
      const configured = this.ctx.targets.get(params.TargetName);
      // LUN masking: the session routes by this initiator's own LUN map (routes.ts).
      target = configured === undefined ? null : sessionRoute(configured, params.InitiatorName);
      if (target === null) {
        this.close('login completed for an unknown or refused target');
        return;
      }
    }
    let nexus = 0;
    if (target !== null) {
      const portal = this.ctx.portals[this.portalIndex];
      const id = this.ctx.registerNexus({
        initiatorName: params.InitiatorName,
        isid: req.isid,
        targetName: target.iqn,
        // Each portal is one target port and its own target port group for now.
        relativeTargetPortId: portal.tag,
        targetPortGroup: portal.tag,
      });
      if (id === undefined) {
        this.log.error({}, 'nexus table full: refusing the session');
        this.close('nexus table full');
        return;
      }
      nexus = id;
    }
    if (req.tsih !== 0) {
      // Connection reinstatement (RFC 7143 6.3.4): the session continues on this
      // connection; the old one is closed and, at ErrorRecoveryLevel 0, its tasks are
      // terminated (no task reassignment).
      this.ctx.closeSession(req.tsih, req.isid, this, 'connection reinstatement');
    }
    this.session = new IscsiSession(tsih, req.isid, nexus, params, target, req.cmdSN, this.ctx.cmdWindow);
    // RFC 7143 6.3.5: a leading login whose InitiatorName, ISID, TargetName and portal
    // group match a live session replaces it (the initiator lost that session, e.g. a
    // network cut); the old session's tasks are terminated with it.
    this.sessionKey = [
      params.InitiatorName,
      req.isid.toString('hex'),
      params.TargetName,
      this.ctx.portals[this.portalIndex].tag,
    ].join('\0');
    this.ctx.sessionUp(this.sessionKey, this);
    this.phase = Phase.FULL_FEATURE;
    this.login = null;
    if (this.loginTimer) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    // RFC 7143 13.1 / 13.12: digests and the negotiated data segment limits apply from
    // the first PDU after the final Login Response.
    this.headerDigest = params.HeaderDigest === 'CRC32C';
    this.dataDigest = params.DataDigest === 'CRC32C';
    this.writer.configure(this.headerDigest, this.dataDigest);
    this.maxDsl = params.TargetMaxRecvDataSegmentLength;
    if (this.ctrl.length < this.maxDsl) this.ctrl = Buffer.alloc(this.maxDsl);
    this.log = this.log.child({
      initiator: params.InitiatorName,
      target: params.TargetName || undefined,
      tsih,
      type: params.SessionType,
    });
    this.log.info(
      {
        MaxRecvDataSegmentLength: params.InitiatorMaxRecvDataSegmentLength,
        MaxBurstLength: params.MaxBurstLength,
        FirstBurstLength: params.FirstBurstLength,
        InitialR2T: params.InitialR2T,
        ImmediateData: params.ImmediateData,
        HeaderDigest: params.HeaderDigest,
        DataDigest: params.DataDigest,
      },
      'session logged in',
    );
    this.startNopTimer();
  }

  // =========================================================================
  // Full feature phase: header stage

  private onHeader(): void {
    const h = this.hdr;
    const op = opcodeOf(h, 0);
    if (op === Opcode.SCSI_COMMAND) this.onScsiCommandHeader();
    else if (op === Opcode.DATA_OUT) this.onDataOutHeader();
  }

  private onScsiCommandHeader(): void {
    const h = this.hdr;
    const s = this.session!;
    const imm = isImmediate(h, 0);
    const cmdSN = u32(h, Field.CMD_SN);
    this.act = Act.DISCARD;
    if (s.params.SessionType !== 'Normal') {
      this.rejectReason = RejectReason.PROTOCOL_ERROR; // SCSI commands are not allowed in discovery sessions
      return;
    }
    if (!imm && (!s.inWindow(cmdSN) || s.ahead.has(cmdSN))) {
      // RFC 7143 3.2.2.1: non-immediate commands outside the window (or repeating a
      // CmdSN already received) are silently ignored.
      this.log.debug({ cmdSN, expCmdSN: s.expCmdSN, maxCmdSN: s.maxCmdSN }, 'CmdSN outside window: dropped');
      return;
    }
    if (this.ctx.draining) {
      // Shutting down: commands already here finish, new ones are not started. The
      // initiator re-issues them after the connection closes (on another path).
      return;
    }
    const ittValue = u32(h, Field.ITT);
    if (this.tasks.has(ittValue)) {
      this.rejectReason = RejectReason.TASK_IN_PROGRESS;
      return;
    }
    const flags = h[1];
    const edtl = u32(h, Field.EDTL);
    const write = (flags & ScsiCmdFlags.WRITE) !== 0;
    const read = (flags & ScsiCmdFlags.READ) !== 0;
    if (this.dsl > 0 && (!write || !s.params.ImmediateData || this.dsl > s.params.FirstBurstLength || this.dsl > edtl)) {
      // RFC 7143 10.6/13.x: immediate data needs ImmediateData=Yes, the W bit, and may
      // not exceed FirstBurstLength or the expected transfer length.
      this.rejectReason = RejectReason.PROTOCOL_ERROR;
      return;
    }
    if ((read && write) || (!read && !write && edtl !== 0)) {
      // Bidirectional commands are not supported; EDTL without a direction is invalid.
      this.rejectReason = RejectReason.INVALID_PDU_FIELD;
      return;
    }
    const t = this.ctx.pool.acquire();
    if (t === null) {
      this.rejectReason = RejectReason.COMMAND_NOT_SUPPORTED;
      return;
    }
    t.owner = this;
    t.itt = ittValue;
    t.cmdSN = cmdSN;
    t.immediate = imm;
    t.read = read;
    t.write = write;
    t.edtl = edtl;
    t.attribute = flags & ScsiCmdFlags.ATTR_MASK;
    for (let i = 0; i < 8; i++) t.lunField[i] = h[Field.LUN + i];
    t.lun = decodeLun(h, Field.LUN);
    h.copy(t.cdb, 0, Field.CDB, Field.CDB + 16);
    t.cdb.fill(0, 16);
    // Groups without a defined length (reserved, vendor specific) keep the 16 bytes
    // the BHS carries (SPC-4 4.2.5.1).
    t.cdbLength = cdbLengthOf(h[Field.CDB]) || 16;
    this.tasks.set(ittValue, t);
    if (!imm) {
      s.arrived(cmdSN);
      s.outstanding++;
    }
    const len = Math.min(edtl, this.ctx.tuning.maxTransferLength);
    if (edtl > this.ctx.tuning.maxTransferLength || !this.ctx.pool.attachBuffer(t, len)) {
      // Larger than one command may move, or no slab space now: the task completes
      // without reaching the LU (TASK SET FULL asks the initiator to retry later; an
      // oversized transfer fails with the status SBC gives for it).
      t.status = edtl > this.ctx.tuning.maxTransferLength ? ScsiStatus.CHECK_CONDITION : ScsiStatus.TASK_SET_FULL;
      if (t.status === ScsiStatus.CHECK_CONDITION) t.senseLength = this.ctx.writeSense(t.sense, 'INVALID_FIELD_IN_CDB');
      t.state = TaskState.RESPONDING;
      return; // data (if any) is discarded; the response goes out in onPdu
    }
    this.curTask = t;
    if (this.dsl > 0) {
      this.act = Act.SCSI;
      this.dst = t.data;
      this.dstOff = 0;
    } else {
      this.act = Act.SCSI;
    }
  }

  private onDataOutHeader(): void {
    const h = this.hdr;
    this.act = Act.DISCARD;
    const ittValue = u32(h, Field.ITT);
    const ttt = u32(h, Field.TTT);
    const t = this.tasks.get(ittValue);
    const offset = u32(h, Field.BUFFER_OFFSET);
    if (t === undefined || t.state !== TaskState.RECEIVING || !t.write) {
      // RFC 7143 11.7 / 7.x: Data-Out for an unknown or finished task is discarded (it
      // may race an abort); the initiator learns nothing wrong happened.
      this.log.debug({ itt: ittValue }, 'Data-Out for no receiving task: discarded');
      return;
    }
    if (ttt !== RESERVED_TAG && ttt !== t.ttt) {
      // RFC 7143 11.7.4: a solicited Data-Out echoes the R2T's Target Transfer Tag.
      this.rejectReason = RejectReason.INVALID_PDU_FIELD;
      return;
    }
    // We negotiate DataPDUInOrder=Yes and DataSequenceInOrder=Yes, so a write's data
    // arrives at continuously increasing offsets with no gaps or overlays (RFC 7143
    // 13.18, 13.19): every Data-Out must start exactly where the data so far ends, and
    // stay inside what was offered (unsolicited burst) or solicited (R2Ts). Anything
    // else would let a write complete with bytes the initiator never sent (leftover
    // slab memory), so at ErrorRecoveryLevel 0 the connection is dropped (7.1.5).
    const end = offset + this.dsl;
    const limit = ttt === RESERVED_TAG ? (t.unsolicitedOpen ? t.unsolicitedLimit : 0) : t.nextR2TOffset;
    if (offset !== t.received || end > limit) {
      this.log.warn(
        { itt: ittValue, offset, length: this.dsl, expectedOffset: t.received, limit },
        'Data-Out outside the expected sequence: dropping connection',
      );
      this.sendReject(RejectReason.PROTOCOL_ERROR, h);
      this.close('Data-Out sequence error');
      return;
    }
    const dataSN = u32(h, Field.DATA_SN);
    if (dataSN !== t.expectedDataSN) {
      // RFC 7143 11.7.5: DataSN counts the Data-Out PDUs of each sequence from 0. A gap
      // or repeat means lost or reordered data; ErrorRecoveryLevel 0 has no way to
      // re-request it (no recovery R2T), so the connection is dropped (7.1.5, 7.4).
      this.log.warn({ itt: ittValue, dataSN, expected: t.expectedDataSN }, 'Data-Out DataSN out of sequence');
      this.close('DataSN error');
      return;
    }
    this.curTask = t;
    this.act = Act.DATA_OUT;
    this.dst = t.data;
    this.dstOff = offset;
  }

  // =========================================================================
  // Full feature phase: PDU complete

  private onPdu(): void {
    const h = this.hdr;
    if (this.rejectReason !== 0) {
      this.sendReject(this.rejectReason, h);
      return;
    }
    switch (opcodeOf(h, 0)) {
      case Opcode.SCSI_COMMAND:
        this.onScsiCommand();
        break;
      case Opcode.DATA_OUT:
        this.onDataOut();
        break;
      case Opcode.NOP_OUT:
        this.onNopOut();
        break;
      case Opcode.TEXT_REQUEST:
        this.onTextRequest();
        break;
      case Opcode.LOGOUT_REQUEST:
        this.onLogout();
        break;
      case Opcode.TASK_MGMT_REQUEST:
        this.onTaskManagement();
        break;
      case Opcode.SNACK_REQUEST:
        // RFC 7143 11.16: SNACK needs ErrorRecoveryLevel > 0; at ERL 0 it is rejected.
        this.sendReject(RejectReason.PROTOCOL_ERROR, h);
        break;
      case Opcode.LOGIN_REQUEST:
        // RFC 7143 6.3: a Login Request in full feature phase is a protocol error.
        this.sendReject(RejectReason.PROTOCOL_ERROR, h);
        break;
      default:
        this.sendReject(RejectReason.COMMAND_NOT_SUPPORTED, h);
    }
  }

  private onScsiCommand(): void {
    const t = this.curTask;
    if (t === null) {
      // Dropped (outside the window) or failed in onHeader with a response ready.
      const late = this.tasks.get(u32(this.hdr, Field.ITT));
      if (late && late.state === TaskState.RESPONDING && late.owner === this) this.sendResponse(late);
      return;
    }
    t.received = this.dsl;
    if (!t.write || t.received >= t.data.length) {
      this.dataComplete(t);
    } else {
      this.beginDataOut(t);
    }
    this.releaseHeld();
  }

  private beginDataOut(t: Task): void {
    const s = this.session!;
    // RFC 7143 10.6 / 13.11: unsolicited data may follow when InitialR2T=No and the
    // command PDU did not set F; it is bounded by FirstBurstLength. R2Ts start once
    // that burst has ended, from wherever it ended.
    if (!s.params.InitialR2T && !finalBit(this.hdr, 0)) {
      t.unsolicitedLimit = Math.min(s.params.FirstBurstLength, t.data.length);
      t.unsolicitedOpen = t.received < t.unsolicitedLimit;
    } else {
      t.unsolicitedLimit = t.received;
    }
    if (t.unsolicitedOpen) return;
    this.startR2Ts(t);
  }

  private startR2Ts(t: Task): void {
    t.nextR2TOffset = t.received;
    t.r2tBase = t.received;
    this.sendR2Ts(t);
  }

  private onDataOut(): void {
    const t = this.curTask;
    if (t === null) return;
    t.received += this.dsl;
    t.expectedDataSN++;
    const solicited = u32(this.hdr, Field.TTT) !== RESERVED_TAG;
    if (finalBit(this.hdr, 0)) {
      // F ends the sequence (an R2T's burst or the unsolicited burst); the next one
      // numbers its Data-Outs from 0 again (RFC 7143 11.7.5).
      t.expectedDataSN = 0;
      if (solicited) {
        // A solicited burst ends exactly at its R2T's end (bursts are MaxBurstLength
        // long from r2tBase, the last one shorter): F anywhere else is a protocol error.
        const mbl = this.session!.params.MaxBurstLength;
        if ((t.received - t.r2tBase) % mbl !== 0 && t.received !== t.data.length) {
          this.log.warn({ itt: t.itt, received: t.received }, 'F bit before the end of an R2T burst');
          this.sendReject(RejectReason.PROTOCOL_ERROR, this.hdr);
          this.close('short R2T burst');
          return;
        }
        if (t.outstandingR2T > 0) t.outstandingR2T--;
      } else if (t.unsolicitedOpen) {
        t.unsolicitedOpen = false;
        if (t.received < t.data.length) {
          this.startR2Ts(t);
          return;
        }
      }
    } else if (!solicited && t.received === t.unsolicitedLimit) {
      t.unsolicitedOpen = false; // a full burst without F: tolerate, and solicit the rest
      if (t.received < t.data.length) {
        this.startR2Ts(t);
        return;
      }
    }
    if (t.received >= t.data.length) {
      this.dataComplete(t);
      return;
    }
    this.sendR2Ts(t);
  }

  /** Solicit the rest of a write (RFC 7143 10.8): bursts of MaxBurstLength, MaxOutstandingR2T at a time. */
  private sendR2Ts(t: Task): void {
    const p = this.session!.params;
    while (t.outstandingR2T < p.MaxOutstandingR2T && t.nextR2TOffset < t.data.length) {
      const len = Math.min(p.MaxBurstLength, t.data.length - t.nextR2TOffset);
      this.fillSeq(false);
      const w = this.writer;
      w.begin();
      buildR2T(w.buf, w.off, t.lunField, 0, t.itt, t.ttt, t.r2tSN, t.nextR2TOffset, len, this.seq);
      w.sendInline(0);
      t.r2tSN++;
      t.nextR2TOffset += len;
      t.outstandingR2T++;
    }
  }

  /**
   * A task has all its data. Commands are delivered to the SCSI layer in CmdSN order
   * (RFC 7143 3.2.2.1): one that arrived ahead of a CmdSN gap waits until the gap fills.
   */
  private dataComplete(t: Task): void {
    if (t.immediate || this.session!.deliverable(t.cmdSN)) {
      this.dispatch(t);
      return;
    }
    t.held = true;
    this.held.push(t);
  }

  /** ExpCmdSN may have moved: deliver held tasks that are now in order. */
  private releaseHeld(): void {
    if (this.held.length === 0) return;
    const s = this.session!;
    const ready = this.held.filter((t) => s.deliverable(t.cmdSN));
    if (ready.length === 0) return;
    this.held = this.held.filter((t) => !s.deliverable(t.cmdSN));
    ready.sort((a, b) => (snLess(a.cmdSN, b.cmdSN) ? -1 : 1));
    for (const t of ready) {
      t.held = false;
      if (!t.aborted) this.dispatch(t);
    }
  }

  /** Route a task whose data is complete: to its LUN worker, or answer it here. */
  private dispatch(t: Task): void {
    const target = this.session!.target!;
    const route = t.lun >= 0 ? target.luns.get(t.lun) : undefined;
    const op = t.cdb[0];
    if (op === ScsiOp.REPORT_LUNS || route === undefined) {
      // REPORT LUNS depends on the I_T nexus's LUN inventory, not on one LU, and a
      // command to a LUN that does not exist never reaches a LUN worker (SPC-4 6.33,
      // SAM-5 5.10): both are answered on this worker, no hop.
      const c = this.local;
      c.cdb.set(t.cdb);
      c.cdbLength = t.cdbLength;
      c.data = t.data;
      c.expectedLength = t.data.length;
      c.dataOutLength = t.write ? t.received : 0;
      c.dataInLength = 0;
      c.dataOutWanted = 0;
      c.status = ScsiStatus.GOOD;
      c.senseLength = 0;
      c.lun = t.lun;
      c.nexus = this.session!.nexus;
      c.attribute = t.attribute;
      if (op === ScsiOp.REPORT_LUNS) buildReportLuns(c, target.lunList);
      else executeWithoutLun(c);
      t.status = c.status;
      t.senseLength = Math.min(c.senseLength, t.sense.length);
      if (t.senseLength > 0) c.sense.copy(t.sense, 0, 0, t.senseLength);
      t.dataInLength = c.dataInLength;
      t.dataOutWanted = c.dataOutWanted;
      t.state = TaskState.RESPONDING;
      this.sendResponse(t);
      return;
    }
    t.lunWorker = route.lunWorker;
    t.luIndex = route.luIndex;
    this.ctx.channels[route.lunWorker].submit(t, this.session!.nexus);
  }

  /** TaskOwner: the LUN worker finished the task. */
  onTaskComplete(t: Task): void {
    if (t.aborted || this.phase === Phase.CLOSED) {
      this.finishTask(t, false);
      this.ctx.pool.release(t);
      return;
    }
    this.sendResponse(t);
    this.ctx.flushDoorbells();
  }

  /** Send Data-In and/or SCSI Response for a finished task (RFC 7143 11.4, 11.7). */
  private sendResponse(t: Task): void {
    const w = this.writer;
    const s = this.session!;
    const edtl = t.edtl;
    let residualFlag = 0;
    let residual = 0;
    let xfer = 0;
    if (t.read) {
      xfer = Math.min(t.dataInLength, t.data.length);
      if (t.dataInLength > edtl) {
        residualFlag = ResidualFlag.OVERFLOW;
        residual = t.dataInLength - edtl;
      } else if (xfer < edtl) {
        residualFlag = ResidualFlag.UNDERFLOW;
        residual = edtl - xfer;
      }
    } else if (t.write && t.dataOutWanted > 0) {
      if (t.dataOutWanted > edtl) {
        residualFlag = ResidualFlag.OVERFLOW;
        residual = t.dataOutWanted - edtl;
      } else if (t.dataOutWanted < edtl) {
        residualFlag = ResidualFlag.UNDERFLOW;
        residual = edtl - t.dataOutWanted;
      }
    } else if (!t.read && !t.write && edtl > 0) {
      residualFlag = ResidualFlag.UNDERFLOW;
      residual = edtl;
    }
    this.finishTask(t, true);
    const good = t.senseLength === 0 && (t.status === ScsiStatus.GOOD || t.status === ScsiStatus.CONDITION_MET);
    if (xfer > 0) {
      // Data-In PDUs of at most the initiator's MaxRecvDataSegmentLength; F closes each
      // MaxBurstLength sequence (RFC 7143 11.7.1). Status rides in the last Data-In
      // when there is no sense data (11.7.4, "phase collapse").
      const mrdsl = s.params.InitiatorMaxRecvDataSegmentLength;
      const burst = s.params.MaxBurstLength;
      let offset = 0;
      let dataSN = 0;
      let inBurst = 0;
      while (offset < xfer) {
        const n = Math.min(mrdsl, xfer - offset, burst - inBurst);
        const last = offset + n === xfer;
        inBurst += n;
        const endOfBurst = last || inBurst === burst;
        if (endOfBurst) inBurst = 0;
        const withStatus = last && good;
        this.fillSeq(withStatus);
        w.begin();
        buildDataIn(w.buf, w.off, t.itt, endOfBurst, withStatus, t.status, residualFlag, residual, n, dataSN, offset, this.seq);
        w.sendWithData(t.data, offset, n, withStatus ? t : null);
        offset += n;
        dataSN++;
      }
      if (good) return;
      this.sendScsiResponse(t, residualFlag, residual, dataSN);
      return;
    }
    this.sendScsiResponse(t, residualFlag, residual, 0);
  }

  private sendScsiResponse(t: Task, residualFlag: number, residual: number, expDataSN: number): void {
    const w = this.writer;
    this.fillSeq(true);
    w.begin();
    const dsl = t.senseLength > 0 ? t.senseLength + 2 : 0;
    buildScsiResponse(w.buf, w.off, t.itt, t.status, residualFlag, residual, dsl, this.seq, expDataSN);
    if (dsl > 0) {
      // RFC 7143 11.4.7.2: the data segment is SenseLength (2 bytes) then the sense data.
      const at = w.inlineOffset;
      putU16(w.buf, at, t.senseLength);
      t.sense.copy(w.buf, at + 2, 0, t.senseLength);
    }
    w.sendInline(dsl, t);
  }

  /** The task leaves the connection's books: window accounting, ITT map, pending TMFs. */
  private finishTask(t: Task, answered: boolean): void {
    if (this.tasks.get(t.itt) === t) this.tasks.delete(t.itt);
    const s = this.session;
    if (s && !t.immediate) s.outstanding--;
    if (!answered) t.owner = null;
    const tmf = t.tmf;
    if (tmf !== null) {
      t.tmf = null;
      tmf.settle();
    }
  }

  // =========================================================================
  // Other full-feature PDUs

  private onNopOut(): void {
    const h = this.hdr;
    const s = this.session!;
    const ittValue = u32(h, Field.ITT);
    const ttt = u32(h, Field.TTT);
    if (!isImmediate(h, 0) && ittValue !== RESERVED_TAG) this.advanceCmdSN(u32(h, Field.CMD_SN));
    if (ittValue === RESERVED_TAG) {
      // RFC 7143 11.18: the reply to our NOP-In ping (TTT echoed); no response.
      if (ttt !== RESERVED_TAG && ttt === this.nopTtt) {
        this.nopOutstanding = false;
        if (this.nopDeadline) clearTimeout(this.nopDeadline);
        this.nopDeadline = null;
      }
      return;
    }
    // A ping from the initiator: echo its data in a NOP-In, at most the initiator's
    // MaxRecvDataSegmentLength of it (RFC 7143 11.18.5, 13.12).
    const n = Math.min(this.dsl, s.params.InitiatorMaxRecvDataSegmentLength);
    this.fillSeq(true);
    const w = this.writer;
    w.begin();
    buildNopIn(w.buf, w.off, h, Field.LUN, ittValue, RESERVED_TAG, n, this.seq);
    this.sendControlData(n > 0 ? this.ctrl.subarray(0, n) : EMPTY);
  }

  private onTextRequest(): void {
    const h = this.hdr;
    const s = this.session!;
    if (!isImmediate(h, 0)) this.advanceCmdSN(u32(h, Field.CMD_SN));
    const ittValue = u32(h, Field.ITT);
    const cont = (h[1] & 0x40) !== 0;
    const ttt = u32(h, Field.TTT);
    const out = this.textOut;
    if (ttt !== RESERVED_TAG && out !== null && out.itt === ittValue && out.ttt === ttt && this.dsl === 0) {
      // The initiator asks for the next part of a long answer (RFC 7143 11.10.4).
      this.sendTextPart(out);
      return;
    }
    // Any other request ends a pending long answer (RFC 7143 11.10.4: a new ITT or a
    // reserved TTT resets the exchange).
    this.textOut = null;
    // Accumulate a multi-PDU request (C bit, RFC 7143 11.10.2), bounded.
    const part = this.ctrl.subarray(0, this.dsl);
    this.textPending = this.textPending ? Buffer.concat([this.textPending, part]) : Buffer.from(part);
    if (this.textPending.length > 65536) {
      this.textPending = null;
      this.sendReject(RejectReason.PROTOCOL_ERROR, h);
      return;
    }
    if (cont) {
      this.fillSeq(true);
      const w = this.writer;
      w.begin();
      buildTextResponse(w.buf, w.off, false, false, ittValue, 0x1, 0, this.seq);
      w.sendInline(0);
      return;
    }
    const request = this.textPending;
    this.textPending = null;
    const targets = this.loginTargetsForText();
    const answer = handleTextRequest(request, {
      targets,
      sessionTarget: s.params.SessionType === 'Normal' ? s.params.TargetName : undefined,
      initiatorName: s.params.InitiatorName,
    });
    if (!answer.ok) {
      this.log.warn({ reason: answer.reason }, 'malformed Text Request');
      this.sendReject(RejectReason.PROTOCOL_ERROR, h);
      return;
    }
    // An answer longer than the initiator's MaxRecvDataSegmentLength goes out in parts
    // with the C bit and a Target Transfer Tag; the initiator asks for each next part
    // with an empty Text Request echoing that tag (RFC 7143 11.11.2, 11.11.4).
    this.textTtt = (this.textTtt + 1) & 0x7fffffff || 1;
    this.sendTextPart({ itt: ittValue, ttt: this.textTtt, data: answer.data, offset: 0 });
  }

  private sendTextPart(out: { itt: number; ttt: number; data: Buffer; offset: number }): void {
    const max = this.session!.params.InitiatorMaxRecvDataSegmentLength;
    const n = Math.min(max, out.data.length - out.offset);
    const last = out.offset + n >= out.data.length;
    const part = out.data.subarray(out.offset, out.offset + n);
    out.offset += n;
    this.textOut = last ? null : out;
    this.fillSeq(true);
    const w = this.writer;
    w.begin();
    buildTextResponse(w.buf, w.off, last, !last, out.itt, last ? RESERVED_TAG : out.ttt, n, this.seq);
    this.sendControlData(part);
  }

  private loginTargetsForText(): LoginTargetInfo[] {
    const out: LoginTargetInfo[] = [];
    const portal = this.ctx.portals[this.portalIndex];
    for (const t of this.ctx.targets.values()) {
      out.push({
        iqn: t.iqn,
        alias: t.alias,
        portalGroupTag: portal.tag,
        addresses: t.portals.map((i) => formatTargetAddress(this.ctx.portals[i])),
        auth: t.auth,
        ...loginAccess(t),
      });
    }
    return out;
  }

  private onLogout(): void {
    const h = this.hdr;
    const s = this.session!;
    if (!isImmediate(h, 0)) this.advanceCmdSN(u32(h, Field.CMD_SN));
    const reason = h[1] & 0x7f;
    const ittValue = u32(h, Field.ITT);
    let response: number = LogoutResponse.CLOSED;
    if (reason === LogoutReason.REMOVE_CONNECTION_FOR_RECOVERY) {
      response = LogoutResponse.RECOVERY_NOT_SUPPORTED; // needs ErrorRecoveryLevel 2
    } else if (reason === LogoutReason.CLOSE_CONNECTION && u16(h, Field.CID) !== 0 && false) {
      response = LogoutResponse.CID_NOT_FOUND;
    }
    this.fillSeq(true);
    const w = this.writer;
    w.begin();
    buildLogoutResponse(w.buf, w.off, ittValue, response, s.params.DefaultTime2Wait, s.params.DefaultTime2Retain, this.seq);
    w.sendInline(0);
    if (response === LogoutResponse.CLOSED) {
      this.phase = Phase.LOGOUT;
      this.log.info({ reason }, 'logout');
      this.closeAfterFlush();
    }
  }

  private onTaskManagement(): void {
    const h = this.hdr;
    const s = this.session!;
    if (!isImmediate(h, 0)) this.advanceCmdSN(u32(h, Field.CMD_SN));
    const fn = h[1] & 0x7f;
    const ittValue = u32(h, Field.ITT);
    const lun = decodeLun(h, Field.LUN);
    const target = s.target;
    let response: number = TmfResponse.FUNCTION_COMPLETE;
    const victims: Task[] = [];
    if (target === null) {
      response = TmfResponse.FUNCTION_REJECTED;
    } else {
      switch (fn) {
        case TmfFunction.ABORT_TASK: {
          const rtt = u32(h, Field.RTT);
          const t = this.tasks.get(rtt);
          if (t === undefined) {
            // RFC 7143 11.5.1: if the referenced command never arrived but its CmdSN
            // (RefCmdSN) lies in the window below the TMF's own CmdSN, the target treats
            // that CmdSN as received (so the command, if it comes later, is ignored) and
            // answers Function Complete; otherwise the task does not exist.
            const ref = u32(h, Field.REF_CMD_SN);
            const tmfCmdSN = u32(h, Field.CMD_SN);
            if (s.inWindow(ref) && snLess(ref, tmfCmdSN) && !s.deliverable(ref) && !s.ahead.has(ref)) {
              s.arrived(ref);
              this.releaseHeld();
              response = TmfResponse.FUNCTION_COMPLETE;
            } else {
              response = TmfResponse.TASK_DOES_NOT_EXIST;
            }
          } else if (t.lun !== lun) {
            response = TmfResponse.TASK_DOES_NOT_EXIST;
          } else {
            victims.push(t);
          }
          break;
        }
        case TmfFunction.ABORT_TASK_SET:
        case TmfFunction.CLEAR_TASK_SET:
        case TmfFunction.LOGICAL_UNIT_RESET:
          if (lun < 0 || !target.luns.has(lun)) {
            response = TmfResponse.LUN_DOES_NOT_EXIST;
            break;
          }
          for (const t of this.tasks.values()) if (t.lun === lun) victims.push(t);
          break;
        case TmfFunction.TARGET_WARM_RESET:
        case TmfFunction.TARGET_COLD_RESET:
          for (const t of this.tasks.values()) victims.push(t);
          break;
        case TmfFunction.CLEAR_ACA:
          response = TmfResponse.FUNCTION_COMPLETE;
          break;
        case TmfFunction.TASK_REASSIGN:
          // RFC 7143 11.5.1: reassignment needs ErrorRecoveryLevel 2.
          response = TmfResponse.TASK_REASSIGN_NOT_SUPPORTED;
          break;
        default:
          response = TmfResponse.FUNCTION_NOT_SUPPORTED;
      }
    }
    const pending = new PendingTmf(this, ittValue, fn, fn === TmfFunction.TARGET_COLD_RESET);
    // Hold the answer until everything below has settled (the extra count is released
    // at the end, so an acknowledgement arriving synchronously cannot answer early).
    pending.waiting = 1;
    for (const t of victims) {
      if (t.aborted) continue;
      t.aborted = true;
      if (t.state === TaskState.RECEIVING) {
        // Not yet at the LU: it ends here, silently (SAM-5 7.2, TAS=0).
        if (t.held) this.held = this.held.filter((x) => x !== t);
        this.finishTask(t, false);
        this.ctx.pool.release(t);
      } else if (t.state === TaskState.SUBMITTED || t.state === TaskState.QUEUED) {
        pending.waiting++; // answered once the LU has finished it
        t.tmf = pending;
      }
    }
    if (response === TmfResponse.FUNCTION_COMPLETE && (fn === TmfFunction.ABORT_TASK || fn === TmfFunction.ABORT_TASK_SET)) {
      // The issuer's commands already at the LU are aborted there too (SAM-5 7.2, 7.3):
      // a command whose work is an LU-wide operation (SANITIZE with IMMED = 0) then ends
      // at once instead of when the operation does. One descriptor per LU concerned,
      // queued behind the commands it aborts; the answer also waits for it.
      const sent = new Set<string>();
      for (const t of victims) {
        if (t.state !== TaskState.SUBMITTED && t.state !== TaskState.QUEUED) continue;
        const key = `${t.lunWorker}/${t.luIndex}`;
        if (sent.has(key)) continue;
        sent.add(key);
        if (this.ctx.sendTmf(t.lunWorker, t.luIndex, fn, s.nexus, pending, t.tag)) pending.waiting++;
      }
    }
    if (response === TmfResponse.FUNCTION_COMPLETE && target !== null) {
      // Functions that act on the logical unit for every nexus (SAM-5 7.5-7.8) go to
      // the LUN workers too; the answer waits for their acknowledgement, by which time
      // every aborted command, whoever sent it, has finished.
      const luScoped = fn === TmfFunction.LOGICAL_UNIT_RESET || fn === TmfFunction.CLEAR_TASK_SET;
      const targetScoped = fn === TmfFunction.TARGET_WARM_RESET || fn === TmfFunction.TARGET_COLD_RESET;
      if (luScoped || targetScoped) {
        const seen = new Set<string>();
        for (const [n, route] of target.luns) {
          if (luScoped && n !== lun) continue;
          if (seen.has(route.device)) continue;
          seen.add(route.device);
          if (this.ctx.sendTmf(route.lunWorker, route.luIndex, fn, s.nexus, pending)) pending.waiting++;
        }
      }
    }
    if (response !== TmfResponse.FUNCTION_COMPLETE) {
      this.answerTmf(pending, response);
      return;
    }
    pending.settle();
  }

  /** Send the TMF response (once). */
  answerTmf(p: PendingTmf, response: number): void {
    this.fillSeq(true);
    const w = this.writer;
    w.begin();
    buildTmfResponse(w.buf, w.off, p.itt, response, this.seq);
    w.sendInline(0);
    if (p.thenClose) this.closeAfterFlush();
  }

  /** Ask the initiator to log out (RFC 7143 11.9.1, AsyncEvent 1), e.g. when draining. */
  requestLogout(time2WaitSec: number): void {
    if (this.phase !== Phase.FULL_FEATURE) return;
    this.fillSeq(true);
    const w = this.writer;
    w.begin();
    buildAsyncMessage(w.buf, w.off, AsyncEvent.LOGOUT_REQUEST, 0, 0, time2WaitSec, 0, this.seq);
    w.sendInline(0);
  }

  /** A non-immediate non-SCSI PDU consumed `cmdSN`; it may fill a gap. */
  private advanceCmdSN(cmdSN: number): void {
    const s = this.session!;
    if (s.inWindow(cmdSN)) s.arrived(cmdSN);
    this.releaseHeld();
  }

  // =========================================================================
  // NOP-In pings: detect initiators that vanished without closing TCP.

  private startNopTimer(): void {
    const intervalMs = this.ctx.tuning.nopIntervalSec * 1000;
    if (intervalMs <= 0) return;
    this.nopTimer = setInterval(() => {
      if (this.phase !== Phase.FULL_FEATURE || this.nopOutstanding) return;
      this.nopOutstanding = true;
      this.nopTtt = (this.nopTtt + 1) & 0x7fffffff || 1;
      this.fillSeq(false);
      const w = this.writer;
      w.begin();
      // RFC 7143 11.19: a target ping has ITT 0xffffffff and a TTT the initiator echoes.
      buildNopIn(w.buf, w.off, null, 0, RESERVED_TAG, this.nopTtt, 0, this.seq);
      w.sendInline(0);
      // No answer within nopTimeoutSec: the initiator is gone (or the path is), so the
      // connection is dropped and its tasks cleaned up (RFC 7143 7.1.1, 7.14).
      this.nopDeadline = setTimeout(() => {
        this.log.warn({ timeoutSec: this.ctx.tuning.nopTimeoutSec }, 'NOP-In ping not answered: dropping connection');
        this.close('nop timeout');
      }, this.ctx.tuning.nopTimeoutSec * 1000);
      this.nopDeadline.unref();
    }, intervalMs);
    this.nopTimer.unref();
  }

  // =========================================================================
  // Helpers

  /** Fill this.seq; `advance` when the PDU carries status and so consumes a StatSN. */
  private fillSeq(advance: boolean): void {
    const s = this.session;
    this.seq.statSN = this.statSN;
    if (advance) this.statSN = (this.statSN + 1) >>> 0;
    if (s) {
      this.seq.expCmdSN = s.expCmdSN;
      this.seq.maxCmdSN = s.maxCmdSN;
    }
  }

  /** Send the PDU begun last with a control data segment (inline when small). */
  private sendControlData(data: Buffer): void {
    const w = this.writer;
    if (data.length <= INLINE_MAX) {
      data.copy(w.buf, w.inlineOffset);
      w.sendInline(data.length);
    } else {
      // Not a hot path (login/text replies): the copy keeps the caller's buffer free.
      w.sendWithData(Buffer.from(data), 0, data.length);
    }
  }

  private sendReject(reason: number, rejected: Buffer): void {
    this.fillSeq(true);
    const w = this.writer;
    w.begin();
    buildReject(w.buf, w.off, reason, this.seq);
    // RFC 7143 11.17: the data segment is the complete header of the rejected PDU.
    rejected.copy(w.buf, w.inlineOffset, 0, BHS_LENGTH);
    w.sendInline(BHS_LENGTH);
  }

  private closeAfterFlush(): void {
    this.phase = Phase.LOGOUT;
    this.socket.end();
    const t = setTimeout(() => this.close('close after flush timed out'), 5000);
    t.unref();
  }

  close(why: string): void {
    if (this.phase === Phase.CLOSED) return;
    this.log.debug({ why }, 'closing connection');
    this.socket.destroy();
    this.teardown(why);
  }

  /** Stop everything this connection owns; tasks at the LU are orphaned and freed on completion. */
  private teardown(why: string): void {
    if (this.phase === Phase.CLOSED) return;
    this.phase = Phase.CLOSED;
    if (this.loginTimer) clearTimeout(this.loginTimer);
    if (this.nopTimer) clearInterval(this.nopTimer);
    if (this.nopDeadline) clearTimeout(this.nopDeadline);
    for (const t of this.tasks.values()) {
      if (t.state === TaskState.RECEIVING) {
        this.ctx.pool.release(t);
      } else {
        t.owner = null; // released by the channel when the LU completes it
      }
    }
    this.tasks.clear();
    this.held = [];
    if (this.sessionKey) this.ctx.sessionDown(this.sessionKey, this);
    if (this.sessionTargetIndex >= 0) this.ctx.releaseSession(this.sessionTargetIndex);
    this.sessionTargetIndex = -1;
    // I_T nexus loss (SAM-5 6.3.4): LUN workers learn it after the session's last command.
    if (this.session && this.session.target !== null) this.ctx.releaseNexus(this.session.nexus);
    if (this.session) this.log.info({ why }, 'session closed');
    const cb = this.onClosed;
    this.onClosed = null;
    if (cb) cb(this);
  }

  /** True when this connection carries the full-feature session (TSIH, ISID). */
  isSession(tsih: number, isid: Buffer): boolean {
    const s = this.session;
    return this.phase === Phase.FULL_FEATURE && s !== null && s.tsih === tsih && s.isid.equals(isid);
  }

  /** In-flight tasks (for graceful shutdown). */
  get busy(): number {
    return this.tasks.size;
  }

  get isFullFeature(): boolean {
    return this.phase === Phase.FULL_FEATURE;
  }
}
