/**
 * Text Request / Text Response in full feature phase (RFC 7143 11.10, 11.11): requests
 * split over several PDUs (C bit) are joined, bounded; SendTargets and other keys are
 * answered by the discovery module; answers longer than the initiator's
 * MaxRecvDataSegmentLength go out in C-bit parts, each asked for with an empty Text
 * Request echoing the Target Transfer Tag (11.11.2, 11.11.4). Not a hot path.
 */
import {
  Field,
  RESERVED_TAG,
  RejectReason,
  buildTextResponse,
  isImmediate,
  u32,
} from '../../../shared/iscsi/pdu.ts';
import { handleTextRequest } from './login/discovery.ts';
import type { LoginTargetInfo } from './login/types.ts';
import { formatTargetAddress, loginAccess } from '../routes.ts';
import type { ConnectionCore } from './connection-core.ts';

/** Largest Text Request accepted (all C-bit parts together). */
const MAX_REQUEST_BYTES = 65536;

interface LongAnswer {
  itt: number;
  ttt: number;
  data: Buffer;
  offset: number;
}

export class TextExchange {
  private readonly conn: ConnectionCore;
  /** Parts of a multi-PDU request received so far. */
  private pending: Buffer | null = null;
  /** A long Text Response being sent in parts, and the tags naming it. */
  private out: LongAnswer | null = null;
  private ttt = 0;

  constructor(conn: ConnectionCore) {
    this.conn = conn;
  }

  /** A Text Request PDU. */
  onPdu(): void {
    const c = this.conn;
    const h = c.rx.hdr;
    const dsl = c.rx.dsl;
    const s = c.session!;
    if (!isImmediate(h, 0)) c.advanceCmdSN(u32(h, Field.CMD_SN));
    const ittValue = u32(h, Field.ITT);
    const cont = (h[1]! & 0x40) !== 0;
    const ttt = u32(h, Field.TTT);
    const out = this.out;
    if (ttt !== RESERVED_TAG && out !== null && out.itt === ittValue && out.ttt === ttt && dsl === 0) {
      // The initiator asks for the next part of a long answer (RFC 7143 11.10.4).
      this.sendPart(out);
      return;
    }
    // Any other request ends a pending long answer (RFC 7143 11.10.4: a new ITT or a
    // reserved TTT resets the exchange).
    this.out = null;
    // Accumulate a multi-PDU request (C bit, RFC 7143 11.10.2), bounded.
    const part = c.rx.ctrl.subarray(0, dsl);
    this.pending = this.pending ? Buffer.concat([this.pending, part]) : Buffer.from(part);
    if (this.pending.length > MAX_REQUEST_BYTES) {
      this.pending = null;
      c.sendReject(RejectReason.PROTOCOL_ERROR, h);
      return;
    }
    if (cont) {
      c.fillSeq(true);
      const w = c.writer;
      w.begin();
      buildTextResponse(w.buf, w.off, false, false, ittValue, 0x1, 0, c.seq);
      w.sendInline(0);
      return;
    }
    const request = this.pending;
    this.pending = null;
    const answer = handleTextRequest(request, {
      targets: this.targets(),
      sessionTarget: s.params.SessionType === 'Normal' ? s.params.TargetName : undefined,
      initiatorName: s.params.InitiatorName,
    });
    if (!answer.ok) {
      c.log.warn({ reason: answer.reason }, 'malformed Text Request');
      c.sendReject(RejectReason.PROTOCOL_ERROR, h);
      return;
    }
    // An answer longer than the initiator's MaxRecvDataSegmentLength goes out in parts
    // with the C bit and a Target Transfer Tag; the initiator asks for each next part
    // with an empty Text Request echoing that tag (RFC 7143 11.11.2, 11.11.4).
    this.ttt = (this.ttt + 1) & 0x7fffffff || 1;
    this.sendPart({ itt: ittValue, ttt: this.ttt, data: answer.data, offset: 0 });
  }

  private sendPart(out: LongAnswer): void {
    const c = this.conn;
    const max = c.session!.params.InitiatorMaxRecvDataSegmentLength;
    const n = Math.min(max, out.data.length - out.offset);
    const last = out.offset + n >= out.data.length;
    const part = out.data.subarray(out.offset, out.offset + n);
    out.offset += n;
    this.out = last ? null : out;
    c.fillSeq(true);
    const w = c.writer;
    w.begin();
    buildTextResponse(w.buf, w.off, last, !last, out.itt, last ? RESERVED_TAG : out.ttt, n, c.seq);
    c.sendControlData(part);
  }

  /** Every target, as SendTargets sees it from this portal (discovery decides what to list). */
  private targets(): LoginTargetInfo[] {
    const c = this.conn;
    const out: LoginTargetInfo[] = [];
    const portal = c.ctx.portals[c.portalIndex]!;
    for (const t of c.ctx.targets.values()) {
      out.push({
        iqn: t.iqn,
        alias: t.alias,
        portalGroupTag: portal.tag,
        addresses: t.portals.map((i) => formatTargetAddress(c.ctx.portals[i]!)),
        auth: t.auth,
        ...loginAccess(t),
      });
    }
    return out;
  }
}
