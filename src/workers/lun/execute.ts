/**
 * The target core entry point of a LUN worker: parse, then execute, one SCSI command
 * for one logical unit.
 *
 * Table driven: COMMANDS lists every supported command once (opcode, service action,
 * CDB usage data, executor). The dispatch arrays and REPORT SUPPORTED OPERATION CODES
 * are generated from it, so what is reported cannot drift from what is served.
 *
 * Contract: executeCommand calls cmd.finish() exactly once per command, synchronously
 * for commands without I/O, from the I/O continuation otherwise, also on I/O errors.
 *
 * Pipeline placement (DESIGN.md): unit attentions, ALUA state and reservations are
 * checked before this function once they exist; this is the "parse → execute" tail.
 */
import type { ScsiCommand } from '../../shared/scsi/command.ts';
import { ScsiStatus } from '../../shared/scsi/command.ts';
import { MaintenanceIn, Opcode, PersistentReserveIn, ServiceActionIn16 } from '../../shared/scsi/opcodes.ts';
import { buildReportLuns } from '../../shared/scsi/report-luns.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../shared/scsi/sense.ts';
import type { LogicalUnit } from './logical-unit.ts';
import { read, write } from './sbc/read-write.ts';
import { readCapacity10, readCapacity16 } from './sbc/read-capacity.ts';
import { startStopUnit } from './sbc/start-stop-unit.ts';
import { synchronizeCache } from './sbc/synchronize-cache.ts';
import { verify } from './sbc/verify.ts';
import { persistentReserveInEmpty } from './pr/persistent-reserve-in.ts';
import type { CommandDescriptor, CommandHandler } from './spc/handler.ts';
import { Completion } from './spc/handler.ts';
import { inquiry } from './spc/inquiry.ts';
import { modeSense } from './spc/mode-sense.ts';
import { reportSupportedOperationCodes } from './spc/report-supported-opcodes.ts';
import { requestSense, testUnitReady } from './spc/unit-status.ts';

/**
 * REPORT LUNS normally never reaches a LUN worker: the session worker answers it from its
 * LUN map (shared/scsi/report-luns.ts). A fabric that forwards it anyway gets this LU
 * alone, which is the only LUN this worker can vouch for.
 */
const reportLunsHere: CommandHandler = (_lu, cmd) => {
  buildReportLuns(cmd, [cmd.lun]);
  return Completion.DONE;
};

const rsoc: CommandHandler = (lu, cmd) => reportSupportedOperationCodes(lu, cmd, COMMANDS);

const OPCODE_FIELD = Object.freeze(cdbField(0, 7));
const SERVICE_ACTION_FIELD = Object.freeze(cdbField(1, 4));

/** Control byte usage: NACA (bit 2) and LINK (bit 0) are evaluated (rejected when set). */
const CTL = 0x05;
const FF = 0xff;

/**
 * Every supported command, ascending by opcode then service action. `usage` is the CDB
 * USAGE DATA of SPC-4 6.35.3: opcode, then per byte the bits the device server evaluates
 * (the service action value for service-action commands); its length is the CDB length.
 */
