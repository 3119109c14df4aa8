/**
 * One iSCSI connection on a session worker (RFC 7143): the socket, the connection's
 * phases (login, full feature, logout), PDU dispatch, and teardown. With
 * MaxConnections=1 the connection also owns its session.
 *
 * The work is done by one module per concern, each created once per connection:
 *   pdu-receiver.ts   framing: BHS, AHS, digests, data segment into its destination
 *   login-exchange.ts Login Requests and Responses, session cap, auth backoff
 *   scsi-command.ts   SCSI Command intake, CmdSN ordering, routing to LUN workers
 *   data-out.ts       unsolicited data, R2Ts and Data-Out
 *   scsi-response.ts  Data-In and SCSI Response, residuals, task bookkeeping
 *   task-management.ts, nop.ts, text.ts, logout.ts
 * They see this object through `ConnectionCore` (connection-core.ts).
 *
 * Receive path, two phases per PDU: in the header stage the module for the opcode
 * checks the header and routes the data segment (a task's slab buffer for immediate
 * data and Data-Out, the control buffer otherwise); in the PDU stage it acts on it.
 */
import { TaskAttribute } from '../../../shared/scsi/command.ts';
import { grantKey } from '../inline-io.ts';
import {
  BHS_LENGTH,
  Opcode,
  RejectReason,
  buildReject,
  opcodeOf,
  type SeqNumbers,
} from '../../../shared/iscsi/pdu.ts';
import type { SessionParams } from '../../../shared/iscsi/session-params.ts';
import type { Logger } from '../../../shared/logging.ts';
import { TaskState, type Task } from '../task.ts';
import type { SessionWorkerContext } from '../context.ts';
import { sameInventory, sessionRoute, type TargetRoute } from '../routes.ts';
import { UaEvent } from '../../../shared/ring/descriptors.ts';
import type { LoginRequest } from './login/types.ts';
import { INLINE_MAX, PduWriter } from './pdu-writer.ts';
import { DataRoute, PduReceiver, type PduSink } from './pdu-receiver.ts';
import { IscsiSession, sessionIdentityKey } from './session.ts';
import type { ConnectionCore } from './connection-core.ts';
import { LoginExchange, type LoginHost } from './login-exchange.ts';
import { CommandIntake } from './scsi-command.ts';
import { DataOutEngine } from './data-out.ts';
import { ResponseSender } from './scsi-response.ts';
import { TaskManagement } from './task-management.ts';
import { NopHandler } from './nop.ts';
import { TextExchange } from './text.ts';
import { LogoutHandler } from './logout.ts';
import type { Transport } from './transport.ts';
import { SessionCounters } from '../../../shared/metrics/session-counters.ts';

const Phase = { LOGIN: 0, FULL_FEATURE: 1, LOGOUT: 2, CLOSED: 3 } as const;

/** Data segment limit during login: the RFC 7143 13.12 default MaxRecvDataSegmentLength. */
const LOGIN_MAX_DSL = 8192;

/** Counters of connections whose worker has none in shared memory (unit tests). */
let privateCounters: SessionCounters | null = null;

export class IscsiConnection implements ConnectionCore, LoginHost, PduSink {
  readonly ctx: SessionWorkerContext;
  private readonly socket: Transport;
  log: Logger;
  readonly portalIndex: number;
  readonly peer: string;
  readonly remoteAddress: string;
  readonly writer: PduWriter;
  readonly rx: PduReceiver;
  readonly seq: SeqNumbers = { statSN: 0, expCmdSN: 0, maxCmdSN: 0 };
  private phase: number = Phase.LOGIN;
  session: IscsiSession | null = null;
  private sessionKey = '';
  sessionTargetIndex = -1;
  heldTsih = 0;
  statSN = 0;
  /** The DataSegmentLength this connection accepts (RFC 7143 13.12). */
  private maxDsl = LOGIN_MAX_DSL;
  /** Reject reason decided in the header stage, sent in the PDU stage (0 = none). */
  private rejectReason = 0;
  /** Reading is paused until the socket drains (output backpressure). */
  private outputBlocked = false;
  readonly tasks = new Map<number, Task>();
  /** When the connection was accepted (admin API). */
  readonly since = Date.now();
  /** This connection's counters (shared/metrics/session-counters.ts) and its slot in them. */
  readonly counters: SessionCounters;
  readonly metricBase: number;

