/**
 * The login phase on the wire (RFC 7143 6.3, 11.12, 11.13): decodes each Login Request
 * for the pure login logic (`login/login-phase.ts`), applies the node-wide policies that
 * logic cannot see (sessions per target, the failed-authentication backoff, the login
 * timeout), sends the Login Responses and, on success, moves the connection into full
 * feature phase. Not a hot path.
 */
import { Opcode, buildLoginResponse, opcodeOf, u16, u32 } from '../../../shared/iscsi/pdu.ts';
import type { SessionParams } from '../../../shared/iscsi/session-params.ts';
import { LoginPhase, LoginStatus, type LoginStatusValue } from './login/login-phase.ts';
import type {
  LoginContext,
  LoginRequest,
  LoginResponse,
  LoginStepResult,
  LoginTargetInfo,
} from './login/types.ts';
import { sessionIdentityKey } from './session.ts';
import { authThrottleKey } from '../../../shared/iscsi/auth-key.ts';
import { formatTargetAddress, loginAccess } from '../routes.ts';
import type { ConnectionCore } from './connection-core.ts';

const EMPTY = Buffer.alloc(0);

/** What the login exchange needs from its connection beyond the full-feature core. */
export interface LoginHost extends ConnectionCore {
  /** The initiator's IP address (the auth throttle's key). */
  readonly remoteAddress: string;
  readonly peer: string;
  /** StatSN of the next status-carrying PDU; 0 until the first Login Response. */
  statSN: number;
  /** Index of the target whose node-wide session count this connection holds (-1: none). */
  sessionTargetIndex: number;
  /** Stop reading from the socket (a login answer is being held back), and go on again. */
  pauseReading(): void;
  resumeReading(): void;
  /** The TSIH this connection holds in the node-wide table (0: none); released at close. */
  heldTsih: number;
  /** The login succeeded and its final response is out: enter full feature phase. */
  enterFullFeature(req: LoginRequest, tsih: number, params: SessionParams): void;
}

export class LoginExchange {
  private readonly host: LoginHost;
  private readonly phase: LoginPhase;
  private timer: NodeJS.Timeout | null = null;
  /** A response is held back (asynchronous check or backoff): no PDU may arrive meanwhile. */
  private held = false;

  constructor(host: LoginHost) {
    this.host = host;
    this.phase = new LoginPhase(this.loginContext());
    const timeoutSec = host.ctx.tuning.loginTimeoutSec;
    this.timer = setTimeout(() => {
      host.ctx.metrics?.loginTimedOut();
      host.log.warn({ timeoutSec }, 'login phase timed out');
      host.close('login timeout');
    }, timeoutSec * 1000);
    this.timer.unref();
  }

