/**
 * Operational parameter negotiation (RFC 7143 section 6.2 and 13; RFC 7144 for
 * iSCSIProtocolLevel and TaskReporting). Pure: the login state machine feeds the
 * operational keys of each complete request, gets the target's answers back, and at the
 * end asks for the final SessionParams.
 *
 * One table row per key (tables over switches): how the answer is computed, the legal
 * range, and whether the key is irrelevant in a discovery session. The target never
 * proposes a key that needs an answer; it only answers and declares, so a login never
 * waits on the initiator to respond to the target.
 */
import type { IscsiTuning } from '../../../../shared/config-types.ts';
import type { SessionParams } from '../../../../shared/iscsi/session-params.ts';
import { defaultSessionParams } from '../../../../shared/iscsi/session-params.ts';
import type { TextPair } from '../../../../shared/iscsi/text-keys.ts';
import {
  byteLength,
  formatBoolean,
  parseBoolean,
  parseList,
  parseNumber,
  TextLimits,
} from '../../../../shared/iscsi/text-keys.ts';

/** RFC 7143 6.2: the special answers. */
export const KeyAnswer = {
  NOT_UNDERSTOOD: 'NotUnderstood',
  IRRELEVANT: 'Irrelevant',
  REJECT: 'Reject',
} as const;

/** The maximum of MaxRecvDataSegmentLength, MaxBurstLength, FirstBurstLength: 2^24 - 1. */
const MAX_24 = 0xff_ffff;

type SessionKind = 'Normal' | 'Discovery';

/** Target-side values the answers are computed from. */
interface TargetValues {
  MaxBurstLength: number;
  FirstBurstLength: number;
  MaxOutstandingR2T: number;
  InitialR2T: boolean;
  ImmediateData: boolean;
  DataPDUInOrder: boolean;
  DataSequenceInOrder: boolean;
}

interface Ctx {
  readonly sessionType: SessionKind;
  readonly target: TargetValues;
  /** Values negotiated so far (this PDU's earlier keys included). */
  readonly state: Negotiated;
}

/** Negotiated values; undefined means not negotiated (RFC 7143 13 default applies). */
interface Negotiated {
  HeaderDigest?: 'None' | 'CRC32C';
  DataDigest?: 'None' | 'CRC32C';
  MaxConnections?: number;
  InitialR2T?: boolean;
  ImmediateData?: boolean;
  InitiatorMaxRecvDataSegmentLength?: number;
  MaxBurstLength?: number;
  FirstBurstLength?: number;
  DefaultTime2Wait?: number;
  DefaultTime2Retain?: number;
  MaxOutstandingR2T?: number;
  DataPDUInOrder?: boolean;
  DataSequenceInOrder?: boolean;
  ErrorRecoveryLevel?: number;
  iSCSIProtocolLevel?: number;
  TaskReporting?: string;
}

/**
 * A key's rule: returns the answer value to send (undefined: no answer, for declarative
 * keys) and records the outcome in ctx.state.
 */
interface KeyRule {
  /** RFC 7143 13: "Irrelevant when: SessionType=Discovery". */
  readonly irrelevantInDiscovery: boolean;
  answer(value: string, ctx: Ctx): string | undefined;
}

/** RFC 7143 6.2.1 list negotiation: the first initiator value the target supports. */
function listRule(
  supported: readonly string[],
  irrelevantInDiscovery: boolean,
  record: (state: Negotiated, chosen: string) => void,
): KeyRule {
  return {
    irrelevantInDiscovery,
    answer(value, ctx) {
      const chosen = parseList(value).find((v) => supported.includes(v));
      if (chosen === undefined) return KeyAnswer.REJECT;
      record(ctx.state, chosen);
      return chosen;
    },
  };
}

/** RFC 7143 6.2.2 numerical negotiation with a min or max result function. */
function numericRule(
  fn: 'min' | 'max',
  lo: number,
  hi: number,
  ours: (ctx: Ctx) => number,
  irrelevantInDiscovery: boolean,
  record: (state: Negotiated, n: number) => void,
): KeyRule {
  return {
    irrelevantInDiscovery,
    answer(value, ctx) {
      const offered = parseNumber(value);
      if (offered === undefined || offered < lo || offered > hi) return KeyAnswer.REJECT;
      const mine = ours(ctx);
      const n = fn === 'min' ? Math.min(offered, mine) : Math.max(offered, mine);
      record(ctx.state, n);
      return String(n);
    },
  };
}

