/**
 * Contract between the session worker's connection code (PDU framing, socket) and the
 * login phase logic (text keys, negotiation, CHAP, target lookup). The login logic is
 * pure: it sees decoded Login Request fields and returns the Login Response to send.
 */
import type { SessionParams } from '../../../../shared/iscsi/session-params.ts';
import type { AuthConfig, IscsiTuning } from '../../../../shared/config-types.ts';

/** RFC 7143 11.12: CSG/NSG stage numbers. */
export const LoginStage = {
  SECURITY: 0,
  OPERATIONAL: 1,
  FULL_FEATURE: 3,
} as const;

/** Decoded Login Request (RFC 7143 11.12). */
export interface LoginRequest {
  transit: boolean; // T bit
  cont: boolean; // C bit
  csg: number;
  nsg: number;
  versionMax: number;
  versionMin: number;
  isid: Buffer; // 6 bytes
  tsih: number;
  itt: number;
  cid: number;
  cmdSN: number;
  expStatSN: number;
  /** Data segment (text keys, NUL separated); may be a fragment when cont is set. */
  data: Buffer;
}

/** The Login Response to send (RFC 7143 11.13); the connection code fills StatSN etc. */
export interface LoginResponse {
  transit: boolean;
  cont: boolean;
  csg: number;
  nsg: number;
  statusClass: number;
  statusDetail: number;
  /** TSIH to put in the response (0 until the final response of a leading login). */
  tsih: number;
  /** Text keys to send (NUL-terminated key=value pairs). */
  data: Buffer;
}

/** What the login logic can see of the target's configuration. */
export interface LoginTargetInfo {
  iqn: string;
  alias?: string;
  /** Target portal group tag of the portal the connection arrived on. */
  portalGroupTag: number;
  /** Addresses for SendTargets, "host:port,tag" form (IPv6 hosts in brackets). */
  addresses: string[];
  auth?: AuthConfig;
  /**
   * LUN masking (routes.ts routeFor): whether `initiatorName` may log in to this target.
   * false: the login fails with AUTHORIZATION FAILURE (RFC 7143 11.13.5) and SendTargets
   * does not list the target. Absent: every initiator may.
   */
  authorize?: (initiatorName: string) => boolean;
  /** Credentials for `initiatorName` when its ACL entry has its own; absent/undefined: `auth`. */
  authFor?: (initiatorName: string) => AuthConfig | undefined;
}

export interface LoginContext {
  /** Targets reachable through this portal. */
  targets: LoginTargetInfo[];
  /** Portal group tag of the portal this connection arrived on. */
  portalGroupTag: number;
  discoveryAuth?: AuthConfig;
  tuning: IscsiTuning;
  /** Allocate a fresh non-zero TSIH for a new session. */
  allocTsih(): number;
  /**
   * Whether a live session with this TSIH (and ISID, when it is hosted here) may exist:
   * a login with a non-zero TSIH reinstates one of its connections (RFC 7143 6.3.4).
   */
  hasSession?(tsih: number, isid: Buffer): boolean;
  /** Remote address, for logs. */
  peer: string;
  /** Log sink: failed authentications etc. Secrets must never reach it. */
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** Outcome after a Login Request has been processed. */
export interface LoginStepResult {
  response: LoginResponse;
  /** The response completes the login: the connection enters full feature phase. */
  complete: boolean;
  /** The response carries a failure status: close the connection after sending it. */
  failed: boolean;
  /** Final negotiated parameters; set when complete. */
  params?: SessionParams;
}
