/**
 * Routing tables the supervisor computes and every session worker receives: which
 * targets exist, which portal group tags they answer on, and where each LUN lives
 * (LUN worker index + logical unit index on that worker).
 */
import type { AuthConfig } from '../../shared/config-types.ts';

export interface LunRoute {
  lunWorker: number;
  luIndex: number;
  device: string;
}

export interface TargetRoute {
  iqn: string;
  alias?: string;
  auth?: AuthConfig;
  /** LUN number -> route. */
  luns: Map<number, LunRoute>;
  /** Sorted LUN numbers, for REPORT LUNS. */
  lunList: number[];
  /** Portal indexes (into PortalRoute[]) this target listens on. */
  portals: number[];
}

export interface PortalRoute {
  host: string;
  port: number;
  /** Target portal group tag (RFC 7143 13.9). */
  tag: number;
}

/** Serializable form sent in workerData (Maps do not survive msgpack). */
export interface RoutesWire {
  targets: { iqn: string; alias?: string; auth?: AuthConfig; luns: [number, LunRoute][]; portals: number[] }[];
  portals: PortalRoute[];
}

export function routesFromWire(w: RoutesWire): { targets: Map<string, TargetRoute>; portals: PortalRoute[] } {
  const targets = new Map<string, TargetRoute>();
  for (const t of w.targets) {
    const luns = new Map(t.luns);
    targets.set(t.iqn, {
      iqn: t.iqn,
      alias: t.alias,
      auth: t.auth,
      luns,
      lunList: [...luns.keys()].sort((a, b) => a - b),
      portals: t.portals,
    });
  }
  return { targets, portals: w.portals };
}

/** "host:port,tag" as SendTargets reports it (RFC 7143 13.8), IPv6 in brackets. */
export function formatTargetAddress(p: PortalRoute): string {
  const host = p.host.includes(':') ? `[${p.host}]` : p.host;
  return `${host}:${p.port},${p.tag}`;
}
