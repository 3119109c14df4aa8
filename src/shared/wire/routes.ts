/**
 * The routing tables the supervisor computes (supervisor/topology.ts) and every session
 * worker receives, in their wire form (plain arrays: Maps do not survive msgpack). The
 * session worker compiles them for lookups (workers/session/routes.ts).
 */
import type { AuthConfig } from '../config-types.ts';

/** Where one LUN's logical unit lives. */
export interface LunRoute {
  lunWorker: number;
  /** Unit index on that LUN worker (never reused while running). */
  luIndex: number;
  device: string;
}

export interface PortalRoute {
  host: string;
  port: number;
  /**
   * Target portal group tag (RFC 7143 13.9), also the RELATIVE TARGET PORT IDENTIFIER of
   * the portal (each portal is one SCSI target port).
   */
  tag: number;
  /** TARGET PORT GROUP (SPC-4 5.16) the port belongs to. */
  group: number;
  /**
   * Served by another cluster node: listed by SendTargets (so initiators find every path)
   * but not listened on here. Local portals come first, at the index of their port worker.
   */
  remote?: boolean;
}

/** One ACL entry. */
export interface AclWire {
  initiators: string[];
  luns: [number, LunRoute][];
  auth?: AuthConfig;
}

export interface TargetWire {
  iqn: string;
  alias?: string;
  auth?: AuthConfig;
  luns: [number, LunRoute][];
  /** Portal indexes (into RoutesWire.portals) this target listens on. */
  portals: number[];
  /** Absent: no ACLs. */
  acls?: AclWire[];
  /** Absent: `allow`. */
  defaultAccess?: 'allow' | 'deny';
}

export interface RoutesWire {
  targets: TargetWire[];
  portals: PortalRoute[];
}
