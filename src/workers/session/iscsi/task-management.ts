/**
 * Task Management Function Requests (RFC 7143 11.5, 11.6; SAM-5 7): which tasks a
 * function ends on this connection, the LU-wide functions forwarded to the LUN workers
 * (LOGICAL UNIT RESET, CLEAR TASK SET, target resets), and the response, sent only once
 * every affected command has ended and every LUN worker involved has acknowledged.
 */
import {
  Field,
  TmfFunction,
  TmfResponse,
  buildTmfResponse,
  decodeLun,
  isImmediate,
  u32,
} from '../../../shared/iscsi/pdu.ts';
import { TaskState, type Task } from '../task.ts';
import { distinctUnits } from '../routes.ts';
import type { ConnectionCore } from './connection-core.ts';
import { snLess } from './session.ts';

/** A task management function waiting for its victims (and LU acknowledgements). */
class PendingTmf {
  readonly itt: number;
  readonly fn: number;
  waiting = 0;
  /** Drop the connection once answered (TARGET COLD RESET, RFC 7143 11.5.1). */
  readonly thenClose: boolean;
  private readonly handler: TaskManagement;

  constructor(handler: TaskManagement, itt: number, fn: number, thenClose: boolean) {
    this.handler = handler;
    this.itt = itt;
    this.fn = fn;
    this.thenClose = thenClose;
  }

  /** A LUN worker could not carry the function to every node of the cluster. */
  private incomplete = false;

  /**
   * One victim ended or one LUN worker acknowledged; answer when all have. A function
   * that did not reach every node is FUNCTION REJECTED (RFC 7143 11.6.1): commands may
   * still run elsewhere, so the initiator must escalate rather than trust it.
   */
  settle(everywhere = true): void {
    if (!everywhere) this.incomplete = true;
    if (--this.waiting === 0) this.handler.answer(this, this.incomplete ? TmfResponse.FUNCTION_REJECTED : TmfResponse.FUNCTION_COMPLETE);
  }
}

export class TaskManagement {
  private readonly conn: ConnectionCore;

  constructor(conn: ConnectionCore) {
    this.conn = conn;
  }

  /** A Task Management Function Request PDU (no data segment). */
  onPdu(): void {
    const c = this.conn;
    const h = c.rx.hdr;
    const s = c.session!;
    if (!isImmediate(h, 0)) c.advanceCmdSN(u32(h, Field.CMD_SN));
    const fn = h[1]! & 0x7f;
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
          const t = c.tasks.get(rtt);
          if (t === undefined) {
            // RFC 7143 11.5.1: if the referenced command never arrived but its CmdSN
            // (RefCmdSN) lies in the window below the TMF's own CmdSN, the target treats
            // that CmdSN as received (so the command, if it comes later, is ignored) and
            // answers Function Complete; otherwise the task does not exist.
            const ref = u32(h, Field.REF_CMD_SN);
            const tmfCmdSN = u32(h, Field.CMD_SN);
            if (s.inWindow(ref) && snLess(ref, tmfCmdSN) && !s.deliverable(ref) && !s.ahead.has(ref)) {
              s.arrived(ref);
              c.intake.releaseHeld();
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
          for (const t of c.tasks.values()) if (t.lun === lun) victims.push(t);
          break;
        case TmfFunction.TARGET_WARM_RESET:
        case TmfFunction.TARGET_COLD_RESET:
          for (const t of c.tasks.values()) victims.push(t);
          break;
        case TmfFunction.CLEAR_ACA:
          // Acts at the LU (lun/task-management.ts): clears an ACA this nexus faulted.
          if (lun < 0 || !target.luns.has(lun)) response = TmfResponse.LUN_DOES_NOT_EXIST;
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
        c.dataOut.settle(t);
        c.intake.unhold(t);
        c.responses.drop(t);
      } else if (t.state === TaskState.SUBMITTED || t.state === TaskState.QUEUED) {
        pending.waiting++; // answered once the LU has finished it
        t.tmf = pending;
      }
    }
    if (response === TmfResponse.FUNCTION_COMPLETE && (fn === TmfFunction.ABORT_TASK || fn === TmfFunction.ABORT_TASK_SET)) {
      // The issuer's commands already at the LU are aborted there too (SAM-5 7.2, 7.3):
      // a command whose work is an LU-wide operation (SANITIZE with IMMED = 0), or one
      // blocked by an ACA condition, then ends at once instead of when it would run. One
      // descriptor per LU concerned, queued behind the commands it aborts; the answer
      // also waits for it.
      const sent = new Set<string>();
      for (const t of victims) {
        if (t.state !== TaskState.SUBMITTED && t.state !== TaskState.QUEUED) continue;
        const key = `${t.lunWorker}/${t.luIndex}`;
        if (sent.has(key)) continue;
        sent.add(key);
        if (c.ctx.sendTmf(t.lunWorker, t.luIndex, fn, s.nexus, pending, t.ringTag)) pending.waiting++;
      }
    }
    if (response === TmfResponse.FUNCTION_COMPLETE && target !== null) {
      // Functions that act on the logical unit for every nexus (SAM-5 7.5-7.8) go to
      // the LUN workers too; the answer waits for their acknowledgement, by which time
      // every aborted command, whoever sent it, has finished.
      // CLEAR ACA acts at the LU only (lun/task-management.ts).
      const luScoped =
        fn === TmfFunction.LOGICAL_UNIT_RESET || fn === TmfFunction.CLEAR_TASK_SET || fn === TmfFunction.CLEAR_ACA;
      const targetScoped = fn === TmfFunction.TARGET_WARM_RESET || fn === TmfFunction.TARGET_COLD_RESET;
      if (luScoped || targetScoped) {
        // luScoped functions were refused above unless `lun` is mapped.
        const units = luScoped ? [target.luns.get(lun)!] : distinctUnits(target);
        for (const route of units) {
          if (c.ctx.sendTmf(route.lunWorker, route.luIndex, fn, s.nexus, pending)) pending.waiting++;
        }
      }
    }
    if (response !== TmfResponse.FUNCTION_COMPLETE) {
      this.answer(pending, response);
      return;
    }
    pending.settle();
  }

  /** Send the TMF response (once). */
  answer(p: PendingTmf, response: number): void {
    const c = this.conn;
    const w = c.writer;
    c.fillSeq(true);
    w.begin();
    buildTmfResponse(w.buf, w.off, p.itt, response, c.seq);
    w.sendInline(0);
    if (p.thenClose) c.closeAfterFlush();
  }
}
