/**
 * Security negotiation for the login security stage (RFC 7143 6.3.1, 12.1): AuthMethod
 * selection and CHAP (RFC 1994, as profiled by RFC 7143 12.1.3).
 *
 *   initiator                          target
 *   AuthMethod=CHAP,None        -->
 *                               <--    AuthMethod=CHAP
 *   CHAP_A=5                    -->
 *                               <--    CHAP_A=5 CHAP_I=<id> CHAP_C=0x<16 random bytes>
 *   CHAP_N=<user> CHAP_R=0x..   -->    verify R == MD5(id || secret || challenge)
 *   [CHAP_I, CHAP_C: mutual]    <--    [CHAP_N=<target user> CHAP_R=0x..]
 *
 * Only MD5 (CHAP_A=5) is offered: it is the one algorithm RFC 7143 12.1.3 requires.
 * One-way CHAP comes from `auth.chap` in the configuration, mutual CHAP from
 * `auth.mutualChap` (per target, and under `discovery.auth`), passed here as
 * `targetCredentials`. Mutual CHAP is the initiator's choice (it sends CHAP_I/CHAP_C with
 * its response); a target without `targetCredentials` fails such a login.
 *
 * Reflection defences (RFC 7143 9.2.1, 12.1.3):
 * - an initiator challenge equal to the target's own challenge is refused;
 * - an initiator response equal to the one the target would compute with its own
 *   (mutual) secret is refused: the secret would be in use in both directions;
 * - the configuration refuses one secret in both directions (config/schema.ts).
 *
 * Secrets, challenges and responses are never logged. Failures are logged through
 * `log.warn` with the initiator name and peer address.
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { ChapCredentials } from '../../../../shared/config-types.ts';
import type { TextPair } from '../../../../shared/iscsi/text-keys.ts';
import { formatHex, parseBinary, parseList, parseNumber } from '../../../../shared/iscsi/text-keys.ts';
import type { LoginContext } from './types.ts';

/** CHAP_A values (RFC 7143 12.1.3, RFC 1994, IANA PPP authentication algorithms). */
export const ChapAlgorithm = {
  MD5: 5,
} as const;

/** Challenge length sent to initiators: 16 random bytes, the MD5 output size. */
export const CHAP_CHALLENGE_BYTES = 16;
/** Largest CHAP_C accepted from an initiator (RFC 7143 12.1.3: C is at most 1024 bytes). */
const CHAP_C_MAX_BYTES = 1024;
/**
 * Shortest initiator challenge accepted for mutual CHAP: the MD5 output size. RFC 1994
 * section 2.3 asks for challenges that are unpredictable and not reused; a shorter one
 * makes precomputed responses practical. open-iscsi and Windows send 16 bytes, libiscsi 32.
 */
const CHAP_C_MIN_BYTES = 16;
const MD5_BYTES = 16;

/** The keys this module answers in the security stage. */
const SECURITY_KEYS: ReadonlySet<string> = new Set([
  'AuthMethod',
  'CHAP_A',
  'CHAP_I',
  'CHAP_C',
  'CHAP_N',
  'CHAP_R',
]);

/** Randomness source; injectable so tests can fix CHAP_I and CHAP_C. */
export interface ChapRandom {
  bytes(n: number): Buffer;
  /** Uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
}

const cryptoRandom: ChapRandom = {
  bytes: (n) => randomBytes(n),
  int: (max) => randomInt(max),
};

export interface SecurityOptions {
  /** Credentials the initiator must present (one-way CHAP). Absent: AuthMethod=None. */
  readonly credentials?: ChapCredentials;
  /**
   * Mutual CHAP hook: the target's own name and secret, used to answer an initiator's
   * CHAP_I/CHAP_C. Absent: mutual CHAP requests fail authentication.
   */
  readonly targetCredentials?: ChapCredentials;
  /** The target being logged in to, for logs; absent in a discovery session. */
  readonly targetName?: string;
  readonly initiatorName: string;
  readonly peer: string;
  readonly log: LoginContext['log'];
  readonly random?: ChapRandom;
}

export const SecurityStatus = {
  /** More exchanges needed (or nothing negotiated yet). */
  PENDING: 'pending',
  /** AuthMethod=None agreed, or the CHAP response verified. */
  AUTHENTICATED: 'authenticated',
  FAILED: 'failed',
} as const;
export type SecurityStatusValue = (typeof SecurityStatus)[keyof typeof SecurityStatus];

