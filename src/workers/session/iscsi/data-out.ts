/**
 * Write data for SCSI commands (RFC 7143 10.7, 10.8, 11.7, 11.8): the unsolicited burst
 * (immediate data and Data-Out with the reserved Target Transfer Tag, up to
 * FirstBurstLength when InitialR2T=No), then R2Ts for the rest, MaxBurstLength each and
 * at most MaxOutstandingR2T at a time, and the checks every Data-Out PDU must pass
 * before its payload is copied into the task's slab buffer.
 */
import { Field, RESERVED_TAG, RejectReason, buildR2T, finalBit, u32 } from '../../../shared/iscsi/pdu.ts';
import { TaskState, type Task } from '../task.ts';
import type { ConnectionCore } from './connection-core.ts';
import { DataRoute } from './pdu-receiver.ts';

export class DataOutEngine {
  private readonly conn: ConnectionCore;
  /** The task of the Data-Out PDU being received (header stage to PDU stage). */
  private current: Task | null = null;

  constructor(conn: ConnectionCore) {
    this.conn = conn;
  }

  /**
   * The command PDU of a write is in (with its immediate data, `t.received` bytes) and
   * more data is due: open the unsolicited burst or start soliciting.
   */
  begin(t: Task): void {
    const s = this.conn.session!;
    // RFC 7143 10.6 / 13.11: unsolicited data may follow when InitialR2T=No and the
    // command PDU did not set F; it is bounded by FirstBurstLength. R2Ts start once
    // that burst has ended, from wherever it ended.
    if (!s.params.InitialR2T && !finalBit(this.conn.rx.hdr, 0)) {
      t.unsolicitedLimit = Math.min(s.params.FirstBurstLength, t.data.length);
      t.unsolicitedOpen = t.received < t.unsolicitedLimit;
    } else {
      t.unsolicitedLimit = t.received;
    }
    if (t.unsolicitedOpen) return;
    this.startR2Ts(t);
  }

  /** Header stage of a Data-Out PDU: find its task, check its place, route its payload. */
  onHeader(): void {
    const c = this.conn;
    const h = c.rx.hdr;
    const dsl = c.rx.dsl;
    this.current = null;
    c.rx.discard();
    const ittValue = u32(h, Field.ITT);
    const ttt = u32(h, Field.TTT);
    const t = c.tasks.get(ittValue);
    const offset = u32(h, Field.BUFFER_OFFSET);
    if (t === undefined || t.state !== TaskState.RECEIVING || !t.write) {
      // RFC 7143 11.7 / 7.x: Data-Out for an unknown or finished task is discarded (it
      // may race an abort); the initiator learns nothing wrong happened.
      c.log.debug({ itt: ittValue }, 'Data-Out for no receiving task: discarded');
      return;
    }
    if (ttt !== RESERVED_TAG && ttt !== t.ttt) {
      // RFC 7143 11.7.4: a solicited Data-Out echoes the R2T's Target Transfer Tag.
      c.rejectAfterData(RejectReason.INVALID_PDU_FIELD);
      return;
    }
    // We negotiate DataPDUInOrder=Yes and DataSequenceInOrder=Yes, so a write's data
    // arrives at continuously increasing offsets with no gaps or overlays (RFC 7143
    // 13.18, 13.19): every Data-Out must start exactly where the data so far ends, and
    // stay inside what was offered (unsolicited burst) or solicited (R2Ts). Anything
    // else would let a write complete with bytes the initiator never sent (leftover
    // slab memory), so at ErrorRecoveryLevel 0 the connection is dropped (7.1.5).
    const end = offset + dsl;
    const limit = ttt === RESERVED_TAG ? (t.unsolicitedOpen ? t.unsolicitedLimit : 0) : t.nextR2TOffset;
    if (offset !== t.received || end > limit) {
      c.log.warn(
        { itt: ittValue, offset, length: dsl, expectedOffset: t.received, limit },
        'Data-Out outside the expected sequence: dropping connection',
      );
      c.sendReject(RejectReason.PROTOCOL_ERROR, h);
      c.close('Data-Out sequence error');
      return;
    }
    const dataSN = u32(h, Field.DATA_SN);
    if (dataSN !== t.expectedDataSN) {
      // RFC 7143 11.7.5: DataSN counts the Data-Out PDUs of each sequence from 0. A gap
      // or repeat means lost or reordered data; ErrorRecoveryLevel 0 has no way to
      // re-request it (no recovery R2T), so the connection is dropped (7.1.5, 7.4).
      c.log.warn({ itt: ittValue, dataSN, expected: t.expectedDataSN }, 'Data-Out DataSN out of sequence');
      c.close('DataSN error');
      return;
    }
    this.current = t;
    c.rx.into(DataRoute.DATA_OUT, t.data, offset);
  }

  /** PDU stage of a Data-Out: its payload is in the task's buffer. */
  onPdu(): void {
    const t = this.current;
    this.current = null;
    if (t === null) return;
    const c = this.conn;
    const h = c.rx.hdr;
    t.received += c.rx.dsl;
    t.expectedDataSN++;
    const solicited = u32(h, Field.TTT) !== RESERVED_TAG;
    if (finalBit(h, 0)) {
      // F ends the sequence (an R2T's burst or the unsolicited burst); the next one
      // numbers its Data-Outs from 0 again (RFC 7143 11.7.5).
      t.expectedDataSN = 0;
      if (solicited) {
        // A solicited burst ends exactly at its R2T's end (bursts are MaxBurstLength
        // long from r2tBase, the last one shorter): F anywhere else is a protocol error.
        const mbl = c.session!.params.MaxBurstLength;
        if ((t.received - t.r2tBase) % mbl !== 0 && t.received !== t.data.length) {
          c.log.warn({ itt: t.itt, received: t.received }, 'F bit before the end of an R2T burst');
          c.sendReject(RejectReason.PROTOCOL_ERROR, h);
          c.close('short R2T burst');
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
      c.intake.dataComplete(t);
      return;
    }
    this.sendR2Ts(t);
  }

  /** Connection teardown. */
  clear(): void {
    this.current = null;
  }

  private startR2Ts(t: Task): void {
    t.nextR2TOffset = t.received;
    t.r2tBase = t.received;
    this.sendR2Ts(t);
  }

  /** Solicit the rest of a write (RFC 7143 10.8): bursts of MaxBurstLength, MaxOutstandingR2T at a time. */
  private sendR2Ts(t: Task): void {
    const c = this.conn;
    const p = c.session!.params;
    const w = c.writer;
    while (t.outstandingR2T < p.MaxOutstandingR2T && t.nextR2TOffset < t.data.length) {
      const len = Math.min(p.MaxBurstLength, t.data.length - t.nextR2TOffset);
      c.fillSeq(false);
      w.begin();
      buildR2T(w.buf, w.off, t.lunField, 0, t.itt, t.ttt, t.r2tSN, t.nextR2TOffset, len, c.seq);
      w.sendInline(0);
      t.r2tSN++;
      t.nextR2TOffset += len;
      t.outstandingR2T++;
    }
  }
}
