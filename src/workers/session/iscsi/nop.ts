/**
 * NOP-Out / NOP-In (RFC 7143 11.18, 11.19): answering the initiator's pings, and the
 * target's own pings every `nopIntervalSec` to detect initiators that vanished without
 * closing TCP. A ping not answered within `nopTimeoutSec` drops the connection.
 */
import { Field, RESERVED_TAG, buildNopIn, isImmediate, u32 } from '../../../shared/iscsi/pdu.ts';
import type { ConnectionCore } from './connection-core.ts';

const EMPTY = Buffer.alloc(0);

export class NopHandler {
  private readonly conn: ConnectionCore;
  private timer: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private outstanding = false;
  /** Target Transfer Tag of the last ping (the initiator echoes it). */
  private ttt = 1;

  constructor(conn: ConnectionCore) {
    this.conn = conn;
  }

  /** A NOP-Out PDU: a ping to answer, or the answer to ours. */
  onPdu(): void {
    const c = this.conn;
    const h = c.rx.hdr;
    const s = c.session!;
    const ittValue = u32(h, Field.ITT);
    const ttt = u32(h, Field.TTT);
    if (!isImmediate(h, 0) && ittValue !== RESERVED_TAG) c.advanceCmdSN(u32(h, Field.CMD_SN));
    if (ittValue === RESERVED_TAG) {
      // RFC 7143 11.18: the reply to our NOP-In ping (TTT echoed); no response.
      if (ttt !== RESERVED_TAG && ttt === this.ttt) {
        this.outstanding = false;
        if (this.deadline) clearTimeout(this.deadline);
        this.deadline = null;
      }
      return;
    }
    // A ping from the initiator: echo its data in a NOP-In, at most the initiator's
    // MaxRecvDataSegmentLength of it (RFC 7143 11.18.5, 13.12).
    const n = Math.min(c.rx.dsl, s.params.InitiatorMaxRecvDataSegmentLength);
    c.fillSeq(true);
    const w = c.writer;
    w.begin();
    buildNopIn(w.buf, w.off, h, Field.LUN, ittValue, RESERVED_TAG, n, c.seq);
    c.sendControlData(n > 0 ? c.rx.ctrl.subarray(0, n) : EMPTY);
  }

  /** Full feature phase began: ping every nopIntervalSec (0: never). */
  start(): void {
    const c = this.conn;
    const intervalMs = c.ctx.tuning.nopIntervalSec * 1000;
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => this.ping(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.deadline) clearTimeout(this.deadline);
    this.timer = null;
    this.deadline = null;
  }

  private ping(): void {
    const c = this.conn;
    if (!c.isFullFeature || this.outstanding) return;
    this.outstanding = true;
    this.ttt = (this.ttt + 1) & 0x7fffffff || 1;
    c.fillSeq(false);
    const w = c.writer;
    w.begin();
    // RFC 7143 11.19: a target ping has ITT 0xffffffff and a TTT the initiator echoes.
    buildNopIn(w.buf, w.off, null, 0, RESERVED_TAG, this.ttt, 0, c.seq);
    w.sendInline(0);
    // No answer within nopTimeoutSec: the initiator is gone (or the path is), so the
    // connection is dropped and its tasks cleaned up (RFC 7143 7.1.1, 7.14).
    this.deadline = setTimeout(() => {
      c.log.warn({ timeoutSec: c.ctx.tuning.nopTimeoutSec }, 'NOP-In ping not answered: dropping connection');
      c.close('nop timeout');
    }, c.ctx.tuning.nopTimeoutSec * 1000);
    this.deadline.unref();
  }
}
