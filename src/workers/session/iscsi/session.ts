/**
 * iSCSI session state (RFC 7143 4.2.2): the command numbering window shared by the
 * session's connections. With MaxConnections=1 a session has exactly one connection, but
 * the window lives here so that connection reinstatement can keep it.
 */
import type { SessionParams } from '../../../shared/iscsi/session-params.ts';
import type { TargetRoute } from '../routes.ts';

/**
 * A session's identity (RFC 7143 6.3.5): InitiatorName, ISID, TargetName and the portal
 * group it came through, as one key. A leading login with the identity of a live session
 * replaces it (session reinstatement); a login naming a live session by TSIH must carry
 * its identity (connection reinstatement, 6.3.4).
 */
export function sessionIdentityKey(
  initiatorName: string,
  isid: Uint8Array,
  targetName: string,
  portalGroupTag: number,
): string {
  return [initiatorName, Buffer.from(isid).toString('hex'), targetName, portalGroupTag].join('\0');
}

/** Serial number arithmetic (RFC 1982 as used by RFC 7143 4.2.2.1) on 32 bits. */
export function snLess(a: number, b: number): boolean {
  return a !== b && ((a - b) | 0) < 0;
}

export class IscsiSession {
  readonly tsih: number;
  readonly isid: Buffer;
  readonly nexus: number;
  readonly params: SessionParams;
  /** The session's view of its target; replaced when a configuration reload changes it. */
  target: TargetRoute | null;
  /**
   * REPORTED LUNS DATA HAS CHANGED was established at the LUs for this nexus and REPORT
   * LUNS has not run since (then the LUs are told to clear it, unit-attention.ts).
   */
  reportedLunsChanged = false;
  /**
   * Inline I/O grants of this I_T nexus by unit and direction (inline-io.ts grantKey):
   * the epoch a LUN worker granted with a READ's or WRITE's completion.
   */
  readonly inlineGrants = new Map<number, number>();
  /**
   * Commands of this session with an ORDERED, HEAD OF QUEUE or ACA attribute at a LUN
   * worker: while any is, no SIMPLE command is served inline, since it must not pass
   * them (SAM-5 8.6).
   */
  orderedInFlight = 0;
  expCmdSN: number;
  /** Non-immediate commands received whose response has not been sent. */
  outstanding = 0;
  /** Command window: how many non-immediate commands may be outstanding. */
  readonly window: number;

  constructor(tsih: number, isid: Buffer, nexus: number, params: SessionParams, target: TargetRoute | null, cmdSN: number, window: number) {
    this.tsih = tsih;
    this.isid = isid;
    this.nexus = nexus;
    this.params = params;
    this.target = target;
    this.expCmdSN = cmdSN >>> 0;
    this.window = window;
    this.lastMaxCmdSN = (this.expCmdSN + window - 1) >>> 0;
  }

  /** CmdSNs received ahead of ExpCmdSN (a gap before them), RFC 7143 4.2.2.1. */
  readonly ahead = new Set<number>();
  private lastMaxCmdSN: number;

  /**
   * MaxCmdSN = ExpCmdSN + (window - outstanding) - 1: receiving a command moves ExpCmdSN
   * and outstanding together, completing one opens the window by one. A command that
   * arrives ahead of a gap raises outstanding without moving ExpCmdSN, so the value is
   * held at its previous maximum: the window never shrinks once offered.
   */
  get maxCmdSN(): number {
    const v = (this.expCmdSN + this.window - this.outstanding - 1) >>> 0;
    if (snLess(this.lastMaxCmdSN, v)) this.lastMaxCmdSN = v;
    return this.lastMaxCmdSN;
  }

  /**
   * A non-immediate PDU with this CmdSN (already checked to be in the window) arrived.
   * Returns false for a duplicate. ExpCmdSN advances only over CmdSNs actually received.
   */
  arrived(cmdSN: number): boolean {
    if (cmdSN !== this.expCmdSN) {
      if (this.ahead.has(cmdSN)) return false;
      this.ahead.add(cmdSN);
      return true;
    }
    this.expCmdSN = (this.expCmdSN + 1) >>> 0;
    while (this.ahead.size > 0 && this.ahead.delete(this.expCmdSN)) this.expCmdSN = (this.expCmdSN + 1) >>> 0;
    return true;
  }

  /** True once every CmdSN before `cmdSN` has arrived: the command may be delivered. */
  deliverable(cmdSN: number): boolean {
    return snLess(cmdSN, this.expCmdSN);
  }

  /** True when a non-immediate CmdSN lies in [ExpCmdSN, MaxCmdSN]. */
  inWindow(cmdSN: number): boolean {
    return !snLess(cmdSN, this.expCmdSN) && !snLess(this.maxCmdSN, cmdSN);
  }
}