  /** No more timers (login done, or the connection closed). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private loginContext(): LoginContext {
    const h = this.host;
    const ctx = h.ctx;
    const portal = ctx.portals[h.portalIndex]!;
    const targets: LoginTargetInfo[] = [];
    for (const t of ctx.targets.values()) {
      if (!t.portals.includes(h.portalIndex)) continue;
      targets.push({
        iqn: t.iqn,
        alias: t.alias,
        portalGroupTag: portal.tag,
        addresses: t.portals.map((i) => formatTargetAddress(ctx.portals[i]!)),
        auth: t.auth,
        ...loginAccess(t),
      });
    }
    return {
      targets,
      portalGroupTag: portal.tag,
      discoveryAuth: ctx.discoveryAuth,
      tuning: ctx.tuning,
      allocTsih: () => ctx.allocTsih(),
      hasSession: (tsih, isid) => ctx.hasSession(tsih, isid),
      peer: h.peer,
      log: h.log,
    };
  }

  /** A complete PDU arrived during the login phase. */
  onPdu(): void {
    const host = this.host;
    const h = host.rx.hdr;
    if (this.held) {
      // A Login Response is being held back (reinstatement lookup, failed-auth backoff):
      // the initiator must wait for it (RFC 7143 6.3); anything sent meanwhile is a
      // protocol error.
      host.log.warn({ opcode: opcodeOf(h, 0) }, 'PDU while a login response is pending');
      host.close('PDU during a held login');
      return;
    }
    if (opcodeOf(h, 0) !== Opcode.LOGIN_REQUEST) {
      // RFC 7143 6.3: only Login Requests are allowed before the full feature phase.
      host.log.warn({ opcode: opcodeOf(h, 0) }, 'non-login PDU during login');
      this.sendFailure(h, 0x02, 0x0b);
      return;
    }
    const req: LoginRequest = {
      transit: (h[1]! & 0x80) !== 0,
      cont: (h[1]! & 0x40) !== 0,
      csg: (h[1]! >> 2) & 3,
      nsg: h[1]! & 3,
      versionMax: h[2]!,
      versionMin: h[3]!,
      isid: Buffer.from(h.subarray(8, 14)),
      tsih: u16(h, 14),
      itt: u32(h, 16),
      cid: u16(h, 20),
      cmdSN: u32(h, 24),
      expStatSN: u32(h, 28),
      data: Buffer.from(host.rx.ctrl.subarray(0, host.rx.dsl)),
    };
    let result: LoginStepResult;
    try {
      result = this.phase.step(req);
    } catch (err) {
      host.log.error({ err }, 'login logic failed');
      this.sendFailure(h, 0x03, 0x00);
      return;
    }
    const r = result.response;
    if (result.complete && !result.failed) {
      if (req.tsih === 0) {
        // The TSIH a leading login was just given: this connection holds it until it
        // closes (the session keeps it), so a login that fails from here frees it.
        if (r.tsih === 0) {
          // All 65535 TSIHs in use node-wide (RFC 7143 11.13.5: out of resources).
          host.log.warn({}, 'no free TSIH: login refused');
          this.refuse(req, r, LoginStatus.OUT_OF_RESOURCES);
          return;
        }
        host.heldTsih = r.tsih;
      } else {
        this.reinstate(req, result);
        return;
      }
    }
    this.complete(req, result);
  }

  /**
   * The last step of a login that names an existing session by TSIH: connection
   * reinstatement (RFC 7143 6.3.4). The session must be live with the identity this login
   * just authenticated (InitiatorName, ISID, TargetName, portal group); otherwise the
   * answer is "session does not exist" (11.13.5, 0x020a).
   *
   * The portal places every connection before anything is read from it, so the new
   * connection may have landed on another session worker than its session. A socket
   * that has been read from cannot move to another thread (Node transfers only sockets
   * with nothing read or written), so the session comes here instead: at
   * ErrorRecoveryLevel 0 reinstatement ends every task of the old connection anyway, so
   * what continues is the session's identity and TSIH. The supervisor says where the
   * identity lives; its TSIH moves to this worker in the shared TSIH table; the old
   * connection is closed by the usual session-up message once this one is in full
   * feature phase (login-exchange -> connection.enterFullFeature -> ctx.sessionUp).
   */
  private reinstate(req: LoginRequest, result: LoginStepResult): void {
    const host = this.host;
    const ctx = host.ctx;
    const params = result.params!;
    const tsih = req.tsih;
    const key = sessionIdentityKey(
      params.InitiatorName,
      req.isid,
      params.TargetName,
      ctx.portals[host.portalIndex]!.tag,
    );
    if (ctx.localSessionTsih(key) === tsih && ctx.adoptTsih(tsih, ctx.index)) {
      host.heldTsih = tsih;
      this.complete(req, result);
      return;
    }
    const owner = ctx.tsihOwner(tsih);
    if (owner < 0 || owner === ctx.index) {
      this.refuse(req, result.response, LoginStatus.SESSION_DOES_NOT_EXIST);
      return;
    }
    // Ask the supervisor; read nothing meanwhile (the login timeout still runs).
    host.pauseReading();
    this.held = true;
    void ctx.findSession(key).then((found) => {
      this.held = false;
      if (!host.receiving) return;
      if (found !== null && found.worker === owner && found.tsih === tsih && ctx.adoptTsih(tsih, owner)) {
        host.log.info({ tsih, from: owner }, 'connection reinstatement: session moves to this worker');
        host.heldTsih = tsih;
        host.resumeReading();
        this.complete(req, result);
      } else {
        this.refuse(req, result.response, LoginStatus.SESSION_DOES_NOT_EXIST);
      }
    });
  }

