/**
 * The opcode registry: one row per command spindle knows (SPC rows in spc/commands.ts,
 * SBC rows in sbc/commands.ts, REPORT LUNS and REPORT SUPPORTED OPERATION CODES here),
 * each carrying its opcode, service action, name, CDB usage data, executor and every
 * per-command decision of the pipeline (command-policy.ts). In the spirit of SCST's
 * scst_scsi_op_table, except that no flag has an implicit default: the type makes every
 * one required, and test/unit/lun/opcode-registry.test.ts walks the rows.
 *
 * Everything the LUN pipeline looks up per command is compiled from these rows at module
 * load, so it cannot drift from them:
 *   - dispatch (DIRECT, BY_SERVICE_ACTION) and REPORT SUPPORTED OPERATION CODES: the
 *     executed rows (COMMANDS);
 *   - one OpcodeMap per policy flag (opcode-map.ts): UA_HANDLING, ALUA_ADMITTED,
 *     PR_ACCESS, SPC2_ACCESS, NOT_READY_SERVED.
 *
 * Rows without an executor (KnownOpcode) make the policy of commands spindle does not
 * implement explicit (RECEIVE DIAGNOSTIC RESULTS is admitted in ALUA standby, READ
 * BUFFER is a READ under reservations...); an opcode with service-action rows has an
 * 'other' row for the service actions no row names; an operation code without any row
 * gets UNKNOWN_OPCODE_POLICY.
 */
import { MaintenanceIn, Opcode } from '../../shared/scsi/opcodes.ts';
import { buildReportLuns } from '../../shared/scsi/report-luns.ts';
import type { CommandPolicy } from './command-policy.ts';
import {
  ALUA_ANY_STATE,
  ALWAYS_SERVED,
  PrAccess,
  Spc2Access,
  UNKNOWN_OPCODE_POLICY,
  UaHandling,
  aluaBits,
  notReadyBits,
} from './command-policy.ts';
import type { LogicalUnit } from './logical-unit.ts';
import type { MapEntry } from './opcode-map.ts';
import { OpcodeMap } from './opcode-map.ts';
import { maintenanceInPolicy, SPC_COMMANDS } from './spc/commands.ts';
import type { CommandDescriptor, CommandHandler, OpcodeRow } from './spc/handler.ts';
import { CTL, Completion, FF } from './spc/handler.ts';
import { reportSupportedOperationCodes } from './spc/report-supported-opcodes.ts';
import { SBC_COMMANDS } from './sbc/commands.ts';

/**
 * REPORT LUNS normally never reaches a LUN worker: the session worker answers it from its
 * LUN map (shared/scsi/report-luns.ts). A fabric that forwards it anyway gets this LU
 * alone, which is the only LUN this worker can vouch for.
 */
const reportLunsHere: CommandHandler = (_lu, cmd) => {
  buildReportLuns(cmd, [cmd.lun]);
  return Completion.DONE;
};

const rsoc: CommandHandler = (lu, cmd) => reportSupportedOperationCodes(lu, cmd, commandsOf(lu));

const REPORT_LUNS_POLICY: CommandPolicy = {
  pr: PrAccess.ALWAYS, // SPC-4 table 62
  spc2: Spc2Access.ALLOWED, // SPC-2 5.5.1
  alua: ALUA_ANY_STATE, // SPC-4 5.16.2.4.4-5, 5.16.2.5
  unitAttention: UaHandling.EXEMPT_CLEARS_LUNS_CHANGED, // SAM-5 5.14, SPC-4 6.33
  notReady: ALWAYS_SERVED, // SBC-4 4.11.2
  exclusive: false,
};