export interface SecurityStepResult {
  /** Answers to send (not sent when status is failed: a failed login carries no keys). */
  readonly answers: Array<[string, string]>;
  readonly status: SecurityStatusValue;
}

type ChapState = 'start' | 'algorithm' | 'response' | 'done' | 'failed';

/** CHAP response: MD5(identifier || secret || challenge) (RFC 1994 section 4.1). */
export function chapMd5Response(id: number, secret: Uint8Array | string, challenge: Uint8Array): Buffer {
  return createHash('md5')
    .update(Buffer.of(id & 0xff))
    .update(typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret)
    .update(challenge)
    .digest();
}

/** Security stage negotiation for one login. */
export class SecurityNegotiator {
  readonly #opts: SecurityOptions;
  readonly #random: ChapRandom;
  #state: ChapState = 'start';
  #method: 'None' | 'CHAP' | undefined;
  #chapId = 0;
  #challenge: Buffer | undefined;

  constructor(opts: SecurityOptions) {
    this.#opts = opts;
    this.#random = opts.random ?? cryptoRandom;
  }

  static isSecurityKey(key: string): boolean {
    return SECURITY_KEYS.has(key);
  }

  /** Whether the configuration demands CHAP. */
  get required(): boolean {
    return this.#opts.credentials !== undefined;
  }

  /** The initiator is authenticated, or AuthMethod=None was agreed. */
  get authenticated(): boolean {
    return this.#state === 'done';
  }

  /** The agreed AuthMethod, once negotiated. */
  get method(): 'None' | 'CHAP' | undefined {
    return this.#method;
  }

  /** True while a CHAP exchange has started but not finished. */
  get inProgress(): boolean {
    return this.#state === 'algorithm' || this.#state === 'response';
  }

