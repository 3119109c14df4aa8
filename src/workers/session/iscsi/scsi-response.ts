/**
 * The end of a SCSI task on the wire (RFC 7143 11.4, 11.7): Data-In PDUs for read data,
 * status in the last Data-In when there is no sense ("phase collapse") or a SCSI
 * Response otherwise, residual overflow/underflow (11.4.5), and the task leaving the
 * connection's books (CmdSN window accounting, ITT map, task management waiting on it).
 * Read data goes to the socket straight from the task's slab buffer; the task returns to
 * the pool once the PDU carrying its last bytes is flushed.
 */
import { ResidualFlag, buildDataIn, buildScsiResponse, putU16 } from '../../../shared/iscsi/pdu.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import type { Task } from '../task.ts';
import type { ConnectionCore } from './connection-core.ts';

export class ResponseSender {
  private readonly conn: ConnectionCore;

  constructor(conn: ConnectionCore) {
    this.conn = conn;
  }

  /** Send Data-In and/or SCSI Response for a finished task. */
  send(t: Task): void {
    const c = this.conn;
    const w = c.writer;
    const s = c.session!;
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
    this.finish(t, true);
    const good =
      t.senseLength === 0 && (t.status === ScsiStatus.GOOD || t.status === ScsiStatus.CONDITION_MET);
    if (xfer > 0) {
      // Data-In PDUs of at most the initiator's MaxRecvDataSegmentLength; F closes each
      // MaxBurstLength sequence (RFC 7143 11.7.1). Status rides in the last Data-In
      // when there is no sense data (11.7.4, "phase collapse"). The target always sends
      // in offset order, whatever DataPDUInOrder/DataSequenceInOrder say (13.18, 13.19
      // permit order, they do not require disorder).
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
        c.fillSeq(withStatus);
        w.begin();
        buildDataIn(
          w.buf,
          w.off,
          t.itt,
          endOfBurst,
          withStatus,
          t.status,
          residualFlag,
          residual,
          n,
          dataSN,
          offset,
          c.seq,
        );
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
    const c = this.conn;
    const w = c.writer;
    c.fillSeq(true);
    w.begin();
    const dsl = t.senseLength > 0 ? t.senseLength + 2 : 0;
    buildScsiResponse(w.buf, w.off, t.itt, t.status, residualFlag, residual, dsl, c.seq, expDataSN);
    if (dsl > 0) {
      // RFC 7143 11.4.7.2: the data segment is SenseLength (2 bytes) then the sense data.
      const at = w.inlineOffset;
      putU16(w.buf, at, t.senseLength);
      t.sense.copy(w.buf, at + 2, 0, t.senseLength);
    }
    w.sendInline(dsl, t);
  }

  /** The task leaves the connection's books: window accounting, ITT map, pending TMFs. */
  finish(t: Task, answered: boolean): void {
    const c = this.conn;
    if (c.tasks.get(t.itt) === t) c.tasks.delete(t.itt);
    const s = c.session;
    if (s && !t.immediate) s.outstanding--;
    if (!answered) t.owner = null;
    const tmf = t.tmf;
    if (tmf !== null) {
      t.tmf = null;
      tmf.settle();
    }
  }

  /** End a task without any response (aborted, or its connection is gone) and free it. */
  drop(t: Task): void {
    this.finish(t, false);
    this.conn.ctx.pool.release(t);
  }
}
