/**
 * SendTargets (RFC 7143 Appendix C, key defined in 13.3) and the Text Request keys a
 * full-feature session may send. Pure: text in, text out.
 *
 * Response layout, one record per target (RFC 7143 Appendix C):
 *   TargetName=iqn.2024-01.example:disk1\0
 *   TargetAddress=192.0.2.10:3260,1\0
 *   TargetAddress=[2001:db8::10]:3260,1\0
 *   TargetName=iqn.2024-01.example:disk2\0 ...
 *
 * Splitting a long response over several Text Responses (C bit, Target Transfer Tag,
 * the initiator's MaxRecvDataSegmentLength) is the connection code's job.
 */
import { buildTextKeys, parseTextKeys, TextLimits } from '../../../../shared/iscsi/text-keys.ts';
import { KeyAnswer } from './negotiation.ts';
import type { LoginTargetInfo } from './types.ts';

/**
 * The SendTargets response for `value` (RFC 7143 Appendix C):
 * - "All": every target, in a discovery session (`sessionTarget` undefined). In a normal
 *   session the answer is "SendTargets=Reject": "All" is for discovery sessions.
 * - an iSCSI name: that target if it exists (in a normal session, only if it is the
 *   session's target); otherwise an empty response.
 * - empty: the session's target in a normal session; nothing in a discovery session.
 */
export function buildSendTargetsResponse(
  value: string,
  targets: readonly LoginTargetInfo[],
  sessionTarget?: string,
  initiatorName?: string,
): Buffer {
  return buildTextKeys(sendTargetsPairs(value, targets, sessionTarget, initiatorName));
}

function sendTargetsPairs(
  value: string,
  allTargets: readonly LoginTargetInfo[],
  sessionTarget: string | undefined,
  initiatorName: string | undefined,
): Array<[string, string]> {
  // LUN masking: a target the initiator may not log in to is not reported (RFC 7143
  // Appendix C leaves the selection to the target; listing it would only invite a login
  // that fails with AUTHORIZATION FAILURE). Without a name nothing masked is listed.
  const name = initiatorName ?? '';
  const targets = allTargets.filter((t) => t.authorize === undefined || t.authorize(name));
  const find = (name: string): LoginTargetInfo | undefined => {
    const wanted = name.toLowerCase(); // RFC 7143 4.2.7.2: names compare in lower case
    return targets.find((t) => t.iqn.toLowerCase() === wanted);
  };
  let selected: LoginTargetInfo[];
  if (value === 'All') {
    if (sessionTarget !== undefined) return [['SendTargets', KeyAnswer.REJECT]];
    selected = [...targets];
  } else if (value === '') {
    const t = sessionTarget === undefined ? undefined : find(sessionTarget);
    selected = t === undefined ? [] : [t];
  } else {
    const t = find(value);
    const allowed =
      t !== undefined && (sessionTarget === undefined || sessionTarget.toLowerCase() === t.iqn.toLowerCase());
    selected = allowed ? [t] : [];
  }
  const out: Array<[string, string]> = [];
  for (const t of selected) {
    out.push(['TargetName', t.iqn]);
    for (const a of t.addresses) out.push(['TargetAddress', a]);
  }
  return out;
}

export interface TextRequestOptions {
  readonly targets: readonly LoginTargetInfo[];
  /** The session's target name; undefined in a discovery session. */
  readonly sessionTarget?: string;
  /** The session's InitiatorName: targets whose `authorize` refuses it are not listed. */
  readonly initiatorName?: string;
  /** Bound on the (joined) request text. */
  readonly maxBytes?: number;
}

export type TextRequestResult =
  | { readonly ok: true; readonly data: Buffer }
  /** Malformed text: the connection code answers with a Reject PDU (RFC 7143 11.17). */
  | { readonly ok: false; readonly reason: string };

/**
 * Answer the keys of a full-feature Text Request (RFC 7143 11.10): SendTargets, and
 * NotUnderstood for anything else (RFC 7143 6.2). Never throws on bad input.
 */
export function handleTextRequest(data: Uint8Array, opts: TextRequestOptions): TextRequestResult {
  const parsed = parseTextKeys(data, opts.maxBytes ?? TextLimits.DEFAULT_TOTAL_MAX_BYTES);
  if (!parsed.ok) return { ok: false, reason: parsed.error };
  const out: Array<[string, string]> = [];
  for (const { key, value } of parsed.pairs) {
    if (key === 'SendTargets') out.push(...sendTargetsPairs(value, opts.targets, opts.sessionTarget, opts.initiatorName));
    else out.push([key, KeyAnswer.NOT_UNDERSTOOD]);
  }
  return { ok: true, data: buildTextKeys(out) };
}