  /**
   * Authentication when the initiator asks to leave the security stage without having
   * negotiated AuthMethod: allowed only when no authentication is configured.
   */
  acceptImplicitNone(): boolean {
    if (this.#state !== 'start') return this.#state === 'done';
    if (this.required) return this.#fail('security stage left without authenticating');
    this.#method = 'None';
    this.#state = 'done';
    return true;
  }

  /** Process the security keys of one complete request (other keys are not passed). */
  step(pairs: readonly TextPair[]): SecurityStepResult {
    const answers: Array<[string, string]> = [];
    const keys = new Map<string, string>();
    for (const p of pairs) keys.set(p.key, p.value);
    if (this.#state === 'failed') return this.#failed();

    const authMethod = keys.get('AuthMethod');
    if (authMethod !== undefined) {
      if (this.#state !== 'start') return this.#failResult('AuthMethod negotiated twice');
      // RFC 7143 6.2.1 / 12.1: the first offered method the target supports. With
      // credentials configured only CHAP is acceptable; without, only None (the target
      // has nothing to verify a CHAP response against).
      const supported: 'CHAP' | 'None' = this.required ? 'CHAP' : 'None';
      const chosen = parseList(authMethod).includes(supported) ? supported : undefined;
      if (chosen === undefined)
        return this.#failResult(`no acceptable AuthMethod offered (need ${supported})`);
      answers.push(['AuthMethod', chosen]);
      this.#method = chosen;
      this.#state = chosen === 'None' ? 'done' : 'algorithm';
    }

    const chapA = keys.get('CHAP_A');
    if (chapA !== undefined) {
      if (this.#state !== 'algorithm') return this.#failResult('CHAP_A before AuthMethod=CHAP');
      // RFC 7143 12.1.3: the target picks the first offered algorithm it supports.
      const alg = parseList(chapA)
        .map((v) => parseNumber(v))
        .find((n) => n === ChapAlgorithm.MD5);
      if (alg === undefined) return this.#failResult('no supported CHAP_A offered (need 5 = MD5)');
      this.#chapId = this.#random.int(256);
      this.#challenge = this.#random.bytes(CHAP_CHALLENGE_BYTES);
      answers.push(
        ['CHAP_A', String(alg)],
        ['CHAP_I', String(this.#chapId)],
        ['CHAP_C', formatHex(this.#challenge)],
      );
      this.#state = 'response';
    }

    const chapN = keys.get('CHAP_N');
    const chapR = keys.get('CHAP_R');
    const chapI = keys.get('CHAP_I');
    const chapC = keys.get('CHAP_C');
    if (chapN !== undefined || chapR !== undefined) {
      if (this.#state !== 'response' || this.#challenge === undefined) {
        return this.#failResult('CHAP response without a challenge');
      }
      if (chapN === undefined || chapR === undefined)
        return this.#failResult('CHAP_N and CHAP_R must come together');
      if (!this.#verify(chapN, chapR)) return this.#failed();
      if (chapI !== undefined || chapC !== undefined) {
        const mutual = this.#answerMutual(chapI, chapC, this.#challenge);
        if (mutual === undefined) return this.#failed();
        answers.push(...mutual);
      }
      // One response per challenge (RFC 1994 section 2): the challenge is gone now.
      this.#challenge = undefined;
      this.#state = 'done';
    } else if (chapI !== undefined || chapC !== undefined) {
      return this.#failResult('CHAP_I/CHAP_C sent outside the CHAP response');
    }

    return {
      answers,
      status: this.#state === 'done' ? SecurityStatus.AUTHENTICATED : SecurityStatus.PENDING,
    };
  }

  /** RFC 7143 12.1.3: check CHAP_N and CHAP_R against the configured credentials. */
  #verify(name: string, response: string): boolean {
    const creds = this.#opts.credentials;
    if (creds === undefined) return this.#fail('CHAP response but no credentials configured');
    const got = parseBinary(response, 64);
    if (got === undefined || got.length !== MD5_BYTES) return this.#fail('malformed CHAP_R');
    const expected = chapMd5Response(this.#chapId, creds.secret, this.#challenge!);
    // Compare the response in constant time; the name is not secret but is checked after,
    // so a wrong name and a wrong secret take the same path.
    const responseOk = timingSafeEqual(got, expected);
    const nameOk = name === creds.user;
    if (!responseOk || !nameOk) return this.#fail(nameOk ? 'wrong CHAP response' : 'unknown CHAP user');
    // RFC 7143 9.2.1: a response equal to what this end would compute with its own secret
    // means one secret serves both directions; that must fail the login. The configuration
    // already refuses it, so this only guards against a config that bypassed validation.
    const own = this.#opts.targetCredentials;
    if (own !== undefined) {
      const reflected = chapMd5Response(this.#chapId, own.secret, this.#challenge!);
      if (timingSafeEqual(got, reflected)) return this.#fail('CHAP secret used in both directions');
    }
    return true;
  }

  /**
   * Mutual CHAP (RFC 7143 12.1.3): the initiator challenges the target. Returns the
   * target's CHAP_N/CHAP_R, or undefined after logging the failure.
   */
  #answerMutual(
    chapI: string | undefined,
    chapC: string | undefined,
    sent: Buffer,
  ): Array<[string, string]> | undefined {
    const target = this.#opts.targetCredentials;
    if (target === undefined) {
      this.#fail('initiator requested mutual CHAP, which is not configured');
      return undefined;
    }
    // RFC 7143 12.1.3: CHAP_I and CHAP_C come together; I is one octet (RFC 1994 4.1),
    // C a binary value of at most 1024 bytes.
    const id = chapI === undefined ? undefined : parseNumber(chapI);
    const challenge = chapC === undefined ? undefined : parseBinary(chapC, CHAP_C_MAX_BYTES);
    if (id === undefined || id > 255) {
      this.#fail('malformed or missing mutual CHAP_I');
      return undefined;
    }
    if (challenge === undefined || challenge.length < CHAP_C_MIN_BYTES) {
      this.#fail(`malformed or missing mutual CHAP_C (${CHAP_C_MIN_BYTES}-${CHAP_C_MAX_BYTES} bytes)`);
      return undefined;
    }
    // RFC 7143 12.1.3: a target must not answer a challenge identical to the one it sent
    // (reflection: the initiator would get the target to compute its own response).
    if (challenge.equals(sent)) {
      this.#fail('initiator reflected the target challenge');
      return undefined;
    }
    return [
      ['CHAP_N', target.user],
      ['CHAP_R', formatHex(chapMd5Response(id, target.secret, challenge))],
    ];
  }

  #fail(reason: string): false {
    this.#state = 'failed';
    // Never log secrets, challenges or responses: names, the peer and a reason only.
    const target = this.#opts.targetName;
    this.#opts.log.warn(
      {
        initiator: this.#opts.initiatorName,
        peer: this.#opts.peer,
        ...(target === undefined ? {} : { target }),
        reason,
      },
      'iSCSI login authentication failed',
    );
    return false;
  }

  #failResult(reason: string): SecurityStepResult {
    this.#fail(reason);
    return this.#failed();
  }

  #failed(): SecurityStepResult {
    return { answers: [], status: SecurityStatus.FAILED };
  }
}
