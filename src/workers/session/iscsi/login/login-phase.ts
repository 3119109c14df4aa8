/**
 * The iSCSI login phase state machine for one connection (RFC 7143 6.3, 11.12, 11.13).
 * Pure: the connection code decodes each Login Request, calls step(), and sends the
 * returned Login Response (filling in StatSN, ITT, ISID, version fields and so on).
 *
 *           +-----------------------+   T=1 NSG=1   +----------------------------+
 *   start ->| SecurityNegotiation 0 |-------------->| LoginOperationalNegotiation|
 *      |    | AuthMethod, CHAP_*    |               | 1: operational keys        |
 *      |    +-----------------------+               +----------------------------+
 *      |               | T=1 NSG=3                                 | T=1 NSG=3
 *      |               v                                           v
 *      |          FullFeaturePhase 3 <---------------------------------
 *      +-- CSG=1 on the first PDU: security skipped (only when no auth is configured)
 *
 * The target sets T only when it agrees to move on (RFC 7143 6.3, 11.13): while a CHAP
 * exchange is in progress it answers T=0 even if the initiator asked to transit. Text
 * split over several PDUs with the C bit is joined before it is parsed; each fragment
 * gets an empty response with C=0 (RFC 7143 11.12, 11.13). Any failure ends the
 * login with a non-zero status (RFC 7143 11.13.5), and the connection is then closed.
 */
import type { TextPair } from '../../../../shared/iscsi/text-keys.ts';
import {
  buildTextKeys,
  byteLength,
  parseTextKeys,
  TextAccumulator,
  TextLimits,
} from '../../../../shared/iscsi/text-keys.ts';
import type { AuthConfig } from '../../../../shared/config-types.ts';
import { SecurityNegotiator, SecurityStatus } from './chap.ts';
import { OperationalNegotiator } from './negotiation.ts';
import type { LoginContext, LoginRequest, LoginResponse, LoginStepResult, LoginTargetInfo } from './types.ts';
import { LoginStage } from './types.ts';

/** Login Response Status-Class / Status-Detail (RFC 7143 11.13.5). */
export const LoginStatus = {
  SUCCESS: { statusClass: 0x00, statusDetail: 0x00 },
  // Class 1: redirection.
  TARGET_MOVED_TEMPORARILY: { statusClass: 0x01, statusDetail: 0x01 },
  TARGET_MOVED_PERMANENTLY: { statusClass: 0x01, statusDetail: 0x02 },
  // Class 2: initiator error (not retried unchanged).
  INITIATOR_ERROR: { statusClass: 0x02, statusDetail: 0x00 },
  AUTHENTICATION_FAILURE: { statusClass: 0x02, statusDetail: 0x01 },
  AUTHORIZATION_FAILURE: { statusClass: 0x02, statusDetail: 0x02 },
  NOT_FOUND: { statusClass: 0x02, statusDetail: 0x03 },
  TARGET_REMOVED: { statusClass: 0x02, statusDetail: 0x04 },
  UNSUPPORTED_VERSION: { statusClass: 0x02, statusDetail: 0x05 },
  TOO_MANY_CONNECTIONS: { statusClass: 0x02, statusDetail: 0x06 },
  MISSING_PARAMETER: { statusClass: 0x02, statusDetail: 0x07 },
  CANT_INCLUDE_IN_SESSION: { statusClass: 0x02, statusDetail: 0x08 },
  SESSION_TYPE_NOT_SUPPORTED: { statusClass: 0x02, statusDetail: 0x09 },
  SESSION_DOES_NOT_EXIST: { statusClass: 0x02, statusDetail: 0x0a },
  INVALID_DURING_LOGIN: { statusClass: 0x02, statusDetail: 0x0b },
  // Class 3: target error (the initiator may retry).
  TARGET_ERROR: { statusClass: 0x03, statusDetail: 0x00 },
  SERVICE_UNAVAILABLE: { statusClass: 0x03, statusDetail: 0x01 },
  OUT_OF_RESOURCES: { statusClass: 0x03, statusDetail: 0x02 },
} as const;
export type LoginStatusValue = (typeof LoginStatus)[keyof typeof LoginStatus];

