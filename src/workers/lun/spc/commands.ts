/**
 * The SPC-4 commands every device type shares, as command-table entries (see
 * ../execute.ts: the dispatch tables and REPORT SUPPORTED OPERATION CODES are built
 * from the union of these lists). `usage` is the CDB USAGE DATA of SPC-4 6.35.3.
 */
import { MaintenanceIn, Opcode, PersistentReserveIn } from '../../../shared/scsi/opcodes.ts';
import type { CommandDescriptor } from './handler.ts';
import { CTL, FF } from './handler.ts';
import { inquiry } from './inquiry.ts';
import { logSelect, logSense } from './log-pages.ts';
import { modeSelect } from './mode-select.ts';
import { modeSense } from './mode-sense.ts';
import { reportSupportedTmf } from './report-tmf.ts';
import { requestSense, testUnitReady } from './unit-status.ts';
import { persistentReserveInEmpty } from '../pr/persistent-reserve-in.ts';
import { extendedCopy } from '../xcopy/extended-copy.ts';
import {
  CopyResults,
  ExtendedCopyAction,
  copyStatus,
  failedSegmentDetails,
  operatingParameters,
} from '../xcopy/receive-copy-results.ts';

/** RECEIVE COPY RESULTS CDB usage: LIST IDENTIFIER evaluated or not (byte 2). */
function rcrUsage(sa: number, listId: number): number[] {
  return [0x84, sa, listId, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, CTL];
}

export const SPC_COMMANDS: readonly CommandDescriptor[] = [
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
  { opcode: Opcode.INQUIRY, name: 'INQUIRY', usage: [0x12, 0x01, FF, FF, FF, CTL], handler: inquiry },
  {
    opcode: Opcode.MODE_SELECT_6,
    name: 'MODE SELECT(6)',
    usage: [0x15, 0x11, 0, 0, FF, CTL],
    handler: modeSelect,
  },
  {
    opcode: Opcode.MODE_SENSE_6,
    name: 'MODE SENSE(6)',
    usage: [0x1a, 0x08, FF, FF, FF, CTL],
    handler: modeSense,
  },
  {
    opcode: Opcode.LOG_SELECT,
    name: 'LOG SELECT',
    usage: [0x4c, 0x03, FF, FF, 0, 0, 0, FF, FF, CTL],
    handler: logSelect,
  },
  {
    opcode: Opcode.LOG_SENSE,
    name: 'LOG SENSE',
    usage: [0x4d, 0x01, FF, FF, 0, FF, FF, FF, FF, CTL],
    handler: logSense,
  },
  {
    opcode: Opcode.MODE_SELECT_10,
    name: 'MODE SELECT(10)',
    usage: [0x55, 0x11, 0, 0, 0, 0, 0, FF, FF, CTL],
    handler: modeSelect,
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
    opcode: Opcode.EXTENDED_COPY,
    serviceAction: ExtendedCopyAction.EXTENDED_COPY_LID1,
    name: 'EXTENDED COPY(LID1)',
    usage: [0x83, ExtendedCopyAction.EXTENDED_COPY_LID1, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: extendedCopy,
  },
  {
    opcode: Opcode.RECEIVE_COPY_RESULTS,
    serviceAction: CopyResults.COPY_STATUS,
    name: 'RECEIVE COPY RESULTS / COPY STATUS',
    usage: rcrUsage(CopyResults.COPY_STATUS, FF),
    handler: copyStatus,
  },
  {
    opcode: Opcode.RECEIVE_COPY_RESULTS,
    serviceAction: CopyResults.OPERATING_PARAMETERS,
    name: 'RECEIVE COPY RESULTS / OPERATING PARAMETERS',
    usage: rcrUsage(CopyResults.OPERATING_PARAMETERS, 0),
    handler: operatingParameters,
  },
  {
    opcode: Opcode.RECEIVE_COPY_RESULTS,
    serviceAction: CopyResults.FAILED_SEGMENT_DETAILS,
    name: 'RECEIVE COPY RESULTS / FAILED SEGMENT DETAILS',
    usage: rcrUsage(CopyResults.FAILED_SEGMENT_DETAILS, FF),
    handler: failedSegmentDetails,
  },
  {
    opcode: Opcode.MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS,
    name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS',
    usage: [0xa3, MaintenanceIn.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS, 0x80, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: reportSupportedTmf,
  },
];
