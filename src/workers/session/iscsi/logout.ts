/**
 * Logout (RFC 7143 11.14, 11.15) and the target's request for one (Async Message,
 * 11.9.1). With MaxConnections=1 and ErrorRecoveryLevel 0, closing the connection and
 * closing the session are the same thing; removing a connection for recovery needs
 * ErrorRecoveryLevel 2 and is refused.
 */
import {
  AsyncEvent,
  Field,
  LogoutReason,
  LogoutResponse,
  buildAsyncMessage,
  buildLogoutResponse,
  isImmediate,
  u32,
} from '../../../shared/iscsi/pdu.ts';
import type { ConnectionCore } from './connection-core.ts';

export class LogoutHandler {
  private readonly conn: ConnectionCore;

  constructor(conn: ConnectionCore) {
    this.conn = conn;
  }

  /** A Logout Request PDU. True when the connection is now logging out (closing after flush). */
  onPdu(): boolean {
    const c = this.conn;
    const h = c.rx.hdr;
    const s = c.session!;
    if (!isImmediate(h, 0)) c.advanceCmdSN(u32(h, Field.CMD_SN));
    const reason = h[1]! & 0x7f;
    const ittValue = u32(h, Field.ITT);
    let response: number = LogoutResponse.CLOSED;
    if (reason === LogoutReason.REMOVE_CONNECTION_FOR_RECOVERY) {
      response = LogoutResponse.RECOVERY_NOT_SUPPORTED; // needs ErrorRecoveryLevel 2
    }
    c.fillSeq(true);
    const w = c.writer;
    w.begin();
    buildLogoutResponse(
      w.buf,
      w.off,
      ittValue,
      response,
      s.params.DefaultTime2Wait,
      s.params.DefaultTime2Retain,
      c.seq,
    );
    w.sendInline(0);
    if (response !== LogoutResponse.CLOSED) return false;
    c.log.info({ reason }, 'logout');
    return true;
  }

  /** Ask the initiator to log out (RFC 7143 11.9.1, AsyncEvent 1), e.g. when draining. */
  request(time2WaitSec: number): void {
    const c = this.conn;
    c.fillSeq(true);
    const w = c.writer;
    w.begin();
    buildAsyncMessage(w.buf, w.off, AsyncEvent.LOGOUT_REQUEST, 0, 0, time2WaitSec, 0, c.seq);
    w.sendInline(0);
  }
}