/**
 * Bounds against a hostile initiator: all login text over the whole login phase (real
 * logins use under 2 KiB; RFC 7143 6.1 requires accepting 8192 per negotiation), and the
 * number of Login Requests other than text-carrying C-bit fragments (an endless stream
 * of empty T=0 requests).
 */
export const LoginLimits = {
  MAX_TEXT_BYTES: TextLimits.DEFAULT_TOTAL_MAX_BYTES,
  MAX_REQUESTS: 128,
} as const;

/** Declarative keys of the leading Login Request (RFC 7143 13.4, 13.5, 13.7, 13.21). */
const IDENTITY_KEYS: ReadonlySet<string> = new Set([
  'InitiatorName',
  'InitiatorAlias',
  'TargetName',
  'SessionType',
]);

interface Identity {
  readonly sessionType: 'Normal' | 'Discovery';
  readonly initiatorName: string;
  readonly initiatorAlias: string;
  /** Canonical name of the target (as configured); empty for discovery. */
  readonly targetName: string;
  readonly target: LoginTargetInfo | undefined;
}

/** A failure found while handling a request: the status and a reason for the log. */
interface Failure {
  readonly status: LoginStatusValue;
  readonly reason: string;
  /** Already logged (by the CHAP module). */
  readonly logged?: boolean;
}

export class LoginPhase {
  readonly #ctx: LoginContext;
  readonly #text: TextAccumulator;
  #stage: number | undefined; // current stage (CSG); undefined before the first request
  #isid: Buffer | undefined;
  #cid = 0;
  /** TSIH of the session a connection-reinstatement login continues (0: new session). */
  #tsih = 0;
  #requests = 0;
  #textBytes = 0;
  /** Keys already received in this login, with their values (RFC 7143 6.2: no repeats). */
  readonly #seen = new Map<string, string>();
  #identity: Identity | undefined;
  #security: SecurityNegotiator | undefined;
  #negotiator: OperationalNegotiator | undefined;
  #sentTargetDeclarations = false;
  #finished = false;
  /** For logs, as soon as it is known. */
  #initiatorName = '';

  constructor(ctx: LoginContext) {
    this.#ctx = ctx;
    this.#text = new TextAccumulator(LoginLimits.MAX_TEXT_BYTES);
  }

  /** The InitiatorName of the leading request ('' until known): the auth throttle's key. */
  get initiatorName(): string {
    return this.#initiatorName;
  }

