/**
 * Write data for SCSI commands (RFC 7143 10.7, 10.8, 11.7, 11.8): the unsolicited burst
 * (immediate data and Data-Out with the reserved Target Transfer Tag, up to
 * FirstBurstLength when InitialR2T=No), then R2Ts for the rest, MaxBurstLength each and
 * at most MaxOutstandingR2T at a time, and the checks every Data-Out PDU must pass
 * before its payload is copied into the task's slab buffer.
 *
 * Two ways to check a Data-Out, chosen per session by the negotiated ordering keys
 * (RFC 7143 13.18 DataPDUInOrder, 13.19 DataSequenceInOrder):
 *
 *  - Both Yes (what every common initiator negotiates): data arrives at continuously
 *    increasing offsets, so one counter (`received`) says everything; each PDU must
 *    start exactly there and DataSN must count up from 0 in each sequence.
 *  - Either No: PDUs (within a sequence) and/or sequences may arrive in any order.
 *    Each task tracks the byte ranges received and its open sequences (DataSequences);
 *    every PDU must lie inside one open sequence, may not touch a byte that has
 *    already arrived (11.7.6: no overlays; at ErrorRecoveryLevel 0 nothing is ever
 *    retransmitted, so a repeated byte is a broken or hostile sender), and the F bit
 *    closes a sequence only once every byte of it is in. The command runs only when
 *    every byte of the transfer has arrived. R2Ts are still issued in offset order.
 *
 * Anything else is a protocol error: it would let a write complete with bytes the
 * initiator never sent (leftover slab memory), and ErrorRecoveryLevel 0 has no recovery
 * R2T or SNACK, so the PDU is rejected and the connection dropped (RFC 7143 7.1.5).
 */
import { Field, RESERVED_TAG, RejectReason, buildR2T, finalBit, u32 } from '../../../shared/iscsi/pdu.ts';
import type { SessionParams } from '../../../shared/iscsi/session-params.ts';
import { TaskState, type Task } from '../task.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { performance } from 'node:perf_hooks';
import type { ConnectionCore } from './connection-core.ts';
import { DataRoute } from './pdu-receiver.ts';
import { AddResult } from './received-ranges.ts';
import { DataSequences, MAX_OPEN_R2T, MAX_RANGES, MIN_RANGES, UNSOLICITED } from './data-sequences.ts';

export class DataOutEngine {
  private readonly conn: ConnectionCore;
  /** The task of the Data-Out PDU being received (header stage to PDU stage). */
  private current: Task | null = null;
  /** Its sequence slot (out-of-order mode). */
  private currentSlot = 0;
  /** DataPDUInOrder and DataSequenceInOrder as negotiated (RFC 7143 13.18, 13.19). */
  private pduInOrder = true;
  private seqInOrder = true;
  /** Both Yes: the single-counter checks. */
  private ordered = true;
  /** Out-of-order mode: R2Ts outstanding per task at most, and received pieces per write. */
  private maxOpenR2T = 1;
  private rangeCapacity = MIN_RANGES;
  /**
   * Slab bytes held by this session's writes whose data is still due. Bounded by
   * maxPendingWriteBytes so one initiator announcing large writes and withholding the
   * data cannot take the slab every session of the worker shares (issue 12).
   */
  pendingBytes = 0;
  private sweep: NodeJS.Timeout | null = null;

  constructor(conn: ConnectionCore) {
    this.conn = conn;
  }

  /** The session's parameters are known (full feature phase). */
  configure(p: SessionParams, maxTransferLength: number): void {
    this.pduInOrder = p.DataPDUInOrder;
    this.seqInOrder = p.DataSequenceInOrder;
    this.ordered = this.pduInOrder && this.seqInOrder;
    this.maxOpenR2T = Math.min(p.MaxOutstandingR2T, MAX_OPEN_R2T);
    // Enough ranges for any arrival order of PDUs as large as we accept (each arrival
    // out of order opens at most one gap, so n pieces leave at most ceil(n/2) ranges),
    // over everything that can be in flight for one task: the unsolicited burst plus
    // the open R2Ts. Bounded both ways (data-sequences.ts).
    const window = Math.min(maxTransferLength, p.FirstBurstLength + this.maxOpenR2T * p.MaxBurstLength);
    const pieces = Math.ceil(window / p.TargetMaxRecvDataSegmentLength);
    this.rangeCapacity = Math.min(MAX_RANGES, Math.max(MIN_RANGES, Math.ceil(pieces / 2) + 2));
  }