/**
 * RFC 7143 6.2.2 Boolean negotiation: OR result function (the answer is Yes if either
 * side says Yes) or AND (Yes only if both do). `ours` is the target's preference.
 */
function booleanRule(
  fn: 'and' | 'or',
  ours: boolean | ((t: TargetValues) => boolean),
  irrelevantInDiscovery: boolean,
  record: (state: Negotiated, b: boolean) => void,
): KeyRule {
  return {
    irrelevantInDiscovery,
    answer(value, ctx) {
      const offered = parseBoolean(value);
      if (offered === undefined) return KeyAnswer.REJECT;
      const mine = typeof ours === 'function' ? ours(ctx.target) : ours;
      const b = fn === 'and' ? offered && mine : offered || mine;
      record(ctx.state, b);
      return formatBoolean(b);
    },
  };
}

/** A key the target always answers with a fixed value once the offer is well formed. */
function fixedRule(answer: string, valid: (value: string) => boolean): KeyRule {
  return {
    irrelevantInDiscovery: false,
    answer: (value) => (valid(value) ? answer : KeyAnswer.REJECT),
  };
}

/** A key the target always refuses: sent by the target only, or not supported. */
const alwaysReject: KeyRule = { irrelevantInDiscovery: false, answer: () => KeyAnswer.REJECT };

const DIGESTS = ['None', 'CRC32C'] as const;
type Digest = (typeof DIGESTS)[number];

/** The operational keys and how the target answers each (RFC 7143 13, RFC 7144). */
const RULES: Readonly<Record<string, KeyRule>> = {
  // 13.1: list; both None and CRC32C are supported.
  HeaderDigest: listRule(DIGESTS, false, (s, v) => (s.HeaderDigest = v as Digest)),
  DataDigest: listRule(DIGESTS, false, (s, v) => (s.DataDigest = v as Digest)),
  // 13.2: min, 1..65535; one connection per session (no MC/S).
  MaxConnections: numericRule(
    'min',
    1,
    65535,
    () => 1,
    true,
    (s, n) => (s.MaxConnections = n),
  ),
  // 13.10: OR. The target's own value comes from config (iscsi.initialR2T, default No:
  // it has no need for InitialR2T).
  InitialR2T: booleanRule('or', (t) => t.InitialR2T, true, (s, b) => (s.InitialR2T = b)),
  // 13.11: AND. Immediate data is supported.
  // 13.11: AND; the target's value comes from config (iscsi.immediateData, default Yes).
  ImmediateData: booleanRule('and', (t) => t.ImmediateData, true, (s, b) => (s.ImmediateData = b)),
  // 13.12: declarative; the initiator's value bounds what the target sends.
  MaxRecvDataSegmentLength: {
    irrelevantInDiscovery: false,
    answer(value, ctx) {
      const n = parseNumber(value);
      if (n === undefined || n < 512 || n > MAX_24) return KeyAnswer.REJECT;
      ctx.state.InitiatorMaxRecvDataSegmentLength = n;
      return undefined;
    },
  },
  // 13.13: min, 512..2^24-1.
  MaxBurstLength: numericRule(
    'min',
    512,
    MAX_24,
    (c) => c.target.MaxBurstLength,
    true,
    (s, n) => {
      s.MaxBurstLength = n;
    },
  ),
  // 13.14: min, 512..2^24-1, and never above MaxBurstLength.
  FirstBurstLength: numericRule(
    'min',
    512,
    MAX_24,
    (c) => Math.min(c.target.FirstBurstLength, c.state.MaxBurstLength ?? c.target.MaxBurstLength),
    true,
    (s, n) => (s.FirstBurstLength = n),
  ),
  // 13.15: max, 0..3600; our preference is the default, 2.
  DefaultTime2Wait: numericRule(
    'max',
    0,
    3600,
    () => 2,
    false,
    (s, n) => (s.DefaultTime2Wait = n),
  ),
  // 13.16: min, 0..3600. With ErrorRecoveryLevel 0 nothing is retained after a drop,
  // so the target's own value is 0.
  DefaultTime2Retain: numericRule(
    'min',
    0,
    3600,
    () => 0,
    false,
    (s, n) => (s.DefaultTime2Retain = n),
  ),
  // 13.17: min, 1..65535.
  MaxOutstandingR2T: numericRule(
    'min',
    1,
    65535,
    (c) => c.target.MaxOutstandingR2T,
    true,
    (s, n) => {
      s.MaxOutstandingR2T = n;
    },
  ),
  // 13.18, 13.19: OR. The target's own values come from config (iscsi.dataPDUInOrder,
  // iscsi.dataSequenceInOrder, default No): with No the answer is whatever the
  // initiator offered, and Data-Out may then arrive in any order (data-out.ts).
  DataPDUInOrder: booleanRule('or', (t) => t.DataPDUInOrder, true, (s, b) => (s.DataPDUInOrder = b)),
  DataSequenceInOrder: booleanRule('or', (t) => t.DataSequenceInOrder, true, (s, b) => (s.DataSequenceInOrder = b)),
  // 13.20: min, 0..2; only level 0 is implemented.
  ErrorRecoveryLevel: numericRule(
    'min',
    0,
    2,
    () => 0,
    false,
    (s, n) => (s.ErrorRecoveryLevel = n),
  ),
  // Markers (RFC 3720 Appendix A; removed from RFC 7143, which keeps iSCSI keys
  // backward compatible): Boolean AND with our No. Their intervals are answered Reject.
  OFMarker: fixedRule('No', (v) => parseBoolean(v) !== undefined),
  IFMarker: fixedRule('No', (v) => parseBoolean(v) !== undefined),
  OFMarkInt: alwaysReject,
  IFMarkInt: alwaysReject,
  // RFC 7144 (iSCSIProtocolLevel): min, 0..31; the target implements level 1 (RFC 7143 + RFC 7144).
  iSCSIProtocolLevel: numericRule(
    'min',
    0,
    31,
    () => 1,
    false,
    (s, n) => (s.iSCSIProtocolLevel = n),
  ),
  // RFC 7144 (TaskReporting): list; only plain RFC3720 task reporting.
  TaskReporting: listRule(['RFC3720'], true, (s, v) => (s.TaskReporting = v)),
  // RFC 7143 13.6, 13.8, 13.9: sent by the target only.
  TargetAlias: alwaysReject,
  TargetAddress: alwaysReject,
  TargetPortalGroupTag: alwaysReject,
  // RFC 7143 13.3: SendTargets belongs to Text Requests in full feature phase.
  SendTargets: alwaysReject,
};

