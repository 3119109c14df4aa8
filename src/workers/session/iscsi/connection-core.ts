/**
 * The shape the full-feature handler modules of a connection see (one object per
 * connection, `IscsiConnection`). Each module (command intake, Data-Out/R2T, responses,
 * task management, NOP, text, logout) is created once per connection with this core and
 * keeps its own state; nothing here is allocated per PDU.
 *
 *                       connection.ts (socket, phases, PDU dispatch, teardown)
 *                        │  pdu-receiver.ts (framing)   login-exchange.ts (login PDUs)
 *   ┌──────────────┬─────┴────────┬──────────────┬────────────┬──────────┬──────────┐
 *   scsi-command   data-out       scsi-response  task-mgmt    nop        text       logout
 *   (intake, CmdSN (R2T engine,   (Data-In,      (TMF, abort  (pings,    (Text,     (Logout,
 *    order, route)  Data-Out)      SCSI Response) bookkeeping) NOP-Out)   SendTargets) async logout)
 */
import type { SeqNumbers } from '../../../shared/iscsi/pdu.ts';
import type { Logger } from '../../../shared/logging.ts';
import type { SessionWorkerContext } from '../context.ts';
import type { Task, TaskOwner } from '../task.ts';
import type { PduReceiver } from './pdu-receiver.ts';
import type { PduWriter } from './pdu-writer.ts';
import type { IscsiSession } from './session.ts';

/*
 * What the modules ask of each other through the core. Declared here, not taken from the
 * classes (scsi-command.ts CommandIntake, data-out.ts DataOutEngine, scsi-response.ts
 * ResponseSender), since each of those modules imports this one; the connection holds the
 * classes themselves and drives the rest of them (PDU dispatch, configure, clear).
 */

/** Command intake (scsi-command.ts). */
export interface IntakePort {
  /** A task has all its data: deliver it in CmdSN order (it may wait for a gap). */
  dataComplete(t: Task): void;
  /** Forget a task held for CmdSN order (aborted before delivery). */
  unhold(t: Task): void;
  /** ExpCmdSN may have moved: deliver the held tasks that are now in order. */
  releaseHeld(): void;
}

/** The R2T / Data-Out engine (data-out.ts). */
export interface DataOutPort {
  /** May a write of `len` bytes wait for its data (held in the slab)? */
  mayHold(len: number): boolean;
  /** `t` holds its buffer for data still due (counted until settled). */
  hold(t: Task): void;
  /** Start taking the task's data (unsolicited, then R2Ts). */
  begin(t: Task): void;
  /** `t` no longer waits for data (all in, aborted or timed out). */
  settle(t: Task): void;
}

/** Data-In and SCSI Response (scsi-response.ts). */
export interface ResponsePort {
  send(t: Task): void;
  /** End a task without any response (aborted, or its connection is gone) and free it. */
  drop(t: Task): void;
}

/** The connection is the owner of its tasks: the LUN channel reports completions to it. */
export interface ConnectionCore extends TaskOwner {
  readonly ctx: SessionWorkerContext;
  /** Per-connection logger (rebound with the session's names at full feature phase). */
  readonly log: Logger;
  readonly portalIndex: number;
  readonly rx: PduReceiver;
  readonly writer: PduWriter;
  /** Sequence numbers for the PDU being built; filled by fillSeq(). */
  readonly seq: SeqNumbers;
  /** The session (non-null in full feature phase, where the modules run). */
  readonly session: IscsiSession | null;
  /** Tasks of this connection by Initiator Task Tag. */
  readonly tasks: Map<number, Task>;
  readonly intake: IntakePort;
  readonly dataOut: DataOutPort;
  readonly responses: ResponsePort;
  /** False once the connection is closed. */
  readonly receiving: boolean;
  /** In full feature phase (not logging in, logging out or closed). */
  readonly isFullFeature: boolean;
  /** Reject the current PDU once its data segment has been read (header stage only). */
  rejectAfterData(reason: number): void;
  /** Fill `seq`; `advance` when the PDU carries status and so consumes a StatSN. */
  fillSeq(advance: boolean): void;
  /** Send the PDU begun last with a control data segment (inline when small). */
  sendControlData(data: Buffer): void;
  /** Reject (RFC 7143 11.17) echoing the rejected PDU's header. */
  sendReject(reason: number, rejected: Buffer): void;
  /** A non-immediate non-SCSI PDU consumed `cmdSN`; it may fill a CmdSN gap. */
  advanceCmdSN(cmdSN: number): void;
  /** Drop the connection at once (timeouts, broken framing, lost data). */
  close(why: string): void;
  /** Drop the connection after a protocol error, letting the queued Reject go out first. */
  abort(why: string): void;
  /** Half-close once queued PDUs are out (logout, failed login, cold reset). */
  closeAfterFlush(): void;
}