  private login: LoginExchange | null;
  readonly intake: CommandIntake;
  readonly dataOut: DataOutEngine;
  readonly responses: ResponseSender;
  private readonly tmf: TaskManagement;
  private readonly nop: NopHandler;
  private readonly text: TextExchange;
  private readonly logout: LogoutHandler;
  private onClosed: ((c: IscsiConnection) => void) | null;

  constructor(
    ctx: SessionWorkerContext,
    socket: Transport,
    portalIndex: number,
    onClosed: (c: IscsiConnection) => void,
    /** The owner feeds receive() itself (a reusable receive buffer) instead of 'data' events. */
    externalInput = false,
  ) {
    this.ctx = ctx;
    this.socket = socket;
    this.portalIndex = portalIndex;
    this.onClosed = onClosed;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = ctx.log.child({ peer: this.peer });
    this.counters = ctx.metrics ?? (privateCounters ??= new SessionCounters());
    this.metricBase = this.counters.openConnection();
    this.writer = new PduWriter(socket);
    this.writer.onBackpressure = (on) => {
      // The initiator is not reading our responses: stop reading its commands until
      // the socket drains, so memory stays bounded (each response waits in the socket).
      // Every write past the high-water mark reports this again; one pause and the one
      // 'drain' listener below cover them all (a listener per write piled up into a
      // MaxListenersExceededWarning, and was a closure per PDU).
      if (on && !this.outputBlocked) {
        this.outputBlocked = true;
        socket.pause();
      }
    };
    socket.on('drain', () => {
      // Emitted only after a write returned false, once the buffer has been flushed.
      if (!this.outputBlocked) return;
      this.outputBlocked = false;
      if (this.phase !== Phase.CLOSED) socket.resume();
    });
    this.rx = new PduReceiver(this, LOGIN_MAX_DSL);
    this.intake = new CommandIntake(this);
    this.dataOut = new DataOutEngine(this);
    this.responses = new ResponseSender(this);
    this.tmf = new TaskManagement(this);
    this.nop = new NopHandler(this);
    this.text = new TextExchange(this);
    this.logout = new LogoutHandler(this);
    this.login = new LoginExchange(this);
    socket.setNoDelay(true);
    // A session worker reads the socket into its own reusable buffer and calls receive()
    // (session-worker.ts); other transports (the tests' fake socket) emit 'data'.
    if (!externalInput) socket.on('data', (chunk: Buffer) => this.receive(chunk, chunk.length));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'socket error'));
    socket.on('close', () => this.teardown('socket closed'));
    socket.resume();
  }

  // =========================================================================
  // Receive

  /** Bytes received: chunk[0, len), consumed before this returns (the buffer is reused). */
  receive(chunk: Buffer, len: number): void {
    this.ctx.inputStarts();
    this.rx.feed(chunk, len);
    this.ctx.inputEnds();
  }

  get receiving(): boolean {
    return this.phase !== Phase.CLOSED;
  }

  get isFullFeature(): boolean {
    return this.phase === Phase.FULL_FEATURE;
  }

  onHeaderDigestError(): void {
    // RFC 7143 7.8: with a bad header digest the PDU boundaries cannot be trusted; at
    // ErrorRecoveryLevel 0 the connection is dropped.
    this.counters.headerDigestError(this.metricBase);
    this.log.warn({}, 'header digest error: dropping connection');
    this.close('header digest error');
  }

  /** PduSink: the header stage. */
  onHeader(): void {
    const h = this.rx.hdr;
    const dsl = this.rx.dsl;
    this.rejectReason = 0;
    if (dsl > this.maxDsl) {
      // RFC 7143 11.2.1.5 / 13.12: a data segment longer than our MaxRecvDataSegmentLength
      // is a protocol error; the stream cannot be trusted to resynchronise, so reject and close.
      this.log.warn({ dsl, max: this.maxDsl }, 'data segment longer than MaxRecvDataSegmentLength');
      this.sendReject(RejectReason.PROTOCOL_ERROR, h);
      this.abort('oversized data segment');
      return;
    }
    if (this.phase !== Phase.FULL_FEATURE) return;
    const op = opcodeOf(h, 0);
    if (op === Opcode.SCSI_COMMAND) this.intake.onHeader();
    else if (op === Opcode.DATA_OUT) this.dataOut.onHeader();
  }

  rejectAfterData(reason: number): void {
    this.rejectReason = reason;
  }

  /** PduSink: the PDU stage. */
  onPdu(dataDigestOk: boolean): void {
    if (!dataDigestOk) {
      this.onDataDigestError();
      return;
    }
    if (this.phase === Phase.LOGIN) this.login?.onPdu();
    else if (this.phase === Phase.FULL_FEATURE) this.onFullFeaturePdu();
    // LOGOUT phase: the initiator should send nothing more; ignore it.
  }

  private onDataDigestError(): void {
    // RFC 7143 7.8 / 11.17.1: a PDU with a data digest error is discarded and rejected
    // with reason "Data (payload) Digest Error". A Data-Out or a command with immediate
    // data loses bytes we cannot re-request at ErrorRecoveryLevel 0, so the task is
    // failed by dropping the connection (session recovery, RFC 7143 7.1.5).
    const h = this.rx.hdr;
    this.counters.dataDigestError(this.metricBase);
    this.log.warn({ opcode: opcodeOf(h, 0) }, 'data digest error');
    this.sendReject(RejectReason.DATA_DIGEST_ERROR, h);
    const route = this.rx.route;
    if (route === DataRoute.SCSI || route === DataRoute.DATA_OUT)
      this.abort('data digest error on SCSI data');
  }

  private onFullFeaturePdu(): void {
    const h = this.rx.hdr;
    if (this.rejectReason !== 0) {
      this.sendReject(this.rejectReason, h);
      return;
    }
    switch (opcodeOf(h, 0)) {
      case Opcode.SCSI_COMMAND:
        this.intake.onPdu();
        break;
      case Opcode.DATA_OUT:
        this.dataOut.onPdu();
        break;
      case Opcode.NOP_OUT:
        this.nop.onPdu();
        break;
      case Opcode.TEXT_REQUEST:
        this.text.onPdu();
        break;
      case Opcode.LOGOUT_REQUEST:
        if (this.logout.onPdu()) this.closeAfterFlush();
        break;
      case Opcode.TASK_MGMT_REQUEST:
        this.tmf.onPdu();
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

  // =========================================================================
  // Login → full feature phase

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    if (this.phase !== Phase.CLOSED && !this.outputBlocked) this.socket.resume();
  }

  enterFullFeature(req: LoginRequest, tsih: number, params: SessionParams): void {
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
      const portal = this.ctx.portals[this.portalIndex]!;
      const id = this.ctx.registerNexus({
        initiatorName: params.InitiatorName,
        isid: req.isid,
        targetName: target.iqn,
        // Each portal is one target port and its own target port group for now.
        relativeTargetPortId: portal.tag,
        targetPortGroup: portal.group,
      });
      if (id === undefined) {
        this.log.error({}, 'nexus table full: refusing the session');
        this.close('nexus table full');
        return;
      }
      nexus = id;
    }
    if (req.tsih !== 0) {
      // Connection reinstatement (RFC 7143 6.3.4, checked in login-exchange.ts): the
      // session continues on this connection; the old one is closed and, at
      // ErrorRecoveryLevel 0, its tasks are terminated (no task reassignment). Here when
      // it lives on this worker; on another one, sessionUp below has the supervisor
      // tell that worker.
      this.ctx.closeSession(req.tsih, req.isid, this, 'connection reinstatement');
    }
    this.session = new IscsiSession(tsih, req.isid, nexus, params, target, req.cmdSN, this.ctx.cmdWindow);
    // RFC 7143 6.3.5: a leading login whose InitiatorName, ISID, TargetName and portal
    // group match a live session replaces it (the initiator lost that session, e.g. a
    // network cut); the old session's tasks are terminated with it.
    this.sessionKey = sessionIdentityKey(
      params.InitiatorName,
      req.isid,
      params.TargetName,
      this.ctx.portals[this.portalIndex]!.tag,
    );
    this.ctx.sessionUp(this.sessionKey, tsih, this);
    this.phase = Phase.FULL_FEATURE;
    this.login?.stop();
    this.login = null;
    // RFC 7143 13.1 / 13.12: digests and the negotiated data segment limits apply from
    // the first PDU after the final Login Response.
    const headerDigest = params.HeaderDigest === 'CRC32C';
    const dataDigest = params.DataDigest === 'CRC32C';
    this.rx.headerDigest = headerDigest;
    this.rx.dataDigest = dataDigest;
    this.writer.configure(headerDigest, dataDigest);
    this.maxDsl = params.TargetMaxRecvDataSegmentLength;
    this.dataOut.configure(params, this.ctx.tuning.maxTransferLength);
    if (this.rx.ctrl.length < this.maxDsl) this.rx.ctrl = Buffer.alloc(this.maxDsl);
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
        MaxOutstandingR2T: params.MaxOutstandingR2T,
        DataPDUInOrder: params.DataPDUInOrder,
        DataSequenceInOrder: params.DataSequenceInOrder,
        HeaderDigest: params.HeaderDigest,
        DataDigest: params.DataDigest,
      },
      'session logged in',
    );
    this.nop.start();
  }

  // =========================================================================
  // Tasks

  /** TaskOwner: the LUN worker finished the task. */
  onTaskComplete(t: Task): void {
    if (t.attribute > TaskAttribute.SIMPLE && this.session !== null) this.session.orderedInFlight--;
    if (t.aborted || this.phase === Phase.CLOSED) {
      this.responses.drop(t);
      return;
    }
    if (t.grant !== 0) this.session?.inlineGrants.set(grantKey(t.lunWorker, t.luIndex, t.write), t.grant);
    this.counters.commandDone(this.metricBase, t);
    this.responses.send(t);
    this.ctx.flushDoorbells();
  }

  advanceCmdSN(cmdSN: number): void {
    const s = this.session!;
    if (s.inWindow(cmdSN)) s.arrived(cmdSN);
    this.intake.releaseHeld();
  }

  /** Ask the initiator to log out (RFC 7143 11.9.1, AsyncEvent 1), e.g. when draining. */
  requestLogout(time2WaitSec: number): void {
    if (this.phase !== Phase.FULL_FEATURE) return;
    this.logout.request(time2WaitSec);
  }

  // =========================================================================
  // Transmit helpers

  fillSeq(advance: boolean): void {
    const s = this.session;
    this.seq.statSN = this.statSN;
    if (advance) this.statSN = (this.statSN + 1) >>> 0;
    if (s) {
      this.seq.expCmdSN = s.expCmdSN;
      this.seq.maxCmdSN = s.maxCmdSN;
    }
  }

  sendControlData(data: Buffer): void {
    const w = this.writer;
    if (data.length <= INLINE_MAX) {
      data.copy(w.buf, w.inlineOffset);
      w.sendInline(data.length);
    } else {
      // Not a hot path (login/text replies): the copy keeps the caller's buffer free.
      w.sendWithData(Buffer.from(data), 0, data.length);
    }
  }

  sendReject(reason: number, rejected: Buffer): void {
    this.counters.reject(this.metricBase, reason);
    this.fillSeq(true);
    const w = this.writer;
    w.begin();
    buildReject(w.buf, w.off, reason, this.seq);
    // RFC 7143 11.17: the data segment is the complete header of the rejected PDU.
    rejected.copy(w.buf, w.inlineOffset, 0, BHS_LENGTH);
    w.sendInline(BHS_LENGTH);
  }

  // =========================================================================
  // Closing

  closeAfterFlush(): void {
    this.phase = Phase.LOGOUT;
    this.socket.end();
    // The close is learnt from the initiator's FIN, which only a reading socket sees: a
    // login held for a check (paused) and then refused would otherwise sit here until the
    // timer. Whatever else arrives is ignored (neither login nor full feature phase).
    this.socket.resume();
    const t = setTimeout(() => this.close('close after flush timed out'), 5000);
    t.unref();
  }

  /**
   * End the connection after a protocol error: nothing more is read or acted on from
   * now, but the PDUs already queued (the Reject explaining why) still go out before
   * the FIN; the socket is destroyed if the initiator has not closed within 5 s.
   */
  abort(why: string): void {
    if (this.phase === Phase.CLOSED) return;
    this.log.debug({ why }, 'closing connection after a protocol error');
    const socket = this.socket;
    this.teardown(why);
    socket.end();
    setTimeout(() => socket.destroy(), 5000).unref();
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
    this.counters.closeConnection(this.metricBase);
    this.login?.stop();
    this.nop.stop();
    for (const t of this.tasks.values()) {
      if (t.state === TaskState.RECEIVING) {
        this.ctx.pool.release(t);
      } else {
        t.owner = null; // released by the channel when the LU completes it
      }
    }
    this.tasks.clear();
    this.intake.clear();
    this.dataOut.clear();
    if (this.sessionKey) this.ctx.sessionDown(this.sessionKey, this);
    if (this.sessionTargetIndex >= 0) this.ctx.releaseSession(this.sessionTargetIndex);
    this.sessionTargetIndex = -1;
    if (this.heldTsih !== 0) this.ctx.releaseTsih(this.heldTsih);
    this.heldTsih = 0;
    // I_T nexus loss (SAM-5 6.3.4): LUN workers learn it after the session's last command.
    if (this.session && this.session.target !== null) this.ctx.releaseNexus(this.session.nexus);
    if (this.session) this.log.info({ why }, 'session closed');
    const cb = this.onClosed;
    this.onClosed = null;
    if (cb) cb(this);
  }

  /**
   * The routing tables changed (configuration reload): re-resolve this session's view of
   * its target. Access revoked (the target is gone, or no ACL entry admits the initiator
   * any more): the session ends now, and a new login fails with AUTHORIZATION FAILURE.
   * A different LUN inventory: REPORTED LUNS DATA HAS CHANGED for this I_T nexus at every
   * LU it now sees (SPC-4 6.33), cleared when it runs REPORT LUNS (scsi-command.ts).
   */
  applyRoutes(): void {
    const s = this.session;
    if (this.phase !== Phase.FULL_FEATURE || s === null || s.target === null) return;
    const configured = this.ctx.targets.get(s.params.TargetName);
    const next = configured === undefined ? null : sessionRoute(configured, s.params.InitiatorName);
    if (next === null) {
      this.log.warn({}, 'access revoked by a configuration reload: closing the session');
      this.close('access revoked');
      return;
    }
    const changed = !sameInventory(s.target, next);
    s.target = next;
    if (changed) {
      s.reportedLunsChanged = true;
      // The condition reaches the LUs in order with later commands on the rings; none of
      // those may be served around it (inline-io.ts).
      s.inlineGrants.clear();
      this.ctx.signalLuns(s.nexus, next, UaEvent.REPORTED_LUNS_CHANGED);
      this.log.info({ luns: next.lunList }, 'LUN inventory changed: REPORTED LUNS DATA HAS CHANGED');
    }
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
}