  /**
   * May a write of `len` bytes wait for its data (it would hold them in the slab)? The
   * caller answers TASK SET FULL when not: the initiator retries once earlier writes
   * of this session have their data.
   */
  mayHold(len: number): boolean {
    const cap = this.conn.ctx.tuning.maxPendingWriteBytes ?? Number.MAX_SAFE_INTEGER;
    const worker = this.conn.ctx.pendingWrites;
    // Each session may always have one write waiting (it must make progress); beyond that
    // both its own cap and the worker-wide one apply.
    if (this.pendingBytes === 0) return worker.bytes + len <= worker.limit || worker.bytes === 0;
    return this.pendingBytes + len <= cap && worker.bytes + len <= worker.limit;
  }

  /** `t` holds its buffer for data still due (counted until settled). */
  hold(t: Task): void {
    t.pendingBytes = t.data.length;
    this.pendingBytes += t.pendingBytes;
    this.conn.ctx.pendingWrites.bytes += t.pendingBytes;
    t.lastDataMs = performance.now();
    if (this.sweep === null) this.startSweep();
  }

  /** `t` no longer waits for data (all in, aborted or timed out). */
  settle(t: Task): void {
    if (t.pendingBytes === 0) return;
    this.pendingBytes -= t.pendingBytes;
    this.conn.ctx.pendingWrites.bytes -= t.pendingBytes;
    t.pendingBytes = 0;
  }

  /**
   * Data-Out timeout (iscsi.dataOutTimeoutSec): a write whose data stopped coming ends
   * with CHECK CONDITION, ABORTED COMMAND, INITIATOR RESPONSE TIMEOUT (SPC-4 4Bh/06h)
   * and gives its slab buffer back; a late Data-Out for it is discarded (its TTT names
   * a task generation that is gone). NOP-In pings keeping the connection alive do not
   * keep a stalled write alive.
   */
  private startSweep(): void {
    const sec = this.conn.ctx.tuning.dataOutTimeoutSec ?? 0;
    if (sec <= 0) return;
    const limitMs = sec * 1000;
    this.sweep = setInterval(() => {
      const c = this.conn;
      if (!c.receiving) return;
      const now = performance.now();
      for (const t of c.tasks.values()) {
        if (t.state !== TaskState.RECEIVING || t.pendingBytes === 0 || now - t.lastDataMs < limitMs) continue;
        c.log.warn({ itt: t.itt, received: t.received, expected: t.data.length }, 'write data did not arrive within dataOutTimeoutSec: command ended');
        this.settle(t);
        c.intake.unhold(t);
        t.status = ScsiStatus.CHECK_CONDITION;
        t.senseLength = c.ctx.writeSense(t.sense, 'INITIATOR_RESPONSE_TIMEOUT');
        t.state = TaskState.RESPONDING;
        c.responses.send(t);
      }
      if (this.pendingBytes === 0 && this.sweep !== null) {
        clearInterval(this.sweep);
        this.sweep = null;
      }
    }, Math.min(1000, limitMs / 4));
    this.sweep.unref();
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
    if (!this.ordered) {
      // One tracker per pooled task object, reused by every write on it.
      let d = t.sequences;
      if (d === null) d = t.sequences = new DataSequences(this.rangeCapacity);
      else d.reset(this.rangeCapacity);
      d.ranges.add(0, t.received); // immediate data
      if (t.unsolicitedOpen) d.open(UNSOLICITED, 0, t.unsolicitedLimit);
    }
    if (t.unsolicitedOpen) return;
    this.startR2Ts(t);
  }

  /** Header stage of a Data-Out PDU: find its task, check its place, route its payload. */
  onHeader(): void {
    const c = this.conn;
    const h = c.rx.hdr;
    this.current = null;
    c.rx.discard();
    const ittValue = u32(h, Field.ITT);
    const ttt = u32(h, Field.TTT);
    const t = c.tasks.get(ittValue);
    if (t === undefined || t.state !== TaskState.RECEIVING || !t.write || t.held) {
      // RFC 7143 11.7 / 7.x: Data-Out for an unknown or finished task is discarded (it
      // may race an abort); the initiator learns nothing wrong happened. A task whose
      // data is all in but that waits behind a CmdSN gap (held) expects nothing more
      // either: a stray PDU must not complete it a second time.
      c.log.debug({ itt: ittValue }, 'Data-Out for no receiving task: discarded');
      return;
    }
    if (ttt !== RESERVED_TAG && ttt !== t.ttt) {
      // RFC 7143 11.7.4: a solicited Data-Out echoes the R2T's Target Transfer Tag.
      c.rejectAfterData(RejectReason.INVALID_PDU_FIELD);
      return;
    }
    if (this.ordered) this.orderedHeader(t, ttt);
    else this.unorderedHeader(t, ttt);
  }

