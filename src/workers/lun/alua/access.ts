/**
 * The ALUA stage of the LUN pipeline (UA → ALUA → reservation → parse → execute,
 * DESIGN.md): a command that arrives through a target port whose group is not active is
 * refused unless its state admits that command (SPC-4 5.16.2.4.x, 5.16.2.5).
 *
 * Tables over switches: each state has a declarative list of admitted commands, compiled
 * once into a 256-entry array of service-action bit masks (bit n: service action n is
 * admitted; ALL_ACTIONS: every one, for opcodes without service actions).
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { MaintenanceIn, MaintenanceOut, Opcode } from '../../../shared/scsi/opcodes.ts';
import type { SenseDetail } from '../../../shared/scsi/sense.ts';
import { SenseReason, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { AluaState } from './port-groups.ts';

/** RECEIVE DIAGNOSTIC RESULTS (SPC-4 6.27); not implemented, but admitted in standby. */
const RECEIVE_DIAGNOSTIC_RESULTS = 0x1c;

const ALL_ACTIONS = 0xffffffff;

/** One admitted command: an opcode, and for service-action opcodes the one action. */
interface Admitted {
  readonly opcode: number;
  readonly serviceAction?: number;
}

/**
 * Admitted in every state: INQUIRY, REPORT LUNS, REQUEST SENSE (these also bypass unit
 * attentions, SAM-5 5.14), REPORT TARGET PORT GROUPS and SET TARGET PORT GROUPS (the
 * latter then fails as unsupported: access is implicit only). The echo buffer modes of
 * READ BUFFER / WRITE BUFFER are also listed by SPC-4; spindle implements neither.
 */
const BASE: readonly Admitted[] = [
  { opcode: Opcode.INQUIRY },
  { opcode: Opcode.REPORT_LUNS },
  { opcode: Opcode.REQUEST_SENSE },
  { opcode: Opcode.MAINTENANCE_IN, serviceAction: MaintenanceIn.REPORT_TARGET_PORT_GROUPS },
  { opcode: Opcode.MAINTENANCE_OUT, serviceAction: MaintenanceOut.SET_TARGET_PORT_GROUPS },
];

/** SPC-4 5.16.2.4.4 standby: BASE plus the mode, log, diagnostic and PR commands. */
const STANDBY: readonly Admitted[] = [
  ...BASE,
  { opcode: Opcode.LOG_SELECT },
  { opcode: Opcode.LOG_SENSE },
  { opcode: Opcode.MODE_SELECT_6 },
  { opcode: Opcode.MODE_SELECT_10 },
  { opcode: Opcode.MODE_SENSE_6 },
  { opcode: Opcode.MODE_SENSE_10 },
  { opcode: RECEIVE_DIAGNOSTIC_RESULTS },
  { opcode: Opcode.SEND_DIAGNOSTIC },
  { opcode: Opcode.PERSISTENT_RESERVE_IN },
  { opcode: Opcode.PERSISTENT_RESERVE_OUT },
];

/** SPC-4 5.16.2.4.5 unavailable: BASE only. */
const UNAVAILABLE: readonly Admitted[] = BASE;

/**
 * SPC-4 5.16.2.5 transitioning between states: INQUIRY, REPORT LUNS, REPORT TARGET PORT
 * GROUPS, REQUEST SENSE (SET TARGET PORT GROUPS is not among them).
 */
const TRANSITIONING: readonly Admitted[] = BASE.filter((c) => c.opcode !== Opcode.MAINTENANCE_OUT);

/** A non-active state: what it admits and the NOT READY reason for everything else. */
export interface StateRule {
  /** opcode -> bit mask of admitted service actions (0: opcode refused). */
  readonly admitted: Uint32Array;
  readonly reason: SenseDetail;
}

function compile(list: readonly Admitted[], reason: SenseDetail): StateRule {
  const admitted = new Uint32Array(256);
  for (const c of list) {
    admitted[c.opcode] =
      c.serviceAction === undefined ? ALL_ACTIONS : admitted[c.opcode]! | (1 << c.serviceAction);
  }
  return { admitted, reason };
}

/**
 * State -> rule, for the states that refuse commands (active/optimized and
 * active/non-optimized admit everything and have no rule).
 */
export const STATE_RULES: ReadonlyMap<number, StateRule> = new Map([
  [AluaState.STANDBY, compile(STANDBY, SenseReason.LUN_NOT_ACCESSIBLE_ALUA_STANDBY)], // 04/0B
  [AluaState.UNAVAILABLE, compile(UNAVAILABLE, SenseReason.LUN_NOT_ACCESSIBLE_ALUA_UNAVAILABLE)], // 04/0C
  [AluaState.TRANSITIONING, compile(TRANSITIONING, SenseReason.LUN_NOT_READY_ALUA_TRANSITION)], // 04/0A
]);

/** Whether `rule` admits the command whose CDB is `cdb`. */
export function admits(rule: StateRule, cdb: Buffer): boolean {
  const mask = rule.admitted[cdb[0]!]!;
  if (mask === ALL_ACTIONS) return true;
  // Service-action opcodes (MAINTENANCE IN/OUT): SERVICE ACTION is byte 1 bits 4..0.
  return (mask & (1 << (cdb[1]! & 0x1f))) !== 0;
}

/**
 * Pipeline stage 2. When the command's target port is in a group whose state refuses it,
 * completes it with CHECK CONDITION / NOT READY and the state's ASC/ASCQ and returns
 * true (the caller calls finish()). Hot path: one integer test while every group is
 * active; a nexus without a known target port (tests, loopback) is never refused.
 */
export function checkAluaAccess(lu: LogicalUnit, cmd: ScsiCommand): boolean {
  const table = lu.alua.table;
  if (table.inaccessible === 0) return false;
  const nexus = lu.nexuses.get(cmd.nexus);
  if (nexus === undefined) return false;
  const group = table.group(nexus.targetPortGroup);
  if (group === undefined) return false;
  const rule = STATE_RULES.get(group.state);
  if (rule === undefined || admits(rule, cmd.cdb)) return false;
  setCheckCondition(cmd, rule.reason);
  return true;
}
