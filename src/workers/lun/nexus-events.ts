/**
 * What a logical unit does when an I_T nexus is lost (SAM-5 6.3.4: the session ended,
 * the connection dropped). State keyed by the session's handle goes; state keyed by the
 * nexus identity (persistent reservations) deliberately stays: SPC-4 5.14 registrations
 * survive nexus loss.
 */
import type { LogicalUnit } from './logical-unit.ts';
import type { NexusInfo } from './nexus.ts';
import { prNexusLost } from './pr/engine.ts';

export function nexusLost(lu: LogicalUnit, id: number, info: NexusInfo | undefined): void {
  lu.ua.pending.delete(id);
  // SBC-4 5.14: a PREVENT ALLOW MEDIUM REMOVAL prevention ends with its I_T nexus.
  lu.sbc.preventing.delete(id);
  prNexusLost(lu, id, info); // SPC-2 reservation of the nexus ends (pr/engine.ts)
}
