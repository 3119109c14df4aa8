/**
 * SCSI Command intake (RFC 7143 11.3): checks a command's header against the session
 * (CmdSN window, ITT, immediate data rules, direction bits), gives it a pooled task and
 * a slab buffer, hands writes to the Data-Out engine, and delivers complete commands to
 * the SCSI layer in CmdSN order (RFC 7143 3.2.2.1): to the LUN worker over its ring, or
 * answered here when no logical unit is involved (REPORT LUNS, LUNs that do not exist).
 */
import { Field, RejectReason, ScsiCmdFlags, decodeLun, isImmediate, u32 } from '../../../shared/iscsi/pdu.ts';
import { ScsiCommandFields, ScsiStatus, TaskAttribute, type ScsiCommand } from '../../../shared/scsi/command.ts';
import { Opcode as ScsiOp } from '../../../shared/scsi/opcodes.ts';
import { cdbLengthOf } from '../../../shared/scsi/cdb.ts';
import { buildReportLuns } from '../../../shared/scsi/report-luns.ts';
import { UaEvent } from '../../../shared/ring/descriptors.ts';
import { executeWithoutLun } from '../../../shared/scsi/no-lun.ts';
import { TaskState, type Task } from '../task.ts';
import type { ConnectionCore } from './connection-core.ts';
import { DataRoute } from './pdu-receiver.ts';
import { snLess } from './session.ts';

/** A reusable ScsiCommand for commands answered on this worker (no LU involved). */
class LocalCommand extends ScsiCommandFields implements ScsiCommand {
  readonly ioTrampoline = (): void => {};
  finish(): void {}
}

export class CommandIntake {
  private readonly conn: ConnectionCore;
  private readonly local = new LocalCommand();
  /** The task of the SCSI Command PDU being received (header stage to PDU stage). */
  private current: Task | null = null;
  /** Tasks with all data, waiting for a lower CmdSN (gap) to arrive. */
  private held: Task[] = [];

  constructor(conn: ConnectionCore) {
    this.conn = conn;
  }

  /** Header stage of a SCSI Command PDU: admit it (or not) and route its immediate data. */
  onHeader(): void {
    const c = this.conn;
    const h = c.rx.hdr;
    const dsl = c.rx.dsl;
    const s = c.session!;
    const ctx = c.ctx;
    const imm = isImmediate(h, 0);
    const cmdSN = u32(h, Field.CMD_SN);
    this.current = null;
    c.rx.discard();
    if (s.params.SessionType !== 'Normal') {
      c.rejectAfterData(RejectReason.PROTOCOL_ERROR); // SCSI commands are not allowed in discovery sessions
      return;
    }
    if (!imm && (!s.inWindow(cmdSN) || s.ahead.has(cmdSN))) {
      // RFC 7143 3.2.2.1: non-immediate commands outside the window (or repeating a
      // CmdSN already received) are silently ignored.
      c.log.debug({ cmdSN, expCmdSN: s.expCmdSN, maxCmdSN: s.maxCmdSN }, 'CmdSN outside window: dropped');
      return;
    }
    if (ctx.draining) {
      // Shutting down: commands already here finish, new ones are not started. The
      // initiator re-issues them after the connection closes (on another path).
      return;
    }
    const ittValue = u32(h, Field.ITT);
    if (c.tasks.has(ittValue)) {
      c.rejectAfterData(RejectReason.TASK_IN_PROGRESS);
      return;
    }
    const flags = h[1]!;
    const edtl = u32(h, Field.EDTL);
    const write = (flags & ScsiCmdFlags.WRITE) !== 0;
    const read = (flags & ScsiCmdFlags.READ) !== 0;
    if (dsl > 0 && (!write || !s.params.ImmediateData || dsl > s.params.FirstBurstLength || dsl > edtl)) {
      // RFC 7143 10.6/13.x: immediate data needs ImmediateData=Yes, the W bit, and may
      // not exceed FirstBurstLength or the expected transfer length.
      c.rejectAfterData(RejectReason.PROTOCOL_ERROR);
      return;
    }
    if ((read && write) || (!read && !write && edtl !== 0)) {
      // Bidirectional commands are not supported; EDTL without a direction is invalid.
      c.rejectAfterData(RejectReason.INVALID_PDU_FIELD);
      return;
    }
    const t = ctx.pool.acquire();
    if (t === null) {
      c.rejectAfterData(RejectReason.COMMAND_NOT_SUPPORTED);
      return;
    }
    t.owner = c;
    t.itt = ittValue;
    t.cmdSN = cmdSN;
    t.immediate = imm;
    t.read = read;
    t.write = write;
    t.edtl = edtl;
    t.attribute = flags & ScsiCmdFlags.ATTR_MASK;
    for (let i = 0; i < 8; i++) t.lunField[i] = h[Field.LUN + i]!;
    t.lun = decodeLun(h, Field.LUN);
    h.copy(t.cdb, 0, Field.CDB, Field.CDB + 16);
    t.cdb.fill(0, 16);
    // Groups without a defined length (reserved, vendor specific) keep the 16 bytes
    // the BHS carries (SPC-4 4.2.5.1).
    t.cdbLength = cdbLengthOf(h[Field.CDB]!) || 16;
    c.tasks.set(ittValue, t);
    if (!imm) {
      s.arrived(cmdSN);
      s.outstanding++;
    }
    const maxLen = ctx.tuning.maxTransferLength;
    const len = Math.min(edtl, maxLen);
    // A write whose data is not all here yet holds its buffer until it comes: bounded per
    // session (data-out.ts mayHold), so withheld data cannot starve other sessions.
    const waitsForData = write && len > dsl;
    if (edtl > maxLen || (waitsForData && !c.dataOut.mayHold(len)) || !ctx.pool.attachBuffer(t, len)) {
      // Larger than one command may move, or no slab space now: the task completes
      // without reaching the LU (TASK SET FULL asks the initiator to retry later; an
      // oversized transfer fails with the status SBC gives for it).
      t.status = edtl > maxLen ? ScsiStatus.CHECK_CONDITION : ScsiStatus.TASK_SET_FULL;
      if (t.status === ScsiStatus.CHECK_CONDITION)
        t.senseLength = ctx.writeSense(t.sense, 'INVALID_FIELD_IN_CDB');
      t.state = TaskState.RESPONDING;
      return; // data (if any) is discarded; the response goes out in the PDU stage
    }
    this.current = t;
    c.rx.into(DataRoute.SCSI, t.data, 0);
  }

