/**
 * The SPC-4 commands every device type shares (SPC_COMMANDS; the copy manager's are
 * COPY_MANAGER_COMMANDS, disks only), as rows of the opcode registry (see
 * ../opcode-registry.ts: dispatch, REPORT SUPPORTED OPERATION CODES and every
 * per-command decision of the pipeline are built from these rows). `usage` is the CDB
 * USAGE DATA of SPC-4 6.35.3; `policy` is explained in ../command-policy.ts, which also
 * holds the tables the citations below refer to.
 */
import {
  MaintenanceIn,
  MaintenanceOut,
  Opcode,
  PersistentReserveOut,
  ServiceActionIn12,
} from '../../../shared/scsi/opcodes.ts';
import type { CommandPolicy } from '../command-policy.ts';
import {
  ALUA_ACTIVE_ONLY,
  ALUA_ANY_STATE,
  ALUA_STANDBY,
  ALWAYS_SERVED,
  MEDIUM_ACCESS,
  NO_MEDIUM_ACCESS,
  PrAccess,
  Spc2Access,
  UaHandling,
} from '../command-policy.ts';
import type { CommandDescriptor, OpcodeRow } from './handler.ts';
import { CTL, FF } from './handler.ts';
import { inquiry } from './inquiry.ts';
import { logSelect, logSense } from './log-pages.ts';
import { modeSelect } from './mode-select.ts';
import { modeSense } from './mode-sense.ts';
import { setTargetPortGroups } from '../alua/set-target-port-groups.ts';
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

/**
 * Mode and log pages (MODE SENSE / SELECT, LOG SELECT): no medium access, so served
 * without medium (not while a sanitize runs); admitted in ALUA standby (SPC-4
 * 5.16.2.4.4). Only `pr` differs: MODE SENSE is READ (ALLOW COMMANDS 011b), the SELECTs
 * WRITE (SPC-4 table 62: conflict).
 */
function pagePolicy(pr: PrAccess): CommandPolicy {
  return {
    pr,
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_STANDBY,
    unitAttention: UaHandling.REPORT,
    notReady: NO_MEDIUM_ACCESS,
    exclusive: false,
  };
}

/**
 * PERSISTENT RESERVE IN / OUT, every service action: ALWAYS under persistent
 * reservations (SPC-4 table 62; PR OUT's executor applies 5.14.x), in conflict with an
 * SPC-2 reservation from every nexus (SPC-4 5.14.3), admitted in ALUA standby (SPC-4
 * 5.16.2.4.4), served without medium.
 */
const PR_COMMAND: CommandPolicy = {
  pr: PrAccess.ALWAYS,
  spc2: Spc2Access.CONFLICT,
  alua: ALUA_STANDBY,
  unitAttention: UaHandling.REPORT,
  notReady: NO_MEDIUM_ACCESS,
  exclusive: false,
};

/**
 * RESERVE / RELEASE (SPC-2 7.21, 7.19): ALWAYS and ALLOWED, their executor decides
 * (SPC-4 5.14.3 with CRH = 1; SPC-2 5.5.1); served without medium. Not in any ALUA
 * list of SPC-4 5.16.2.4.
 */
const SPC2_COMMAND: CommandPolicy = {
  pr: PrAccess.ALWAYS,
  spc2: Spc2Access.ALLOWED,
  alua: ALUA_ACTIVE_ONLY,
  unitAttention: UaHandling.REPORT,
  notReady: NO_MEDIUM_ACCESS,
  exclusive: false,
};

/**
 * Copy manager commands (SPC-4 6.4, 6.28): EXTENDED COPY writes (WRITE, table 62);
 * RECEIVE COPY RESULTS reads (READ, ALLOW COMMANDS 011b). Both wait for the medium.
 */
function copyPolicy(pr: PrAccess): CommandPolicy {
  return {
    pr,
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_ACTIVE_ONLY,
    unitAttention: UaHandling.REPORT,
    notReady: MEDIUM_ACCESS,
    exclusive: false,
  };
}