  /** DataPDUInOrder=Yes and DataSequenceInOrder=Yes (RFC 7143 13.18, 13.19). */
  private orderedHeader(t: Task, ttt: number): void {
    const c = this.conn;
    const h = c.rx.hdr;
    const dsl = c.rx.dsl;
    const offset = u32(h, Field.BUFFER_OFFSET);
    // Data arrives at continuously increasing offsets with no gaps or overlays: every
    // Data-Out starts exactly where the data so far ends and stays inside what was
    // offered (unsolicited burst) or solicited (R2Ts).
    const end = offset + dsl;
    const limit = ttt === RESERVED_TAG ? (t.unsolicitedOpen ? t.unsolicitedLimit : 0) : t.nextR2TOffset;
    if (offset !== t.received || end > limit) {
      this.sequenceError(t, offset, `expected offset ${t.received}, limit ${limit}`);
      return;
    }
    const dataSN = u32(h, Field.DATA_SN);
    if (dataSN !== t.expectedDataSN) {
      this.dataSNError(t, dataSN, t.expectedDataSN);
      return;
    }
    this.current = t;
    c.rx.into(DataRoute.DATA_OUT, t.data, offset);
  }

  /**
   * DataPDUInOrder=No and/or DataSequenceInOrder=No. The PDU's bytes are booked here,
   * before its payload arrives: if the payload never completes (data digest error, the
   * socket closes) the connection is closed anyway, so the booking never outlives it.
   */
  private unorderedHeader(t: Task, ttt: number): void {
    const c = this.conn;
    const h = c.rx.hdr;
    const dsl = c.rx.dsl;
    const d = t.sequences;
    const offset = u32(h, Field.BUFFER_OFFSET);
    const end = offset + dsl;
    if (d === null) {
      // A write that never expected Data-Out (all its data came as immediate data).
      this.sequenceError(t, offset, 'no data sequence open');
      return;
    }
    // The sequence this PDU belongs to: the unsolicited burst (reserved TTT), or the
    // open R2T whose range holds its offset (R2Ts of a task share one TTT).
    const slot = ttt === RESERVED_TAG ? (d.isOpen(UNSOLICITED) ? UNSOLICITED : -1) : d.solicitedAt(offset);
    if (slot < 0 || end > d.end[slot]!) {
      // Outside every open sequence, or across the end of its own (a PDU belongs to one
      // sequence; 11.7.6: offset + length within what was offered or solicited).
      this.sequenceError(t, offset, 'not inside one open data sequence');
      return;
    }
    if (this.seqInOrder && slot !== UNSOLICITED && !d.oldestR2T(slot)) {
      // 13.19: with DataSequenceInOrder=Yes sequences are sent in increasing offset
      // order, one after the other (the unsolicited burst always comes first).
      this.sequenceError(t, offset, 'sequence out of order (DataSequenceInOrder=Yes)');
      return;
    }
    const dataSN = u32(h, Field.DATA_SN);
    if (this.pduInOrder) {
      // 13.18: PDUs of a sequence at continuously increasing offsets, DataSN 0, 1, ...
      if (offset !== d.next[slot]) {
        this.sequenceError(t, offset, `expected offset ${d.next[slot]} (DataPDUInOrder=Yes)`);
        return;
      }
      if (dataSN !== d.pdus[slot]) {
        this.dataSNError(t, dataSN, d.pdus[slot]!);
        return;
      }
    }
    const added = d.ranges.add(offset, end);
    if (added !== AddResult.OK) {
      this.sequenceError(
        t,
        offset,
        added === AddResult.OVERLAP ? 'bytes already received (overlay)' : 'too many separate pieces of data',
      );
      return;
    }
    d.next[slot] = end;
    d.countPdu(slot, dataSN);
    t.received += dsl;
    this.current = t;
    this.currentSlot = slot;
    c.rx.into(DataRoute.DATA_OUT, t.data, offset);
  }

  private sequenceError(t: Task, offset: number, why: string): void {
    const c = this.conn;
    c.log.warn(
      { itt: t.itt, offset, length: c.rx.dsl, why },
      'Data-Out outside the expected sequence: dropping connection',
    );
    c.sendReject(RejectReason.PROTOCOL_ERROR, c.rx.hdr);
    c.abort('Data-Out sequence error');
  }