  /** PDU stage of a SCSI Command: the immediate data (if any) is in. */
  onPdu(): void {
    const c = this.conn;
    const t = this.current;
    this.current = null;
    if (t === null) {
      // Dropped (outside the window) or failed in the header stage with a response ready.
      const late = c.tasks.get(u32(c.rx.hdr, Field.ITT));
      if (late && late.state === TaskState.RESPONDING && late.owner === c) c.responses.send(late);
      return;
    }
    t.received = c.rx.dsl;
    if (!t.write || t.received >= t.data.length) {
      this.dataComplete(t);
    } else {
      c.dataOut.hold(t);
      c.dataOut.begin(t);
    }
    this.releaseHeld();
  }

  /**
   * A task has all its data. Commands are delivered to the SCSI layer in CmdSN order
   * (RFC 7143 3.2.2.1): one that arrived ahead of a CmdSN gap waits until the gap fills.
   */
  dataComplete(t: Task): void {
    if (t.immediate || this.conn.session!.deliverable(t.cmdSN)) {
      this.dispatch(t);
      return;
    }
    t.held = true;
    this.held.push(t);
  }

  /** ExpCmdSN may have moved: deliver held tasks that are now in order. */
  releaseHeld(): void {
    if (this.held.length === 0) return;
    const s = this.conn.session!;
    const ready = this.held.filter((t) => s.deliverable(t.cmdSN));
    if (ready.length === 0) return;
    this.held = this.held.filter((t) => !s.deliverable(t.cmdSN));
    ready.sort((a, b) => (snLess(a.cmdSN, b.cmdSN) ? -1 : 1));
    for (const t of ready) {
      t.held = false;
      if (!t.aborted) this.dispatch(t);
    }
  }

  /** Forget a held task (aborted before delivery). */
  unhold(t: Task): void {
    if (t.held) this.held = this.held.filter((x) => x !== t);
  }

  /** Connection teardown: nothing more is delivered. */
  clear(): void {
    this.held = [];
    this.current = null;
  }

  /** Route a task whose data is complete: to its LUN worker, or answer it here. */
  private dispatch(t: Task): void {
    const c = this.conn;
    const session = c.session!;
    const target = session.target!;
    const route = t.lun >= 0 ? target.luns.get(t.lun) : undefined;
    const op = t.cdb[0];
    if (op === ScsiOp.REPORT_LUNS || route === undefined) {
      // REPORT LUNS depends on the I_T nexus's LUN inventory, not on one LU, and a
      // command to a LUN that does not exist never reaches a LUN worker (SPC-4 6.33,
      // SAM-5 5.10): both are answered on this worker, no hop.
      const l = this.local;
      l.cdb.set(t.cdb);
      l.cdbLength = t.cdbLength;
      l.data = t.data;
      l.expectedLength = t.data.length;
      l.dataOutLength = t.write ? t.received : 0;
      l.dataInLength = 0;
      l.dataOutWanted = 0;
      l.status = ScsiStatus.GOOD;
      l.senseLength = 0;
      l.lun = t.lun;
      l.nexus = session.nexus;
      l.attribute = t.attribute;
      if (op === ScsiOp.REPORT_LUNS) {
        buildReportLuns(l, target.lunList);
        if (session.reportedLunsChanged && l.status === ScsiStatus.GOOD) {
          // SPC-4 6.33: REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED for this nexus;
          // the condition lives at the LUs, which learn it in order with later commands.
          session.reportedLunsChanged = false;
          c.ctx.signalLuns(session.nexus, target, UaEvent.REPORTED_LUNS_SEEN);
        }
      } else executeWithoutLun(l);
      t.status = l.status;
      t.senseLength = Math.min(l.senseLength, t.sense.length);
      if (t.senseLength > 0) l.sense.copy(t.sense, 0, 0, t.senseLength);
      t.dataInLength = l.dataInLength;
      t.dataOutWanted = l.dataOutWanted;
      t.state = TaskState.RESPONDING;
      c.responses.send(t);
      return;
    }
    t.lunWorker = route.lunWorker;
    t.luIndex = route.luIndex;
    // A READ or WRITE of a RAM disk or buffered file this nexus holds a grant for: served here (inline-io.ts).
    if (session.orderedInFlight === 0 && c.ctx.inline.serve(t, route, session.inlineGrants)) {
      c.onTaskComplete(t);
      return;
    }
    if (t.attribute > TaskAttribute.SIMPLE) session.orderedInFlight++;
    c.ctx.channels[route.lunWorker]!.submit(t, session.nexus);
  }
}