  /** Handle one Login Request. Never throws on wire input. */
  step(req: LoginRequest): LoginStepResult {
    if (this.#finished) {
      return this.#fail(req, {
        status: LoginStatus.INITIATOR_ERROR,
        reason: 'login request after login ended',
      });
    }
    const headerFailure = this.#checkHeader(req);
    if (headerFailure !== undefined) return this.#fail(req, headerFailure);
    const stage = this.#stage!;

    // RFC 7143 11.12 / 11.13 (C bit): join C-bit fragments; answer each with an empty PDU.
    this.#textBytes += req.data.length;
    if (this.#textBytes > LoginLimits.MAX_TEXT_BYTES || !this.#text.push(req.data)) {
      return this.#fail(req, { status: LoginStatus.INITIATOR_ERROR, reason: 'login text too long' });
    }
    if (req.cont) return this.#respond({ transit: false, cont: false, csg: stage, nsg: 0, data: [] });

    const parsed = parseTextKeys(this.#text.take(), LoginLimits.MAX_TEXT_BYTES);
    if (!parsed.ok) {
      return this.#fail(req, {
        status: LoginStatus.INITIATOR_ERROR,
        reason: `malformed login text: ${parsed.error}${parsed.key === undefined ? '' : ` (${parsed.key})`}`,
      });
    }

    const pairs = this.#dropRepeats(parsed.pairs);
    if (!Array.isArray(pairs)) return this.#fail(req, pairs);

    if (this.#identity === undefined) {
      const identified = this.#identify(pairs, stage);
      if (identified !== undefined) return this.#fail(req, identified);
    }
    const identity = this.#identity!;
    const security = this.#security!;
    const negotiator = this.#negotiator!;

    const securityPairs: TextPair[] = [];
    const otherPairs: TextPair[] = [];
    for (const p of pairs) {
      if (IDENTITY_KEYS.has(p.key)) continue;
      if (SecurityNegotiator.isSecurityKey(p.key)) securityPairs.push(p);
      else otherPairs.push(p);
    }

    const answers: Array<[string, string]> = [];
    if (!this.#sentTargetDeclarations) {
      // RFC 7143 13.9: TargetPortalGroupTag in the first Login Response of a normal
      // session, whatever the stage; TargetAlias (13.6) alongside it.
      this.#sentTargetDeclarations = true;
      if (identity.target !== undefined) {
        if (identity.target.alias !== undefined && identity.target.alias.length > 0) {
          answers.push(['TargetAlias', identity.target.alias]);
        }
        answers.push(['TargetPortalGroupTag', String(identity.target.portalGroupTag)]);
      }
    }

    if (securityPairs.length > 0) {
      // RFC 7143 6.3: security keys belong to the security stage only.
      if (stage !== LoginStage.SECURITY) {
        return this.#fail(req, {
          status: LoginStatus.INITIATOR_ERROR,
          reason: 'security keys outside security stage',
        });
      }
      const sec = security.step(securityPairs);
      if (sec.status === SecurityStatus.FAILED) {
        return this.#fail(
          req,
          { status: LoginStatus.AUTHENTICATION_FAILURE, reason: 'authentication failed' },
          true,
        );
      }
      answers.push(...sec.answers);
    }
    // Operational keys are answered in either stage; they take effect at full feature.
    answers.push(...negotiator.negotiate(otherPairs));

    // Transit: the target agrees only when the current stage's work is done. In the
    // operational stage it always is: entering it already required authentication.
    let agree = req.transit;
    if (req.transit && stage === LoginStage.SECURITY && !security.authenticated) {
      // Mid-CHAP: answer T=0 and continue. No AuthMethod at all: fine only without auth.
      if (security.inProgress) agree = false;
      else if (!security.acceptImplicitNone()) {
        const reason = 'left security stage without authenticating';
        return this.#fail(req, { status: LoginStatus.AUTHENTICATION_FAILURE, reason }, true);
      }
    }

    const complete = agree && req.nsg === LoginStage.FULL_FEATURE;
    if (stage === LoginStage.OPERATIONAL || complete) answers.push(...negotiator.declarations());

    if (!complete) {
      if (agree) this.#stage = req.nsg;
      return this.#respond({
        transit: agree,
        cont: false,
        csg: stage,
        nsg: agree ? req.nsg : 0,
        data: answers,
      });
    }

    this.#finished = true;
    this.#stage = LoginStage.FULL_FEATURE;
    const params = negotiator.finish({
      InitiatorName: identity.initiatorName,
      InitiatorAlias: identity.initiatorAlias,
      TargetName: identity.targetName,
    });
    const response: LoginResponse = {
      transit: true,
      cont: false,
      csg: stage,
      nsg: LoginStage.FULL_FEATURE,
      ...LoginStatus.SUCCESS,
      // A reinstated connection keeps its session's TSIH; a new session gets one.
      tsih: this.#tsih !== 0 ? this.#tsih : this.#ctx.allocTsih(),
      data: buildTextKeys(answers),
    };
    return { response, complete: true, failed: false, params };
  }

  /** RFC 7143 11.12: header fields that must be valid (and stable over the login). */
  #checkHeader(req: LoginRequest): Failure | undefined {
    // Fragments carrying text are bounded by MAX_TEXT_BYTES; count the rest.
    if ((!req.cont || req.data.length === 0) && ++this.#requests > LoginLimits.MAX_REQUESTS) {
      return { status: LoginStatus.INITIATOR_ERROR, reason: 'too many login requests' };
    }
    // RFC 7143 11.12 (Version-max, Version-min): the target speaks version 0x00 only.
    if (req.versionMin > 0 || req.versionMax < req.versionMin) {
      return {
        status: LoginStatus.UNSUPPORTED_VERSION,
        reason: `version ${req.versionMin}..${req.versionMax}`,
      };
    }
    // RFC 7143 11.12 (C bit): T and C must not both be set.
    if (req.transit && req.cont) return { status: LoginStatus.INITIATOR_ERROR, reason: 'T and C both set' };
    if (this.#stage === undefined) {
      // The leading request. A non-zero TSIH names an existing session: with
      // MaxConnections=1 that is connection reinstatement (RFC 7143 6.3.4). A TSIH no
      // live session has gets "session does not exist" (11.13.5) at once; the session's
      // identity is checked against this login's when it completes (login-exchange.ts).
      if (req.tsih !== 0) {
        if (this.#ctx.hasSession?.(req.tsih, req.isid) !== true) {
          return { status: LoginStatus.SESSION_DOES_NOT_EXIST, reason: `TSIH ${req.tsih}` };
        }
        this.#tsih = req.tsih;
      }
      if (req.csg !== LoginStage.SECURITY && req.csg !== LoginStage.OPERATIONAL) {
        return { status: LoginStatus.INITIATOR_ERROR, reason: `bad CSG ${req.csg}` };
      }
      this.#stage = req.csg;
      this.#isid = Buffer.from(req.isid);
      this.#cid = req.cid;
    } else {
      // RFC 7143 6.3 / 11.12: ISID, TSIH and CID stay the same through the login; the
      // initiator continues in the stage the target last agreed to.
      if (req.tsih !== this.#tsih || req.cid !== this.#cid || !this.#isid!.equals(req.isid)) {
        return { status: LoginStatus.INITIATOR_ERROR, reason: 'ISID/TSIH/CID changed during login' };
      }
      if (req.csg !== this.#stage) {
        return { status: LoginStatus.INITIATOR_ERROR, reason: `CSG ${req.csg} in stage ${this.#stage}` };
      }
    }
    if (req.transit) {
      // RFC 7143 11.12 (CSG/NSG): NSG must be a later stage; 2 is reserved.
      const okNext =
        req.nsg > req.csg && (req.nsg === LoginStage.OPERATIONAL || req.nsg === LoginStage.FULL_FEATURE);
      if (!okNext)
        return { status: LoginStatus.INITIATOR_ERROR, reason: `bad NSG ${req.nsg} from CSG ${req.csg}` };
    }
    return undefined;
  }

  /**
   * RFC 7143 6.2: a key is not negotiated twice in one login (a Login reject with an
   * initiator error). The declarative identity keys may be repeated with the same value.
   */
  #dropRepeats(pairs: TextPair[]): TextPair[] | Failure {
    const out: TextPair[] = [];
    for (const p of pairs) {
      const before = this.#seen.get(p.key);
      if (before !== undefined) {
        if (IDENTITY_KEYS.has(p.key) && before === p.value) continue;
        return { status: LoginStatus.INITIATOR_ERROR, reason: `key ${p.key} repeated` };
      }
      // IO keys (RFC 7143 13): only in the leading request's text. A late alias is
      // harmless and ignored.
      if (IDENTITY_KEYS.has(p.key) && this.#identity !== undefined) {
        if (p.key === 'InitiatorAlias') continue;
        return { status: LoginStatus.INITIATOR_ERROR, reason: `${p.key} after the first request` };
      }
      this.#seen.set(p.key, p.value);
      out.push(p);
    }
    return out;
  }

  /** The leading request's text: who is logging in, to what (RFC 7143 6.3, 13.4-13.21). */
  #identify(pairs: readonly TextPair[], stage: number): Failure | undefined {
    const get = (k: string): string | undefined => pairs.find((p) => p.key === k)?.value;
    const initiatorName = get('InitiatorName');
    // RFC 7143 13.5: InitiatorName must be in the first Login Request.
    if (initiatorName === undefined || initiatorName.length === 0) {
      return { status: LoginStatus.MISSING_PARAMETER, reason: 'InitiatorName missing' };
    }
    if (byteLength(initiatorName) > TextLimits.NAME_MAX_BYTES) {
      return { status: LoginStatus.INITIATOR_ERROR, reason: 'InitiatorName too long' };
    }
    this.#initiatorName = initiatorName;
    const initiatorAlias = get('InitiatorAlias') ?? '';
    if (byteLength(initiatorAlias) > TextLimits.SIMPLE_VALUE_MAX_BYTES) {
      return { status: LoginStatus.INITIATOR_ERROR, reason: 'InitiatorAlias too long' };
    }
    // RFC 7143 13.21: SessionType defaults to Normal.
    const sessionType = get('SessionType') ?? 'Normal';
    if (sessionType !== 'Normal' && sessionType !== 'Discovery') {
      return { status: LoginStatus.SESSION_TYPE_NOT_SUPPORTED, reason: 'unknown SessionType' };
    }

    let target: LoginTargetInfo | undefined;
    let auth: AuthConfig | undefined;
    if (sessionType === 'Normal') {
      // RFC 7143 13.4: TargetName is required for a normal session.
      const targetName = get('TargetName');
      if (targetName === undefined || targetName.length === 0) {
        return { status: LoginStatus.MISSING_PARAMETER, reason: 'TargetName missing' };
      }
      // iSCSI names compare case-insensitively (RFC 7143 4.2.7.2: normalized to lower case).
      const wanted = targetName.toLowerCase();
      target = this.#ctx.targets.find((t) => t.iqn.toLowerCase() === wanted);
      if (target === undefined) return { status: LoginStatus.NOT_FOUND, reason: 'unknown target' };
      // LUN masking: an initiator the target's ACLs refuse gets AUTHORIZATION FAILURE
      // (RFC 7143 11.13.5, status 0202h) before any authentication.
      if (target.authorize !== undefined && !target.authorize(initiatorName)) {
        return { status: LoginStatus.AUTHORIZATION_FAILURE, reason: 'initiator not allowed on this target' };
      }
      auth = target.authFor?.(initiatorName) ?? target.auth;
    } else {
      auth = this.#ctx.discoveryAuth; // a TargetName in a discovery login is ignored
    }

    this.#identity = {
      sessionType,
      initiatorName,
      initiatorAlias,
      targetName: target?.iqn ?? '',
      target,
    };
    this.#security = new SecurityNegotiator({
      ...(auth?.chap === undefined ? {} : { credentials: auth.chap }),
      // Mutual CHAP (RFC 7143 12.1.3): what the target answers an initiator's challenge with.
      ...(auth?.chap === undefined || auth.mutualChap === undefined
        ? {}
        : { targetCredentials: auth.mutualChap }),
      ...(target === undefined ? {} : { targetName: target.iqn }),
      initiatorName,
      peer: this.#ctx.peer,
      log: this.#ctx.log,
    });
    this.#negotiator = new OperationalNegotiator({ sessionType, tuning: this.#ctx.tuning });

    // Starting in the operational stage skips security: fine only without auth config.
    if (stage === LoginStage.OPERATIONAL && !this.#security.acceptImplicitNone()) {
      return { status: LoginStatus.AUTHENTICATION_FAILURE, reason: 'security stage skipped', logged: true };
    }
    return undefined;
  }

  #respond(r: {
    transit: boolean;
    cont: boolean;
    csg: number;
    nsg: number;
    data: ReadonlyArray<readonly [string, string]>;
  }): LoginStepResult {
    const response: LoginResponse = {
      transit: r.transit,
      cont: r.cont,
      csg: r.csg,
      nsg: r.nsg,
      ...LoginStatus.SUCCESS,
      tsih: 0, // RFC 7143 11.13 (TSIH): the TSIH is returned in the final response only
      data: buildTextKeys(r.data),
    };
    return { response, complete: false, failed: false };
  }

  /**
   * End the login with a failure status (RFC 7143 11.13.5). Authentication failures are
   * logged at warn (the CHAP module already logged its own); others at info.
   */
  #fail(req: LoginRequest, failure: Failure, alreadyLogged = false): LoginStepResult {
    this.#finished = true;
    if (!alreadyLogged && failure.logged !== true) {
      const entry = {
        initiator: this.#initiatorName,
        peer: this.#ctx.peer,
        statusClass: failure.status.statusClass,
        statusDetail: failure.status.statusDetail,
        reason: failure.reason,
      };
      if (failure.status === LoginStatus.AUTHENTICATION_FAILURE) {
        this.#ctx.log.warn(entry, 'iSCSI login authentication failed');
      } else {
        this.#ctx.log.info(entry, 'iSCSI login rejected');
      }
    }
    const response: LoginResponse = {
      transit: false,
      cont: false,
      csg: this.#stage ?? req.csg & 0x3,
      nsg: 0,
      ...failure.status,
      tsih: 0,
      data: Buffer.alloc(0),
    };
    return { response, complete: false, failed: true };
  }
}