  private dataSNError(t: Task, dataSN: number, expected: number): void {
    // RFC 7143 11.7.5: DataSN counts the Data-Out PDUs of each sequence from 0. A gap
    // or repeat means lost or reordered data; ErrorRecoveryLevel 0 has no way to
    // re-request it (no recovery R2T), so the connection is dropped (7.1.5, 7.4).
    this.conn.log.warn({ itt: t.itt, dataSN, expected }, 'Data-Out DataSN out of sequence');
    this.conn.close('DataSN error');
  }

  /** PDU stage of a Data-Out: its payload is in the task's buffer. */
  onPdu(): void {
    const t = this.current;
    this.current = null;
    if (t === null) return;
    if (this.ordered) this.orderedPdu(t);
    else this.unorderedPdu(t, this.currentSlot);
  }

  private orderedPdu(t: Task): void {
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
          c.abort('short R2T burst');
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
    this.afterData(t);
  }

  private unorderedPdu(t: Task, slot: number): void {
    const c = this.conn;
    const h = c.rx.hdr;
    const d = t.sequences!;
    if (finalBit(h, 0)) {
      // F marks the last PDU of the sequence sent (RFC 7143 11.7.1); TCP keeps a
      // connection's PDUs in order, so every byte of the sequence must be in by now.
      // The unsolicited burst may end early (R2Ts then solicit the rest), but without
      // a gap: what has arrived must be one prefix [0, x).
      const complete =
        slot === UNSOLICITED
          ? d.ranges.prefixEnd() === t.received
          : d.ranges.covers(d.start[slot]!, d.end[slot]!);
      if (!complete) {
        c.log.warn({ itt: t.itt, received: t.received }, 'F bit with data of the sequence missing');
        c.sendReject(RejectReason.PROTOCOL_ERROR, h);
        c.abort('incomplete data sequence');
        return;
      }
      if (!this.pduInOrder && !d.dataSNsConsistent(slot)) {
        // 11.7.5: the sequence's PDUs must be numbered 0..n-1, whatever order they came in.
        this.dataSNError(t, d.maxDataSN[slot]!, d.pdus[slot]! - 1);
        return;
      }
      d.close(slot);
      if (slot === UNSOLICITED) {
        t.unsolicitedOpen = false;
        if (t.received < t.data.length) {
          this.startR2Ts(t);
          return;
        }
      }
    } else if (slot === UNSOLICITED && d.ranges.prefixEnd() === t.unsolicitedLimit) {
      // A full unsolicited burst without F: tolerated as in order, the rest is solicited.
      d.close(UNSOLICITED);
      t.unsolicitedOpen = false;
      if (t.received < t.data.length) {
        this.startR2Ts(t);
        return;
      }
    }
    this.afterData(t);
  }

  /**
   * All data in: the command goes on. Otherwise solicit what is missing, unless the
   * unsolicited burst is still open: R2Ts start where it ends (RFC 7143 10.6), never
   * for data the initiator is sending unasked.
   */
  private afterData(t: Task): void {
    if (t.received >= t.data.length) {
      this.settle(t);
      this.conn.intake.dataComplete(t);
      return;
    }
    t.lastDataMs = performance.now();
    if (!t.unsolicitedOpen) this.sendR2Ts(t);
  }

  /** Connection teardown. */
  clear(): void {
    this.current = null;
    if (this.sweep !== null) clearInterval(this.sweep);
    this.sweep = null;
    this.conn.ctx.pendingWrites.bytes -= this.pendingBytes;
    this.pendingBytes = 0;
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
    const d = this.ordered ? null : t.sequences!;
    for (;;) {
      const outstanding = d === null ? t.outstandingR2T : d.openR2T;
      const max = d === null ? p.MaxOutstandingR2T : this.maxOpenR2T;
      if (outstanding >= max || t.nextR2TOffset >= t.data.length) return;
      const len = Math.min(p.MaxBurstLength, t.data.length - t.nextR2TOffset);
      c.fillSeq(false);
      w.begin();
      buildR2T(w.buf, w.off, t.lunField, 0, t.itt, t.ttt, t.r2tSN, t.nextR2TOffset, len, c.seq);
      w.sendInline(0);
      if (d === null) t.outstandingR2T++;
      else d.openR2TSequence(t.nextR2TOffset, t.nextR2TOffset + len);
      t.r2tSN++;
      t.nextR2TOffset += len;
    }
  }
}
