/**
 * The ALUA stage of the LUN pipeline (UA → ALUA → reservation → parse → execute,
 * DESIGN.md): a command that arrives through a target port whose group is not active is
 * refused unless its state admits that command (SPC-4 5.16.2.4.x, 5.16.2.5).
 *
 * Which commands each state admits is per-command policy, decided by the `alua` flag of
 * each row of the opcode registry (../opcode-registry.ts, ../command-policy.ts) and
 * compiled into one OpcodeMap of AluaBit sets.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import type { SenseDetail } from '../../../shared/scsi/sense.ts';
import { SenseReason, setCheckCondition } from '../../../shared/scsi/sense.ts';
import { AluaBit } from '../command-policy.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import type { OpcodeMap } from '../opcode-map.ts';
import { AluaState } from './port-groups.ts';

/** A non-active state: its bit in the compiled table and the NOT READY reason for the rest. */
export interface StateRule {
  readonly bit: number;
  readonly reason: SenseDetail;
}

/**
 * State -> rule, for the states that refuse commands (active/optimized and
 * active/non-optimized admit everything and have no rule).
 */
export const STATE_RULES: ReadonlyMap<number, StateRule> = new Map([
  [AluaState.STANDBY, { bit: AluaBit.STANDBY, reason: SenseReason.LUN_NOT_ACCESSIBLE_ALUA_STANDBY }], // 04/0B
  [
    AluaState.UNAVAILABLE,
    { bit: AluaBit.UNAVAILABLE, reason: SenseReason.LUN_NOT_ACCESSIBLE_ALUA_UNAVAILABLE },
  ], // 04/0C
  [
    AluaState.TRANSITIONING,
    { bit: AluaBit.TRANSITIONING, reason: SenseReason.LUN_NOT_READY_ALUA_TRANSITION },
  ], // 04/0A
]);

/** Whether `rule` admits the command whose CDB is `cdb`, per the compiled `admitted` table. */
export function admits(rule: StateRule, admitted: OpcodeMap, cdb: Buffer): boolean {
  return (admitted.get(cdb) & rule.bit) !== 0;
}

/**
 * Pipeline stage 2, with the registry's compiled `alua` table. When the command's target
 * port is in a group whose state refuses it, completes it with CHECK CONDITION / NOT
 * READY and the state's ASC/ASCQ and returns true (the caller calls finish()). Hot path:
 * one integer test while every group is active; a nexus without a known target port
 * (tests, loopback) is never refused.
 */
export function checkAluaAccess(lu: LogicalUnit, cmd: ScsiCommand, admitted: OpcodeMap): boolean {
  const table = lu.alua.table;
  if (table.inaccessible === 0) return false;
  const nexus = lu.nexuses.get(cmd.nexus);
  if (nexus === undefined) return false;
  const group = table.group(nexus.targetPortGroup);
  if (group === undefined) return false;
  const rule = STATE_RULES.get(group.state);
  if (rule === undefined || admits(rule, admitted, cmd.cdb)) return false;
  setCheckCondition(cmd, rule.reason);
  return true;
}
