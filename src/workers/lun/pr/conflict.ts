/**
 * The reservation stage of the LUN pipeline (UA → ALUA → reservation → execute,
 * DESIGN.md): is `cmd` allowed in the presence of the LU's reservations?
 *
 * Which commands each kind of reservation allows is per-command policy, decided in the
 * opcode registry (../opcode-registry.ts, the `pr` and `spc2` flags; the classes and the
 * SPC-4 table 62 / SBC-4 table 13 / SPC-2 5.5.1 rules behind them are in
 * ../command-policy.ts). This module applies them to the issuing nexus's role:
 *
 *   persistent reservation of TYPE t, nexus neither holder nor (RR types) registrant:
 *     ALWAYS never conflicts; READ conflicts unless t is a Write Exclusive flavour
 *     (1h, 5h, 7h); WRITE always conflicts. The holder never conflicts, and under the
 *     registrants-only / all-registrants types (5h-8h) neither does any registrant.
 *   SPC-2 reservation: CONFLICT from every nexus; HOLDER_ONLY unless the nexus holds it.
 *
 * RESERVATION CONFLICT is a status without sense data (SAM-5 5.3.1).
 *
 * Hot path: no reservation of either kind → one load and compare, return false.
 * Otherwise table lookups and one cached Map lookup of the nexus's role; no allocation.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { PrAccess, Spc2Access } from '../command-policy.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import type { OpcodeMap } from '../opcode-map.ts';
import { PrRole } from './engine.ts';

/**
 * Bit per reservation TYPE (index = TYPE): set when unregistered nexuses may READ
 * (the Write Exclusive flavours 1h, 5h, 7h).
 */
const READ_ALLOWED_BY_TYPE = new Uint8Array([0, 1, 0, 0, 0, 1, 0, 1, 0]);
/** Set for the registrants-only and all-registrants types (registrants have access). */
const REGISTRANTS_BY_TYPE = new Uint8Array([0, 0, 0, 0, 0, 1, 1, 1, 1]);

/**
 * The reservation check, with the registry's compiled `pr` (PrAccess) and `spc2`
 * (Spc2Access) tables. True: `cmd` completed with RESERVATION CONFLICT (status set, no
 * sense; the caller calls finish()). False: go on.
 */
export function checkReservationConflict(
  lu: LogicalUnit,
  cmd: ScsiCommand,
  prAccess: OpcodeMap,
  spc2Access: OpcodeMap,
): boolean {
  const pr = lu.pr;
  const type = pr.reservationType;
  if (type === 0 && !pr.spc2Active) return false;
  if (conflicts(lu, cmd, type, prAccess, spc2Access)) {
    cmd.status = ScsiStatus.RESERVATION_CONFLICT;
    cmd.senseLength = 0;
    cmd.dataInLength = 0;
    return true;
  }
  return false;
}

function conflicts(
  lu: LogicalUnit,
  cmd: ScsiCommand,
  type: number,
  prAccess: OpcodeMap,
  spc2Access: OpcodeMap,
): boolean {
  const pr = lu.pr;
  const cdb = cmd.cdb;
  const role = pr.roleOf(cmd.nexus);
  if (pr.spc2Active) {
    const a = spc2Access.get(cdb);
    if (a === Spc2Access.CONFLICT) return true;
    if (a === Spc2Access.HOLDER_ONLY && (role & PrRole.SPC2_HOLDER) === 0) return true;
  }
  if (type === 0 || (role & PrRole.HOLDER) !== 0) return false;
  const c = prAccess.get(cdb);
  if (c === PrAccess.ALWAYS) return false;
  if ((role & PrRole.REGISTERED) !== 0 && REGISTRANTS_BY_TYPE[type] === 1) return false;
  return c !== PrAccess.READ || READ_ALLOWED_BY_TYPE[type] === 0;
}
