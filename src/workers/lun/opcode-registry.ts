/**
 * The opcode registry: one row per command spindle knows (SPC rows in spc/commands.ts,
 * SBC rows in sbc/commands.ts, MMC rows in mmc/commands.ts, REPORT LUNS and REPORT
 * SUPPORTED OPERATION CODES here), each carrying its opcode, service action, name, CDB
 * usage data, executor and every per-command decision of the pipeline
 * (command-policy.ts). In the spirit of SCST's scst_scsi_op_table, except that no flag
 * has an implicit default: the type makes every one required, and
 * test/unit/lun/opcode-registry.test.ts walks the rows.
 *
 * One command set per device type (device-type.ts), since an opcode can mean different
 * commands on different device types (MMC's A3h/A4h are SEND/REPORT KEY, SPC's
 * MAINTENANCE IN/OUT) and a command a disk runs may not exist on a CD-ROM (WRITE):
 *   DISK   SPC + copy manager + SBC
 *   CDROM  SPC + MMC
 * plus the rows below, on every type. Everything the LUN pipeline looks up per command
 * is compiled from a set's rows at module load (class CommandSet), so it cannot drift
 * from them:
 *   - dispatch (direct, bySa) and REPORT SUPPORTED OPERATION CODES: the executed rows
 *     (commands);
 *   - one OpcodeMap per policy flag (opcode-map.ts): uaHandling, aluaAdmitted, prAccess,
 *     spc2Access, notReadyServed.
 * A LogicalUnit holds the set of its type (lu.commands); the pipeline reads only that.
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
import { COPY_MANAGER_COMMANDS, maintenanceInPolicy, SPC_COMMANDS } from './spc/commands.ts';
import type { CommandDescriptor, CommandHandler, OpcodeRow } from './spc/handler.ts';
import { CTL, Completion, FF } from './spc/handler.ts';
import { reportSupportedOperationCodes } from './spc/report-supported-opcodes.ts';
import { SBC_COMMANDS } from './sbc/commands.ts';
import { MMC_COMMANDS } from './mmc/commands.ts';
import { DeviceType } from './device-type.ts';

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

/** Rows every device type has. */
const COMMON_ROWS: readonly OpcodeRow[] = [
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
];

type Slot = CommandDescriptor | undefined;

/**
 * The command set of one device type, compiled from its rows (see the file comment).
 * Built once per type at module load; throws on a set that is not well formed (two rows
 * for one opcode or service action, OpcodeMap.compile).
 */
export class CommandSet {
  readonly deviceType: DeviceType;
  /** Every row, ascending by opcode then service action ('other' last). */
  readonly rows: readonly OpcodeRow[];
  /**
   * Every executed command, in `rows` order (ascending by opcode, then service action:
   * the order REPORT SUPPORTED OPERATION CODES reports them in). `usage` is the CDB
   * USAGE DATA of SPC-4 6.35.3: opcode, then per byte the bits the device server
   * evaluates; its length is the CDB length.
   */
  readonly commands: readonly CommandDescriptor[];
  /** opcode → descriptor, for opcodes without service actions. */
  readonly direct: readonly Slot[];
  /** opcode → (service action → descriptor), for opcodes that dispatch on a service action. */
  readonly bySa: readonly (readonly Slot[] | undefined)[];
  /** Stage 1, unit attentions: a UaHandling per command. */
  readonly uaHandling: OpcodeMap;
  /** Stage 2, ALUA: AluaBit set of the non-active states that admit the command. */
  readonly aluaAdmitted: OpcodeMap;
  /** Stage 3, persistent reservations: a PrAccess per command (CDB-dependent for some). */
  readonly prAccess: OpcodeMap;
  /** Stage 3, SPC-2 reservations: a Spc2Access per command. */
  readonly spc2Access: OpcodeMap;
  /** Not ready (sbc/state.ts): NotReadyBit set of the states that still serve the command. */
  readonly notReadyServed: OpcodeMap;