  /** Turn the final response into a failure with `status` and send it. */
  private refuse(req: LoginRequest, r: LoginResponse, status: LoginStatusValue): void {
    r.statusClass = status.statusClass;
    r.statusDetail = status.statusDetail;
    r.transit = false;
    r.tsih = 0;
    r.data = EMPTY;
    this.sendResponse(req, r, true);
  }

  /** Node-wide policies on the outcome, then the response (and full feature phase). */
  private complete(req: LoginRequest, result: LoginStepResult): void {
    const host = this.host;
    const r = result.response;
    const failed = result.failed;
    if (result.complete && result.params && result.params.SessionType === 'Normal') {
      // Node-wide cap on sessions per target (iscsi.maxSessionsPerTarget): over it the
      // login fails with "out of resources" (RFC 7143 11.13.5, class 3 detail 2).
      const ti = host.ctx.targetIndex.get(result.params.TargetName);
      if (ti !== undefined && !host.ctx.reserveSession(ti)) {
        host.log.warn(
          { target: result.params.TargetName, max: host.ctx.tuning.maxSessionsPerTarget },
          'session limit reached: login refused',
        );
        this.refuse(req, r, LoginStatus.OUT_OF_RESOURCES);
        return;
      } else if (ti !== undefined) {
        host.sessionTargetIndex = ti;
      }
    }
    // Failed authentications are answered late, with exponential backoff per initiator
    // and address, so secrets cannot be guessed at wire speed (issue: brute force).
    const key = authThrottleKey(this.phase.initiatorName, host.remoteAddress);
    if (failed && r.statusClass === 0x02 && r.statusDetail === 0x01) {
      // Hold the failure response for the node-wide backoff; read nothing meanwhile.
      host.pauseReading();
      this.held = true;
      this.stop();
      const initiator = this.phase.initiatorName;
      void host.ctx.authFailure(key).then(({ delayMs, failures }) => {
        host.log.warn({ initiator, address: host.remoteAddress, failures, delayMs }, 'authentication failed');
        if (!host.receiving) return;
        const send = () => {
          if (host.receiving) this.sendResponse(req, r, true);
        };
        if (delayMs <= 0) return send();
        this.timer = setTimeout(send, delayMs);
        this.timer.unref();
      });
      return;
    } else if (result.complete) {
      host.ctx.authSuccess(key);
    }
    this.sendResponse(req, r, failed);
    if (!failed && result.complete && result.params) {
      host.ctx.metrics?.loginOk();
      host.enterFullFeature(req, r.tsih, result.params);
    }
  }

  private sendResponse(req: LoginRequest, r: LoginResponse, failed: boolean): void {
    const host = this.host;
    if (host.statSN === 0) host.statSN = (Math.random() * 0x7fffffff) >>> 0 || 1;
    const w = host.writer;
    const seq = host.seq;
    const data = r.data;
    seq.statSN = host.statSN;
    seq.expCmdSN = req.cmdSN;
    seq.maxCmdSN = (req.cmdSN + host.ctx.cmdWindow - 1) >>> 0;
    host.statSN = (host.statSN + 1) >>> 0;
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
      seq,
    );
    host.sendControlData(data);
    if (failed) {
      host.ctx.metrics?.loginFailed(r.statusClass, r.statusDetail);
      host.log.info({ statusClass: r.statusClass, statusDetail: r.statusDetail }, 'login failed');
      host.closeAfterFlush();
    }
  }

  /** A Login Response with a failure status for a PDU the login logic never saw. */
  private sendFailure(h: Buffer, cls: number, detail: number): void {
    const host = this.host;
    const w = host.writer;
    const seq = host.seq;
    seq.statSN = host.statSN;
    seq.expCmdSN = u32(h, 24);
    seq.maxCmdSN = seq.expCmdSN;
    w.begin();
    buildLoginResponse(
      w.buf,
      w.off,
      false,
      false,
      0,
      0,
      0,
      0,
      h.subarray(8, 14),
      0,
      u32(h, 16),
      cls,
      detail,
      0,
      seq,
    );
    w.sendInline(0);
    host.ctx.metrics?.loginFailed(cls, detail);
    host.closeAfterFlush();
  }
}