/**
 * MAINTENANCE IN reports: served in every not-ready state (no medium access: the ALUA,
 * operation code and TMF reports an initiator needs while a LU is ejected or
 * sanitizing). `pr`: ALWAYS for the reports SPC-4 table 62 allows (REPORT IDENTIFYING
 * INFORMATION, REPORT TARGET PORT GROUPS, REPORT ALIASES, REPORT PRIORITY, REPORT
 * TIMESTAMP), READ for the others (ALLOW COMMANDS 011b).
 */
export function maintenanceInPolicy(pr: PrAccess, alua = ALUA_ACTIVE_ONLY): CommandPolicy {
  return {
    pr,
    spc2: Spc2Access.HOLDER_ONLY,
    alua,
    unitAttention: UaHandling.REPORT,
    notReady: ALWAYS_SERVED,
    exclusive: false,
  };
}

/** Policy-only rows (not executed); see KnownOpcode. */
function known(
  opcode: number,
  serviceAction: number | 'other' | undefined,
  name: string,
  policy: CommandPolicy,
): OpcodeRow {
  return serviceAction === undefined
    ? { opcode, name, handler: null, policy }
    : { opcode, serviceAction, name, handler: null, policy };
}

export const SPC_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: Opcode.TEST_UNIT_READY,
    name: 'TEST UNIT READY',
    usage: [0x00, 0, 0, 0, 0, CTL],
    handler: testUnitReady,
    policy: {
      pr: PrAccess.ALWAYS, // ALLOW COMMANDS 011b: through WE and EA (SPC-4 6.15.4)
      spc2: Spc2Access.HOLDER_ONLY, // not among SPC-2 5.5.1's exceptions
      alua: ALUA_ACTIVE_ONLY, // reports the standby / unavailable / transitioning state
      unitAttention: UaHandling.REPORT,
      notReady: MEDIUM_ACCESS, // reports the not-ready state
      exclusive: false,
    },
  },
  {
    opcode: Opcode.REQUEST_SENSE,
    name: 'REQUEST SENSE',
    usage: [0x03, 0x01, 0, 0, FF, CTL],
    handler: requestSense,
    policy: {
      pr: PrAccess.ALWAYS, // SPC-4 table 62
      spc2: Spc2Access.ALLOWED, // SPC-2 5.5.1
      alua: ALUA_ANY_STATE, // SPC-4 5.16.2.4.4-5, 5.16.2.5
      unitAttention: UaHandling.EXEMPT, // reports the condition as its sense data (SPC-4 6.39.2)
      notReady: ALWAYS_SERVED, // polls a sanitize's progress (SBC-4 4.11.2)
      exclusive: false,
    },
  },
  {
    opcode: Opcode.INQUIRY,
    name: 'INQUIRY',
    usage: [0x12, 0x01, FF, FF, FF, CTL],
    handler: inquiry,
    policy: {
      pr: PrAccess.ALWAYS, // SPC-4 table 62
      spc2: Spc2Access.ALLOWED, // SPC-2 5.5.1
      alua: ALUA_ANY_STATE, // SPC-4 5.16.2.4.4-5, 5.16.2.5
      unitAttention: UaHandling.EXEMPT, // SAM-5 5.14
      notReady: ALWAYS_SERVED, // SBC-4 4.11.2
      exclusive: false,
    },
  },
  {
    opcode: Opcode.MODE_SELECT_6,
    name: 'MODE SELECT(6)',
    usage: [0x15, 0x11, 0, 0, FF, CTL],
    handler: modeSelect,
    policy: pagePolicy(PrAccess.WRITE),
  },
  {
    opcode: Opcode.MODE_SENSE_6,
    name: 'MODE SENSE(6)',
    usage: [0x1a, 0x08, FF, FF, FF, CTL],
    handler: modeSense,
    policy: pagePolicy(PrAccess.READ),
  },
  // RECEIVE DIAGNOSTIC RESULTS / SEND DIAGNOSTIC (SPC-4 6.27, 6.42) are not implemented;
  // SPC-4 5.16.2.4.4 admits them in standby, where they then fail as unsupported.
  known(Opcode.RECEIVE_DIAGNOSTIC_RESULTS, undefined, 'RECEIVE DIAGNOSTIC RESULTS', {
    pr: PrAccess.READ, // ALLOW COMMANDS 011b
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_STANDBY,
    unitAttention: UaHandling.REPORT,
    notReady: MEDIUM_ACCESS,
    exclusive: false,
  }),
  known(Opcode.SEND_DIAGNOSTIC, undefined, 'SEND DIAGNOSTIC', {
    pr: PrAccess.WRITE, // SPC-4 table 62: conflict
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_STANDBY,
    unitAttention: UaHandling.REPORT,
    notReady: MEDIUM_ACCESS,
    exclusive: false,
  }),
  // READ BUFFER (SPC-4 6.18) is not implemented. Its echo buffer modes are admitted in
  // every ALUA state (SPC-4 5.16.2.4.4-5), but there is no echo buffer to read here.
  known(Opcode.READ_BUFFER, undefined, 'READ BUFFER', {
    pr: PrAccess.READ, // ALLOW COMMANDS 011b
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_ACTIVE_ONLY,
    unitAttention: UaHandling.REPORT,
    notReady: MEDIUM_ACCESS,
    exclusive: false,
  }),
  {
    opcode: Opcode.LOG_SELECT,
    name: 'LOG SELECT',
    usage: [0x4c, 0x03, FF, FF, 0, 0, 0, FF, FF, CTL],
    handler: logSelect,
    policy: pagePolicy(PrAccess.WRITE),
  },
  {
    opcode: Opcode.LOG_SENSE,
    name: 'LOG SENSE',
    usage: [0x4d, 0x01, FF, FF, 0, FF, FF, FF, FF, CTL],
    handler: logSense,
    policy: {
      pr: PrAccess.ALWAYS, // SPC-4 table 62
      spc2: Spc2Access.HOLDER_ONLY,
      alua: ALUA_STANDBY, // SPC-4 5.16.2.4.4
      unitAttention: UaHandling.REPORT,
      notReady: ALWAYS_SERVED, // SBC-4 4.11.2: log pages while a sanitize runs
      exclusive: false,
    },
  },
  {
    opcode: Opcode.MODE_SELECT_10,
    name: 'MODE SELECT(10)',
    usage: [0x55, 0x11, 0, 0, 0, 0, 0, FF, FF, CTL],
    handler: modeSelect,
    policy: pagePolicy(PrAccess.WRITE),
  },
  {
    opcode: Opcode.MODE_SENSE_10,
    name: 'MODE SENSE(10)',
    usage: [0x5a, 0x18, FF, FF, 0, 0, 0, FF, FF, CTL],
    handler: modeSense,
    policy: pagePolicy(PrAccess.READ),
  },
  // PERSISTENT RESERVE IN / OUT (SPC-4 6.15, 6.16) and the SPC-2 RESERVE / RELEASE
  // (SPC-2 7.21, 7.19), executed by pr/.
  ...PR_IN_ACTIONS.map(([sa, name, handler]): CommandDescriptor => ({
    opcode: Opcode.PERSISTENT_RESERVE_IN,
    serviceAction: sa,
    name: `PERSISTENT RESERVE IN / ${name}`,
    usage: [0x5e, sa, 0, 0, 0, 0, 0, FF, FF, CTL],
    handler,
    policy: PR_COMMAND,
  })),
  known(Opcode.PERSISTENT_RESERVE_IN, 'other', 'PERSISTENT RESERVE IN / other service actions', PR_COMMAND),
  ...PR_OUT_ACTIONS.map(([sa, name]): CommandDescriptor => ({
    opcode: Opcode.PERSISTENT_RESERVE_OUT,
    serviceAction: sa,
    name: `PERSISTENT RESERVE OUT / ${name}`,
    usage: [0x5f, sa, FF, 0, 0, FF, FF, FF, FF, CTL],
    handler: persistentReserveOut,
    policy: PR_COMMAND,
  })),
  known(Opcode.PERSISTENT_RESERVE_OUT, 'other', 'PERSISTENT RESERVE OUT / other service actions', PR_COMMAND),
  {
    opcode: Opcode.RESERVE_6,
    name: 'RESERVE(6)',
    usage: [0x16, 0x11, 0, 0, 0, CTL],
    handler: reserveRelease,
    policy: SPC2_COMMAND,
  },
  {
    opcode: Opcode.RELEASE_6,
    name: 'RELEASE(6)',
    usage: [0x17, 0x11, 0, 0, 0, CTL],
    handler: reserveRelease,
    policy: SPC2_COMMAND,
  },
  {
    opcode: Opcode.RESERVE_10,
    name: 'RESERVE(10)',
    usage: [0x56, 0x11, 0, 0, 0, 0, 0, 0, 0, CTL],
    handler: reserveRelease,
    policy: SPC2_COMMAND,
  },
  {
    opcode: Opcode.RELEASE_10,
    name: 'RELEASE(10)',
    usage: [0x57, 0x11, 0, 0, 0, 0, 0, 0, 0, CTL],
    handler: reserveRelease,
    policy: SPC2_COMMAND,
  },
  // READ ATTRIBUTE (SPC-4 6.17) is not implemented.
  known(Opcode.READ_ATTRIBUTE, undefined, 'READ ATTRIBUTE', {
    pr: PrAccess.READ, // ALLOW COMMANDS 011b
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_ACTIVE_ONLY,
    unitAttention: UaHandling.REPORT,
    notReady: MEDIUM_ACCESS,
    exclusive: false,
  }),
  // MAINTENANCE IN (SPC-4 6.x): REPORT SUPPORTED OPERATION CODES is in opcode-registry.ts.
  known(
    Opcode.MAINTENANCE_IN,
    MaintenanceIn.REPORT_IDENTIFYING_INFORMATION,
    'REPORT IDENTIFYING INFORMATION',
    maintenanceInPolicy(PrAccess.ALWAYS),
  ),
  {
    // SPC-4 6.36; byte 1 evaluates PARAMETER DATA FORMAT (7..5) besides the service action.
    opcode: Opcode.MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_TARGET_PORT_GROUPS,
    name: 'REPORT TARGET PORT GROUPS',
    usage: [0xa3, 0xe0 | MaintenanceIn.REPORT_TARGET_PORT_GROUPS, 0, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: reportTargetPortGroups,
    // Admitted in every ALUA state: it is how an initiator learns them (SPC-4 5.16.2.4.4-5, 5.16.2.5).
    policy: maintenanceInPolicy(PrAccess.ALWAYS, ALUA_ANY_STATE),
  },
  known(
    Opcode.MAINTENANCE_IN,
    MaintenanceIn.REPORT_ALIASES,
    'REPORT ALIASES',
    maintenanceInPolicy(PrAccess.ALWAYS),
  ),
  {
    opcode: Opcode.MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS,
    name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS',
    usage: [
      0xa3,
      MaintenanceIn.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS,
      0x80,
      0,
      0,
      0,
      FF,
      FF,
      FF,
      FF,
      0,
      CTL,
    ],
    handler: reportSupportedTmf,
    policy: maintenanceInPolicy(PrAccess.READ), // ALLOW COMMANDS 011b
  },
  known(
    Opcode.MAINTENANCE_IN,
    MaintenanceIn.REPORT_PRIORITY,
    'REPORT PRIORITY',
    maintenanceInPolicy(PrAccess.ALWAYS),
  ),
  known(
    Opcode.MAINTENANCE_IN,
    MaintenanceIn.REPORT_TIMESTAMP,
    'REPORT TIMESTAMP',
    maintenanceInPolicy(PrAccess.ALWAYS),
  ),
  known(
    Opcode.MAINTENANCE_IN,
    'other',
    'MAINTENANCE IN / other service actions',
    maintenanceInPolicy(PrAccess.READ),
  ),
  // SET TARGET PORT GROUPS: explicit ALUA (TPGS = 11b). Admitted in standby and
  // unavailable (SPC-4 5.16.2.4.4-5), not while transitioning (5.16.2.5).
  {
    opcode: Opcode.MAINTENANCE_OUT,
    serviceAction: MaintenanceOut.SET_TARGET_PORT_GROUPS,
    name: 'SET TARGET PORT GROUPS',
    usage: [0xa4, MaintenanceOut.SET_TARGET_PORT_GROUPS, 0, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: setTargetPortGroups,
    policy: {
      pr: PrAccess.WRITE, // SPC-4 table 62: conflict
      spc2: Spc2Access.HOLDER_ONLY,
      alua: { standby: true, unavailable: true, transitioning: false },
      unitAttention: UaHandling.REPORT,
      notReady: NO_MEDIUM_ACCESS,
      exclusive: false,
    },
  },
  known(Opcode.MAINTENANCE_OUT, 'other', 'MAINTENANCE OUT / other service actions', {
    pr: PrAccess.WRITE, // SPC-4 table 62: the SET ... commands conflict
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_ACTIVE_ONLY,
    unitAttention: UaHandling.REPORT,
    notReady: NO_MEDIUM_ACCESS,
    exclusive: false,
  }),
  // SERVICE ACTION IN(12): READ MEDIA SERIAL NUMBER (SPC-4 6.20), not implemented.
  known(Opcode.SERVICE_ACTION_IN_12, ServiceActionIn12.READ_MEDIA_SERIAL_NUMBER, 'READ MEDIA SERIAL NUMBER', {
    pr: PrAccess.ALWAYS, // SPC-4 table 62
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_ACTIVE_ONLY,
    unitAttention: UaHandling.REPORT,
    notReady: MEDIUM_ACCESS,
    exclusive: false,
  }),
  known(Opcode.SERVICE_ACTION_IN_12, 'other', 'SERVICE ACTION IN(12) / other service actions', {
    pr: PrAccess.ALWAYS, // as READ MEDIA SERIAL NUMBER, the only one SPC-4 defines
    spc2: Spc2Access.HOLDER_ONLY,
    alua: ALUA_ACTIVE_ONLY,
    unitAttention: UaHandling.REPORT,
    notReady: MEDIUM_ACCESS,
    exclusive: false,
  }),
];

/**
 * The copy manager (SPC-4 5.16.7, 6.4, 6.18): EXTENDED COPY and RECEIVE COPY RESULTS,
 * block to block between disks (xcopy/). Disks only: a CD-ROM reports 3PC = 0.
 */
export const COPY_MANAGER_COMMANDS: readonly OpcodeRow[] = [
  {
    opcode: Opcode.EXTENDED_COPY,
    serviceAction: ExtendedCopyAction.EXTENDED_COPY_LID1,
    name: 'EXTENDED COPY(LID1)',
    usage: [0x83, ExtendedCopyAction.EXTENDED_COPY_LID1, 0, 0, 0, 0, 0, 0, 0, 0, FF, FF, FF, FF, 0, CTL],
    handler: extendedCopy,
    policy: copyPolicy(PrAccess.WRITE),
  },
  // LID4, POPULATE TOKEN, WRITE USING TOKEN, COPY OPERATION ABORT...
  known(Opcode.EXTENDED_COPY, 'other', 'EXTENDED COPY / other service actions', copyPolicy(PrAccess.WRITE)),
  {
    opcode: Opcode.RECEIVE_COPY_RESULTS,
    serviceAction: CopyResults.COPY_STATUS,
    name: 'RECEIVE COPY RESULTS / COPY STATUS',
    usage: rcrUsage(CopyResults.COPY_STATUS, FF),
    handler: copyStatus,
    policy: copyPolicy(PrAccess.READ),
  },
  {
    opcode: Opcode.RECEIVE_COPY_RESULTS,
    serviceAction: CopyResults.OPERATING_PARAMETERS,
    name: 'RECEIVE COPY RESULTS / OPERATING PARAMETERS',
    usage: rcrUsage(CopyResults.OPERATING_PARAMETERS, 0),
    handler: operatingParameters,
    policy: copyPolicy(PrAccess.READ),
  },
  {
    opcode: Opcode.RECEIVE_COPY_RESULTS,
    serviceAction: CopyResults.FAILED_SEGMENT_DETAILS,
    name: 'RECEIVE COPY RESULTS / FAILED SEGMENT DETAILS',
    usage: rcrUsage(CopyResults.FAILED_SEGMENT_DETAILS, FF),
    handler: failedSegmentDetails,
    policy: copyPolicy(PrAccess.READ),
  },
  known(
    Opcode.RECEIVE_COPY_RESULTS,
    'other',
    'RECEIVE COPY RESULTS / other service actions',
    copyPolicy(PrAccess.READ),
  ),
];
