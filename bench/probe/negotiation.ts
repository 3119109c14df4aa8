/**
 * Login negotiation of the latency probe's initiator (RFC 7143 6.2, 13): the keys it
 * offers (QEMU's libiscsi defaults, so both targets settle on what they settle on with
 * qemu-img bench) and what the session ends up with from the target's answers.
 */

/** Operational keys offered at login, in order (libiscsi's defaults; see the module comment). */
export const LOGIN_KEYS: ReadonlyArray<readonly [string, string]> = [
  ['HeaderDigest', 'None'],
  ['DataDigest', 'None'],
  ['InitialR2T', 'No'],
  ['ImmediateData', 'Yes'],
  ['MaxRecvDataSegmentLength', '262144'],
  ['MaxBurstLength', '262144'],
  ['FirstBurstLength', '262144'],
  ['MaxOutstandingR2T', '1'],
  ['MaxConnections', '1'],
  ['ErrorRecoveryLevel', '0'],
  ['DataPDUInOrder', 'Yes'],
  ['DataSequenceInOrder', 'Yes'],
];
export const OUR_MAX_RECV = 262144;

export interface Negotiated {
  /** The most the target accepts in one PDU's data segment (its declaration; 8192 if none). */
  readonly targetMaxRecvDataSegmentLength: number;
  readonly firstBurstLength: number;
  readonly maxBurstLength: number;
  readonly initialR2T: boolean;
  readonly immediateData: boolean;
  readonly headerDigest: string;
  readonly dataDigest: string;
}

/** NUL-separated key=value text (RFC 7143 6.1); later values win. */
export function parseKeys(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split('\0')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/**
 * What the session settled on from the target's answers (RFC 7143 13): InitialR2T is an
 * OR and ImmediateData an AND of both offers, the burst lengths the minimum of both;
 * MaxRecvDataSegmentLength is declarative, the target's own (8192 when it says nothing).
 */
export function negotiate(target: Record<string, string>): Negotiated {
  const num = (k: string, dflt: number): number => {
    const v = Number(target[k]);
    return Number.isFinite(v) && v > 0 ? v : dflt;
  };
  return {
    targetMaxRecvDataSegmentLength: num('MaxRecvDataSegmentLength', 8192),
    firstBurstLength: Math.min(OUR_MAX_RECV, num('FirstBurstLength', 65536)),
    maxBurstLength: Math.min(OUR_MAX_RECV, num('MaxBurstLength', 262144)),
    // Unanswered keys keep the RFC defaults (13.10, 13.11): InitialR2T=Yes, ImmediateData=Yes.
    initialR2T: (target['InitialR2T'] ?? 'Yes') === 'Yes',
    immediateData: (target['ImmediateData'] ?? 'Yes') === 'Yes',
    headerDigest: target['HeaderDigest'] ?? 'None',
    dataDigest: target['DataDigest'] ?? 'None',
  };
}
