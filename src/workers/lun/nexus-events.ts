/**
 * What a logical unit does when an I_T nexus is lost (SAM-5 6.3.4: the session ended,
 * the connection dropped). State keyed by the session's handle goes; state keyed by the
 * nexus identity (persistent reservations, unit attentions) deliberately stays: SPC-4
 * 5.14 registrations survive nexus loss, and the identity is told of the loss with
 * I_T NEXUS LOSS OCCURRED when it comes back (SAM-5 6.3.4).
 */
import type { LogicalUnit } from './logical-unit.ts';
import type { NexusInfo } from './nexus.ts';
import { prNexusLost } from './pr/engine.ts';
import { unitAttentionNexusLost } from './ua/unit-attention.ts';
import { abortNexusCommands } from './task-management.ts';

export function nexusLost(lu: LogicalUnit, id: number, info: NexusInfo | undefined): void {
  // The identity keeps its unit attentions and gains I_T NEXUS LOSS OCCURRED (ua/).
  unitAttentionNexusLost(lu, id, info);
  // SBC-4 5.14: a PREVENT ALLOW MEDIUM REMOVAL prevention ends with its I_T nexus.
  lu.sbc.preventing.delete(id);
  prNexusLost(lu, id, info); // SPC-2 reservation of the nexus ends (pr/engine.ts)
  // A SANITIZE command of the nexus that waits for its operation ends now (nobody is
  // left to tell); the operation itself is not even suspended (SBC-4 4.11.2).
  const waiter = lu.sbc.sanitizeOp?.waiter;
  if (waiter != null && waiter.nexus === id) lu.sbc.releaseSanitizeWaiter(waiter);
  // Its commands still in the task set end unanswered; an ACA it faulted is cleared.
  abortNexusCommands(lu, id);
}
