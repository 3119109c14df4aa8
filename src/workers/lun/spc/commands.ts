/**
 * The SPC-4 commands every device type shares, as command-table entries (see
 * ../execute.ts: the dispatch tables and REPORT SUPPORTED OPERATION CODES are built
 * from the union of these lists). `usage` is the CDB USAGE DATA of SPC-4 6.35.3.
 */
import { MaintenanceIn, Opcode, PersistentReserveOut } from '../../../shared/scsi/opcodes.ts';
import type { CommandDescriptor } from './handler.ts';
import { CTL, FF } from './handler.ts';
import { inquiry } from './inquiry.ts';
import { logSelect, logSense } from './log-pages.ts';
import { modeSelect } from './mode-select.ts';
import { modeSense } from './mode-sense.ts';
import { reportSupportedTmf } from './report-tmf.ts';
import { reportTargetPortGroups } from '../alua/report-target-port-groups.ts';
import { requestSense, testUnitReady } from './unit-status.ts';
import { PR_IN_ACTIONS } from '../pr/persistent-reserve-in.ts';
import { persistentReserveOut, reserveRelease } from '../pr/persistent-reserve-out.ts';
import { extendedCopy } from '../xcopy/extended-copy.ts';
import {
  CopyResults,
  ExtendedCopyAction,
  copyStatus,
  failedSegmentDetails,
  operatingParameters,
} from '../xcopy/receive-copy-results.ts';

/** PERSISTENT RESERVE OUT service actions (SPC-4 6.16.2 table 213); one executor for all. */
const PR_OUT_ACTIONS = [
  [PersistentReserveOut.REGISTER, 'REGISTER'],
  [PersistentReserveOut.RESERVE, 'RESERVE'],
  [PersistentReserveOut.RELEASE, 'RELEASE'],
  [PersistentReserveOut.CLEAR, 'CLEAR'],
  [PersistentReserveOut.PREEMPT, 'PREEMPT'],
  [PersistentReserveOut.PREEMPT_AND_ABORT, 'PREEMPT AND ABORT'],
  [PersistentReserveOut.REGISTER_AND_IGNORE_EXISTING_KEY, 'REGISTER AND IGNORE EXISTING KEY'],
  [PersistentReserveOut.REGISTER_AND_MOVE, 'REGISTER AND MOVE'],
  [PersistentReserveOut.REPLACE_LOST_RESERVATION, 'REPLACE LOST RESERVATION'],
] as const;

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
  // PERSISTENT RESERVE IN / OUT (SPC-4 6.15, 6.16) and the SPC-2 RESERVE / RELEASE
  // (SPC-2 7.19, 7.21), executed by pr/.
  ...PR_IN_ACTIONS.map(
    ([sa, name, handler]): CommandDescriptor => ({
      opcode: Opcode.PERSISTENT_RESERVE_IN,
      serviceAction: sa,
      name: `PERSISTENT RESERVE IN / ${name}`,
      usage: [0x5e, sa, 0, 0, 0, 0, 0, FF, FF, CTL],
      handler,
    }),
  ),
  ...PR_OUT_ACTIONS.map(
    ([sa, name]): CommandDescriptor => ({
      opcode: Opcode.PERSISTENT_RESERVE_OUT,
      serviceAction: sa,
      name: `PERSISTENT RESERVE OUT / ${name}`,
      usage: [0x5f, sa, FF, 0, 0, FF, FF, FF, FF, CTL],
      handler: persistentReserveOut,
    }),
  ),
  { opcode: Opcode.RESERVE_6, name: 'RESERVE(6)', usage: [0x16, 0x11, 0, 0, 0, CTL], handler: reserveRelease },
  { opcode: Opcode.RELEASE_6, name: 'RELEASE(6)', usage: [0x17, 0x11, 0, 0, 0, CTL], handler: reserveRelease },
  {
    opcode: Opcode.RESERVE_10,
    name: 'RESERVE(10)',
    usage: [0x56, 0x11, 0, 0, 0, 0, 0, 0, 0, CTL],
    handler: reserveRelease,
  },
  {
    opcode: Opcode.RELEASE_10,
    name: 'RELEASE(10)',
    usage: [0x57, 0x11, 0, 0, 0, 0, 0, 0, 0, CTL],
    handler: reserveRelease,
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
    // SPC-4 6.36; byte 1 evaluates PARAMETER DATA FORMAT (7..5) besides the service action.
    opcode: Opcode.MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_TARGET_PORT_GROUPS,
    name: 'REPORT TARGET PORT GROUPS',
    usage: [0xa3, 0xe0 | MaintenanceIn.REPORT_TARGET_PORT_GROUPS, 0, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: reportTargetPortGroups,
  },
  {
    opcode: Opcode.MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS,
    name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS',
    usage: [0xa3, MaintenanceIn.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS, 0x80, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: reportSupportedTmf,
  },
];