  constructor(deviceType: DeviceType, rows: readonly OpcodeRow[]) {
    this.deviceType = deviceType;
    this.rows = sortRows([...rows]);
    this.commands = this.rows.filter((r): r is CommandDescriptor => r.handler !== null);
    const direct = new Array<Slot>(256).fill(undefined);
    const bySa = new Array<Slot[] | undefined>(256).fill(undefined);
    for (const c of this.commands) {
      if (c.serviceAction === undefined) direct[c.opcode] = c;
      else (bySa[c.opcode] ??= new Array<Slot>(32).fill(undefined))[c.serviceAction] = c;
    }
    this.direct = direct;
    this.bySa = bySa;
    const compile = (value: (p: CommandPolicy) => MapEntry['value']): OpcodeMap => {
      const entries = this.rows.map((r): MapEntry => ({
        opcode: r.opcode,
        serviceAction: r.serviceAction,
        value: value(r.policy),
        name: r.name,
      }));
      const unknown = value(UNKNOWN_OPCODE_POLICY);
      if (typeof unknown !== 'number') throw new Error('the unknown-opcode policy cannot depend on the CDB');
      return OpcodeMap.compile(entries, unknown);
    };
    this.uaHandling = compile((p) => p.unitAttention);
    this.aluaAdmitted = compile((p) => aluaBits(p.alua));
    this.prAccess = compile((p) => p.pr);
    this.spc2Access = compile((p) => p.spc2);
    this.notReadyServed = compile((p) => notReadyBits(p.notReady));
  }

  /** The descriptor for a CDB (undefined: opcode or service action not executed). */
  lookup(cdb: Buffer): CommandDescriptor | undefined {
    const op = cdb[0]!;
    return this.direct[op] ?? this.bySa[op]?.[cdb[1]! & 0x1f];
  }
}

function sortRows(list: OpcodeRow[]): readonly OpcodeRow[] {
  const sa = (r: OpcodeRow): number =>
    r.serviceAction === undefined ? -1 : r.serviceAction === 'other' ? 0x100 : r.serviceAction;
  return list.sort((a, b) => a.opcode - b.opcode || sa(a) - sa(b));
}

/** Direct-access block devices (SBC-4). */
export const DISK_COMMANDS = new CommandSet(DeviceType.DISK, [
  ...SPC_COMMANDS,
  ...COPY_MANAGER_COMMANDS,
  ...SBC_COMMANDS,
  ...COMMON_ROWS,
]);

/** CD/DVD devices (MMC-6). */
export const CDROM_COMMANDS = new CommandSet(DeviceType.CDROM, [...SPC_COMMANDS, ...MMC_COMMANDS, ...COMMON_ROWS]);

/** The command set of a device type. */
export function commandSetFor(type: DeviceType): CommandSet {
  return type === DeviceType.CDROM ? CDROM_COMMANDS : DISK_COMMANDS;
}

/** The commands `lu` supports (its set's commands minus rows whose `supported` says no). */
export function commandsOf(lu: LogicalUnit): readonly CommandDescriptor[] {
  return lu.commands.commands.filter((c) => c.supported === undefined || c.supported(lu));
}

// ---------------------------------------------------------------------------------
// The disk set under the names it had before there were device types (tests, tools).

/** Every row of the disk set. */
export const REGISTRY: readonly OpcodeRow[] = DISK_COMMANDS.rows;
/** Every executed command of the disk set. */
export const COMMANDS: readonly CommandDescriptor[] = DISK_COMMANDS.commands;
export const DIRECT: readonly Slot[] = DISK_COMMANDS.direct;
export const BY_SERVICE_ACTION: readonly (readonly Slot[] | undefined)[] = DISK_COMMANDS.bySa;
export const UA_HANDLING: OpcodeMap = DISK_COMMANDS.uaHandling;
export const ALUA_ADMITTED: OpcodeMap = DISK_COMMANDS.aluaAdmitted;
export const PR_ACCESS: OpcodeMap = DISK_COMMANDS.prAccess;
export const SPC2_ACCESS: OpcodeMap = DISK_COMMANDS.spc2Access;
export const NOT_READY_SERVED: OpcodeMap = DISK_COMMANDS.notReadyServed;

/** Look up the descriptor for a CDB in the disk set. */
export function lookupCommand(cdb: Buffer): CommandDescriptor | undefined {
  return DISK_COMMANDS.lookup(cdb);
}