export interface NegotiationOptions {
  readonly sessionType: SessionKind;
  readonly tuning: IscsiTuning;
}

/**
 * Answers operational keys over one login. Not thread-shared; one per connection login.
 */
export class OperationalNegotiator {
  readonly #sessionType: SessionKind;
  readonly #tuning: IscsiTuning;
  readonly #target: TargetValues;
  readonly #state: Negotiated = {};
  #declaredMaxRecv = false;

  constructor(opts: NegotiationOptions) {
    this.#sessionType = opts.sessionType;
    this.#tuning = opts.tuning;
    this.#target = {
      MaxBurstLength: clamp(opts.tuning.maxBurstLength, 512, MAX_24),
      FirstBurstLength: clamp(opts.tuning.firstBurstLength, 512, MAX_24),
      MaxOutstandingR2T: clamp(opts.tuning.maxOutstandingR2T, 1, 65535),
      InitialR2T: opts.tuning.initialR2T ?? false,
      ImmediateData: opts.tuning.immediateData ?? true,
      DataPDUInOrder: opts.tuning.dataPDUInOrder ?? false,
      DataSequenceInOrder: opts.tuning.dataSequenceInOrder ?? false,
    };
  }

  /** Whether this module answers `key` (the login code routes other keys elsewhere). */
  static isOperationalKey(key: string): boolean {
    return Object.hasOwn(RULES, key);
  }

  /**
   * The target's answers to the offered keys, in offer order (RFC 7143 6.2). Unknown keys
   * are answered NotUnderstood, bad values Reject, keys irrelevant to a discovery session
   * Irrelevant. Initiator answers to our declarations (Reject, NotUnderstood,
   * Irrelevant) need no reply.
   */
  negotiate(pairs: readonly TextPair[]): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    const ctx: Ctx = { sessionType: this.#sessionType, target: this.#target, state: this.#state };
    for (const { key, value } of pairs) {
      const rule = Object.hasOwn(RULES, key) ? RULES[key] : undefined;
      if (rule === undefined) {
        out.push([key, KeyAnswer.NOT_UNDERSTOOD]);
        continue;
      }
      if (
        value === KeyAnswer.NOT_UNDERSTOOD ||
        value === KeyAnswer.IRRELEVANT ||
        value === KeyAnswer.REJECT
      ) {
        continue;
      }
      if (rule.irrelevantInDiscovery && this.#sessionType === 'Discovery') {
        out.push([key, KeyAnswer.IRRELEVANT]);
        continue;
      }
      // RFC 7143 6.1: simple values are at most 255 bytes unless a key says otherwise.
      if (byteLength(value) > TextLimits.SIMPLE_VALUE_MAX_BYTES) {
        out.push([key, KeyAnswer.REJECT]);
        continue;
      }
      const answer = rule.answer(value, ctx);
      if (answer !== undefined) out.push([key, answer]);
    }
    return out;
  }

  /**
   * Declarations the target makes unasked (RFC 7143 13.12): its MaxRecvDataSegmentLength
   * when it differs from the 8192 default. Returned once; later calls return nothing.
   */
  declarations(): Array<[string, string]> {
    if (this.#declaredMaxRecv) return [];
    this.#declaredMaxRecv = true;
    if (this.targetMaxRecvDataSegmentLength() === 8192) return [];
    return [['MaxRecvDataSegmentLength', String(this.targetMaxRecvDataSegmentLength())]];
  }

  /** What the target declares it accepts per PDU. */
  targetMaxRecvDataSegmentLength(): number {
    return clamp(this.#tuning.maxRecvDataSegmentLength, 512, MAX_24);
  }

  /** Final parameters: negotiated values, RFC 7143 13 defaults for the rest. */
  finish(identity: Pick<SessionParams, 'InitiatorName' | 'InitiatorAlias' | 'TargetName'>): SessionParams {
    const p = defaultSessionParams();
    const s = this.#state;
    p.SessionType = this.#sessionType;
    p.InitiatorName = identity.InitiatorName;
    p.InitiatorAlias = identity.InitiatorAlias;
    p.TargetName = identity.TargetName;
    if (s.HeaderDigest !== undefined) p.HeaderDigest = s.HeaderDigest;
    if (s.DataDigest !== undefined) p.DataDigest = s.DataDigest;
    // Only what was declared counts: an undeclared limit is the 8192 default.
    p.TargetMaxRecvDataSegmentLength = this.#declaredMaxRecv ? this.targetMaxRecvDataSegmentLength() : 8192;
    if (s.InitiatorMaxRecvDataSegmentLength !== undefined) {
      p.InitiatorMaxRecvDataSegmentLength = s.InitiatorMaxRecvDataSegmentLength;
    }
    if (s.MaxBurstLength !== undefined) p.MaxBurstLength = s.MaxBurstLength;
    if (s.FirstBurstLength !== undefined) p.FirstBurstLength = s.FirstBurstLength;
    // RFC 7143 13.14: FirstBurstLength must not exceed MaxBurstLength, whatever order
    // (or PDU) the two were negotiated in.
    p.FirstBurstLength = Math.min(p.FirstBurstLength, p.MaxBurstLength);
    if (s.InitialR2T !== undefined) p.InitialR2T = s.InitialR2T;
    if (s.ImmediateData !== undefined) p.ImmediateData = s.ImmediateData;
    if (s.MaxOutstandingR2T !== undefined) p.MaxOutstandingR2T = s.MaxOutstandingR2T;
    if (s.DataPDUInOrder !== undefined) p.DataPDUInOrder = s.DataPDUInOrder;
    if (s.DataSequenceInOrder !== undefined) p.DataSequenceInOrder = s.DataSequenceInOrder;
    p.ErrorRecoveryLevel = 0;
    if (s.DefaultTime2Wait !== undefined) p.DefaultTime2Wait = s.DefaultTime2Wait;
    if (s.DefaultTime2Retain !== undefined) p.DefaultTime2Retain = s.DefaultTime2Retain;
    p.MaxConnections = 1;
    return p;
  }
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, Math.trunc(n)));
}