/** Every row, ascending by opcode then service action ('other' last). */
export const REGISTRY: readonly OpcodeRow[] = sortRows([
  ...SPC_COMMANDS,
  ...SBC_COMMANDS,
  {
    opcode: Opcode.REPORT_LUNS,
    name: 'REPORT LUNS',
    usage: [0xa0, 0, FF, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: reportLunsHere,
    policy: REPORT_LUNS_POLICY,
  },
  {
    opcode: Opcode.MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES,
    name: 'REPORT SUPPORTED OPERATION CODES',
    usage: [0xa3, MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES, 0x87, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: rsoc,
    policy: maintenanceInPolicy(PrAccess.READ), // ALLOW COMMANDS 011b (SPC-4 6.15.4)
  },
]);

/**
 * Every executed command, in REGISTRY order (ascending by opcode, then service action:
 * the order REPORT SUPPORTED OPERATION CODES reports them in). `usage` is the CDB USAGE
 * DATA of SPC-4 6.35.3: opcode, then per byte the bits the device server evaluates;
 * its length is the CDB length.
 */
export const COMMANDS: readonly CommandDescriptor[] = REGISTRY.filter(
  (r): r is CommandDescriptor => r.handler !== null,
);

function sortRows(list: OpcodeRow[]): readonly OpcodeRow[] {
  const sa = (r: OpcodeRow): number =>
    r.serviceAction === undefined ? -1 : r.serviceAction === 'other' ? 0x100 : r.serviceAction;
  return list.sort((a, b) => a.opcode - b.opcode || sa(a) - sa(b));
}

/** The commands `lu` supports (COMMANDS minus rows whose `supported` says no). */
export function commandsOf(lu: LogicalUnit): readonly CommandDescriptor[] {
  return COMMANDS.filter((c) => c.supported === undefined || c.supported(lu));
}

// ---------------------------------------------------------------------------------
// Dispatch

type Slot = CommandDescriptor | undefined;

function dispatchTables(): { direct: Slot[]; bySa: (Slot[] | undefined)[] } {
  const direct = new Array<Slot>(256).fill(undefined);
  const bySa = new Array<Slot[] | undefined>(256).fill(undefined);
  for (const c of COMMANDS) {
    if (c.serviceAction === undefined) direct[c.opcode] = c;
    else (bySa[c.opcode] ??= new Array<Slot>(32).fill(undefined))[c.serviceAction] = c;
  }
  return { direct, bySa };
}
const dispatch = dispatchTables();

/** opcode → descriptor, for opcodes without service actions. */
export const DIRECT: readonly Slot[] = dispatch.direct;
/** opcode → (service action → descriptor), for opcodes that dispatch on a service action. */
export const BY_SERVICE_ACTION: readonly (readonly Slot[] | undefined)[] = dispatch.bySa;

/** Look up the descriptor for a CDB (undefined: opcode or service action not executed). */
export function lookupCommand(cdb: Buffer): CommandDescriptor | undefined {
  const op = cdb[0]!;
  return DIRECT[op] ?? BY_SERVICE_ACTION[op]?.[cdb[1]! & 0x1f];
}

// ---------------------------------------------------------------------------------
// Policy tables, one per flag (command-policy.ts explains the values)

function compile(value: (p: CommandPolicy) => MapEntry['value']): OpcodeMap {
  const entries = REGISTRY.map((r): MapEntry => ({
    opcode: r.opcode,
    serviceAction: r.serviceAction,
    value: value(r.policy),
    name: r.name,
  }));
  const unknown = value(UNKNOWN_OPCODE_POLICY);
  if (typeof unknown !== 'number') throw new Error('the unknown-opcode policy cannot depend on the CDB');
  return OpcodeMap.compile(entries, unknown);
}

/** Stage 1, unit attentions: a UaHandling per command. */
export const UA_HANDLING: OpcodeMap = compile((p) => p.unitAttention);
/** Stage 2, ALUA: AluaBit set of the non-active states that admit the command. */
export const ALUA_ADMITTED: OpcodeMap = compile((p) => aluaBits(p.alua));
/** Stage 3, persistent reservations: a PrAccess per command (CDB-dependent for some). */
export const PR_ACCESS: OpcodeMap = compile((p) => p.pr);
/** Stage 3, SPC-2 reservations: a Spc2Access per command. */
export const SPC2_ACCESS: OpcodeMap = compile((p) => p.spc2);
/** Not ready (sbc/state.ts): NotReadyBit set of the states that still serve the command. */
export const NOT_READY_SERVED: OpcodeMap = compile((p) => notReadyBits(p.notReady));