export const COMMANDS: readonly CommandDescriptor[] = [
  {
    opcode: Opcode.TEST_UNIT_READY,
    name: 'TEST UNIT READY',
    usage: [0x00, 0, 0, 0, 0, CTL],
    handler: testUnitReady,
  },
  {
    opcode: Opcode.REQUEST_SENSE,
    name: 'REQUEST SENSE',
    usage: [0x03, 0x01, 0, 0, FF, CTL],
    handler: requestSense,
  },
  { opcode: Opcode.READ_6, name: 'READ(6)', usage: [0x08, 0x1f, FF, FF, FF, CTL], handler: read },
  { opcode: Opcode.WRITE_6, name: 'WRITE(6)', usage: [0x0a, 0x1f, FF, FF, FF, CTL], handler: write },
  { opcode: Opcode.INQUIRY, name: 'INQUIRY', usage: [0x12, 0x01, FF, FF, FF, CTL], handler: inquiry },
  {
    opcode: Opcode.MODE_SENSE_6,
    name: 'MODE SENSE(6)',
    usage: [0x1a, 0x08, FF, FF, FF, CTL],
    handler: modeSense,
  },
  {
    opcode: Opcode.START_STOP_UNIT,
    name: 'START STOP UNIT',
    usage: [0x1b, 0x01, 0, 0x0f, 0xf7, CTL],
    handler: startStopUnit,
  },
  {
    opcode: Opcode.READ_CAPACITY_10,
    name: 'READ CAPACITY(10)',
    usage: [0x25, 0, FF, FF, FF, FF, 0, 0, 0x01, CTL],
    handler: readCapacity10,
  },
  {
    opcode: Opcode.READ_10,
    name: 'READ(10)',
    usage: [0x28, 0xf8, FF, FF, FF, FF, 0, FF, FF, CTL],
    handler: read,
  },
  {
    opcode: Opcode.WRITE_10,
    name: 'WRITE(10)',
    usage: [0x2a, 0xf8, FF, FF, FF, FF, 0, FF, FF, CTL],
    handler: write,
  },
  {
    opcode: Opcode.VERIFY_10,
    name: 'VERIFY(10)',
    usage: [0x2f, 0xf6, FF, FF, FF, FF, 0, FF, FF, CTL],
    handler: verify,
  },
  {
    opcode: Opcode.SYNCHRONIZE_CACHE_10,
    name: 'SYNCHRONIZE CACHE(10)',
    usage: [0x35, 0x02, FF, FF, FF, FF, 0, FF, FF, CTL],
    handler: synchronizeCache,
  },
  {
    opcode: Opcode.MODE_SENSE_10,
    name: 'MODE SENSE(10)',
    usage: [0x5a, 0x18, FF, FF, 0, 0, 0, FF, FF, CTL],
    handler: modeSense,
  },
  {
    opcode: Opcode.PERSISTENT_RESERVE_IN,
    serviceAction: PersistentReserveIn.READ_KEYS,
    name: 'PERSISTENT RESERVE IN / READ KEYS',
    usage: [0x5e, PersistentReserveIn.READ_KEYS, 0, 0, 0, 0, 0, FF, FF, CTL],
    handler: persistentReserveInEmpty,
  },
  {
    opcode: Opcode.PERSISTENT_RESERVE_IN,
    serviceAction: PersistentReserveIn.READ_RESERVATION,
    name: 'PERSISTENT RESERVE IN / READ RESERVATION',
    usage: [0x5e, PersistentReserveIn.READ_RESERVATION, 0, 0, 0, 0, 0, FF, FF, CTL],
    handler: persistentReserveInEmpty,
  },
  {
    opcode: Opcode.READ_16,
    name: 'READ(16)',
    usage: [0x88, 0xf8, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: read,
  },
  {
    opcode: Opcode.WRITE_16,
    name: 'WRITE(16)',
    usage: [0x8a, 0xf8, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: write,
  },
  {
    opcode: Opcode.VERIFY_16,
    name: 'VERIFY(16)',
    usage: [0x8f, 0xf6, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: verify,
  },
  {
    opcode: Opcode.SYNCHRONIZE_CACHE_16,
    name: 'SYNCHRONIZE CACHE(16)',
    usage: [0x91, 0x02, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: synchronizeCache,
  },
  {
    opcode: Opcode.SERVICE_ACTION_IN_16,
    serviceAction: ServiceActionIn16.READ_CAPACITY_16,
    name: 'READ CAPACITY(16)',
    usage: [
      0x9e,
      ServiceActionIn16.READ_CAPACITY_16,
      FF,
      FF,
      FF,
      FF,
      FF,
      FF,
      FF,
      FF,
      FF,
      FF,
      FF,
      FF,
      0x01,
      CTL,
    ],
    handler: readCapacity16,
  },
  {
    opcode: Opcode.REPORT_LUNS,
    name: 'REPORT LUNS',
    usage: [0xa0, 0, FF, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: reportLunsHere,
  },
  {
    opcode: Opcode.MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES,
    name: 'REPORT SUPPORTED OPERATION CODES',
    usage: [0xa3, MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES, 0x87, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: rsoc,
  },
  {
    opcode: Opcode.READ_12,
    name: 'READ(12)',
    usage: [0xa8, 0xf8, FF, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: read,
  },
  {
    opcode: Opcode.WRITE_12,
    name: 'WRITE(12)',
    usage: [0xaa, 0xf8, FF, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: write,
  },
  {
    opcode: Opcode.VERIFY_12,
    name: 'VERIFY(12)',
    usage: [0xaf, 0xf6, FF, FF, FF, FF, FF, FF, FF, FF, 0, CTL],
    handler: verify,
  },
];

/** opcode → descriptor, for opcodes without service actions. */
const DIRECT: (CommandDescriptor | undefined)[] = new Array(256).fill(undefined);
/** opcode → (service action → descriptor), for opcodes that dispatch on a service action. */
const BY_SERVICE_ACTION: ((CommandDescriptor | undefined)[] | undefined)[] = new Array(256).fill(undefined);

for (const c of COMMANDS) {
  if (c.serviceAction === undefined) {
    DIRECT[c.opcode] = c;
  } else {
    const table = (BY_SERVICE_ACTION[c.opcode] ??= new Array(32).fill(undefined));
    table[c.serviceAction] = c;
  }
}

/** Look up the descriptor for a CDB (undefined: opcode or service action unsupported). */
export function lookupCommand(cdb: Buffer): CommandDescriptor | undefined {
  const op = cdb[0]!;
  return DIRECT[op] ?? BY_SERVICE_ACTION[op]?.[cdb[1]! & 0x1f];
}

/**
 * Where a bug inside an executor is reported (the command itself completes with
 * HARDWARE ERROR, INTERNAL TARGET FAILURE). The LUN worker replaces this with its logger.
 */
export let reportInternalError: (err: unknown, cmd: ScsiCommand) => void = (err) => {
  console.error('spindle: internal error while executing a SCSI command', err);
};

export function setInternalErrorReporter(fn: (err: unknown, cmd: ScsiCommand) => void): void {
  reportInternalError = fn;
}

/** Execute `cmd` against `lu`; calls cmd.finish() exactly once (see the file comment). */
export function executeCommand(lu: LogicalUnit, cmd: ScsiCommand): void {
  cmd.status = ScsiStatus.GOOD;
  cmd.senseLength = 0;
  cmd.dataInLength = 0;
  cmd.dataOutWanted = 0;
  cmd.onIo = null;
  const cdb = cmd.cdb;
  const op = cdb[0]!;
  let desc = DIRECT[op];
  if (desc === undefined) {
    const bySa = BY_SERVICE_ACTION[op];
    if (bySa === undefined) {
      // An operation code this device server does not implement.
      setCheckCondition(cmd, SenseReason.INVALID_COMMAND_OPERATION_CODE, OPCODE_FIELD);
      cmd.finish();
      return;
    }
    desc = bySa[cdb[1]! & 0x1f];
    if (desc === undefined) {
      // SPC-4 4.2.2.2: an unsupported service action is an invalid field in the CDB.
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, SERVICE_ACTION_FIELD);
      cmd.finish();
      return;
    }
  }
  // CONTROL byte (SAM-5 5.2, table 21): NACA = 1 needs ACA support (spindle has none,
  // SAM-5 5.9.1); LINK = 1 requests linked commands, obsolete since SAM-4.
  const control = desc.usage.length - 1;
  const bad = cdb[control]! & CTL;
  if (bad !== 0) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(control, bad & 0x04 ? 2 : 0));
    cmd.finish();
    return;
  }
  let completion: Completion;
  try {
    completion = desc.handler(lu, cmd);
  } catch (err) {
    // A bug. If the executor issued I/O (onIo set) its continuation still owns finish();
    // otherwise complete the command here so the initiator is not left waiting.
    reportInternalError(err, cmd);
    if (cmd.onIo !== null) return;
    completion = Completion.DONE;
    setCheckCondition(cmd, SenseReason.INTERNAL_TARGET_FAILURE);
  }
  if (completion === Completion.DONE) cmd.finish();
}
