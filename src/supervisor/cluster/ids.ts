/**
 * Cluster-wide identifiers derived from the configuration, not from any node's order of
 * appearance, so every node computes the same numbers and they survive restarts and
 * edits elsewhere in the file (DESIGN.md "Cluster"):
 *
 *   TARGET PORT GROUP (SPC-4 6.36.2) of a node: its `portGroup`, or a hash of its id;
 *   RELATIVE TARGET PORT IDENTIFIER (SPC-4 7.8.6.7) of a portal, also its iSCSI target
 *   portal group tag (RFC 7143 13.9): a hash of node id and portal.
 *
 * Both are 16-bit and non-zero; collisions are configuration errors (the operator then sets
 * `portGroup`, or renames), checked by the schema.
 */
import type { PortalConfig } from '../../shared/config-types.ts';
import type { ClusterNodeConfig } from '../../shared/cluster-config.ts';

/** FNV-1a, 32 bits: small, stable, well spread for short strings. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A 16-bit identifier 1-65535 from `s`. */
function id16(s: string): number {
  return 1 + (fnv1a(s) % 65535);
}

export function nodePortGroup(node: ClusterNodeConfig): number {
  return node.portGroup ?? id16(`group/${node.id}`);
}

/** The relative target port id (and portal group tag) of `portal` on `node`. */
export function portalPortId(nodeId: string, portal: PortalConfig): number {
  return id16(`port/${nodeId}/${portal.host.toLowerCase()}/${portal.port}`);
}
