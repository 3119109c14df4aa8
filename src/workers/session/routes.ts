/**
 * Routing tables the supervisor computes and every session worker receives: which
 * targets exist, which portal group tags they answer on, and where each LUN lives
 * (LUN worker index + logical unit index on that worker).
 */
import type { AuthConfig } from '../../shared/config-types.ts';
import type { AclWire, LunRoute, PortalRoute, RoutesWire } from '../../shared/wire/routes.ts';

export type { LunRoute, PortalRoute, RoutesWire };

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
  /** LUN masking entries, in config order (empty: no ACLs, every initiator sees `luns`). */
  acls: AclRoute[];
  /** Initiators matching no ACL entry: `allow` sees `luns`, `deny` is refused at login. */
  defaultAccess: 'allow' | 'deny';
}

/** What one initiator may see of a target (routeFor). */
export interface NexusView {
  /** LUN number (as this initiator sees it) -> route. */
  luns: Map<number, LunRoute>;
  /** Sorted LUN numbers, for REPORT LUNS. */
  lunList: number[];
  /** Credentials of the matching ACL entry, when it has its own; else the target's. */
  auth?: AuthConfig;
}

/** One ACL entry, compiled for matching (see routeFor). */
export interface AclRoute {
  /** Exact initiator names, lower-cased (RFC 7143 4.2.7.2: compared case-insensitively). */
  exact: Set<string>;
  /** `*` patterns compiled to anchored, case-insensitive expressions. */
  patterns: RegExp[];
  /** The view every initiator matching this entry gets (shared, never mutated). */
  view: NexusView;
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
      acls: (t.acls ?? []).map(compileAcl),
      defaultAccess: t.defaultAccess ?? 'allow',
    });
  }
  return { targets, portals: w.portals };
}

function compileAcl(a: AclWire): AclRoute {
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  for (const name of a.initiators) {
    if (!name.includes('*')) {
      exact.add(name.toLowerCase());
      continue;
    }
    // `*` is any run of characters; everything else matches itself.
    const body = name
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    patterns.push(new RegExp(`^${body}$`, 'i'));
  }
  const luns = new Map(a.luns);
  const view: NexusView = { luns, lunList: [...luns.keys()].sort((x, y) => x - y) };
  if (a.auth !== undefined) view.auth = a.auth;
  return { exact, patterns, view };
}

/**
 * LUN masking (SAM-5 4.6.x "LUN mapping"; SCST security groups, LIO mapped LUNs): what
 * `initiatorName` may see of `target`, or null when it may not log in (the login answers
 * AUTHORIZATION FAILURE, RFC 7143 11.13.5, and SendTargets does not list the target).
 *
 * Order: an entry naming the initiator exactly wins over every pattern; otherwise the
 * first entry (config order) with a matching pattern; otherwise `defaultAccess` decides
 * between the target's own `luns` and refusal. Called once per login; the returned maps
 * are shared between sessions and must not be mutated.
 */
export function routeFor(target: TargetRoute, initiatorName: string): NexusView | null {
  const acls = target.acls;
  if (acls.length > 0) {
    const name = initiatorName.toLowerCase();
    for (const a of acls) if (a.exact.has(name)) return a.view;
    for (const a of acls) {
      for (const re of a.patterns) if (re.test(initiatorName)) return a.view;
    }
  }
  if (target.defaultAccess === 'deny') return null;
  const view: NexusView = { luns: target.luns, lunList: target.lunList };
  if (target.auth !== undefined) view.auth = target.auth;
  return view;
}

/** "host:port,tag" as SendTargets reports it (RFC 7143 13.8), IPv6 in brackets. */
export function formatTargetAddress(p: PortalRoute): string {
  const host = p.host.includes(':') ? `[${p.host}]` : p.host;
  return `${host}:${p.port},${p.tag}`;
}

/**
 * The LoginTargetInfo hooks (login/types.ts) for `target`: none when every initiator may
 * log in with the target's own credentials, so unmasked targets cost nothing at login.
 */
export function loginAccess(target: TargetRoute): {
  authorize?: (initiatorName: string) => boolean;
  authFor?: (initiatorName: string) => AuthConfig | undefined;
} {
  if (target.acls.length === 0 && target.defaultAccess === 'allow') return {};
  return {
    authorize: (initiatorName) => routeFor(target, initiatorName) !== null,
    authFor: (initiatorName) => routeFor(target, initiatorName)?.auth,
  };
}

/**
 * The route a session of `initiatorName` uses: `target` itself when the initiator sees
 * the target's own LUN map, a copy carrying its ACL entry's map (so REPORT LUNS and
 * command routing show each I_T nexus its own inventory), or null when it is refused.
 */
export function sessionRoute(target: TargetRoute, initiatorName: string): TargetRoute | null {
  const view = routeFor(target, initiatorName);
  if (view === null) return null;
  if (view.luns === target.luns) return target;
  return { ...target, luns: view.luns, lunList: view.lunList };
}

/**
 * True when two views show an initiator the same LUN inventory: the same LUN numbers
 * leading to the same devices (SPC-4 6.33: what REPORT LUNS would return, and what each
 * LUN addresses).
 */
export function sameInventory(a: TargetRoute, b: TargetRoute): boolean {
  if (a.luns === b.luns) return true;
  if (a.luns.size !== b.luns.size) return false;
  for (const [lun, r] of a.luns) {
    const o = b.luns.get(lun);
    if (o === undefined || o.device !== r.device) return false;
  }
  return true;
}

/** Each logical unit of `target`'s LUN map once (a device may appear under several LUNs). */
export function distinctUnits(target: TargetRoute): LunRoute[] {
  const seen = new Set<string>();
  const out: LunRoute[] = [];
  for (const route of target.luns.values()) {
    if (seen.has(route.device)) continue;
    seen.add(route.device);
    out.push(route);
  }
  return out;
}
