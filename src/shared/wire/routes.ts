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
  /** Target portal group tag (RFC 7143 13.9). */
  tag: number;
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
