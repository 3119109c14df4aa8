/**
 * The MMC-6 commands of a CD-ROM drive reading an ISO image, as rows of the opcode
 * registry (../opcode-registry.ts: the CD-ROM command set is SPC + these). `usage` is the
 * CDB USAGE DATA of SPC-4 6.35.3; `policy` is explained in ../command-policy.ts.
 *
 * The reading commands share their executors with SBC (READ(10)/(12), READ CAPACITY,
 * START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL have the same CDB layout in MMC-6 and
 * SBC-4); the drive's medium state lives in medium.ts. A CD-ROM has no write commands at
 * all: WRITE and the like are not in this set, so they end with INVALID COMMAND OPERATION
 * CODE, as on a read-only drive.
 *
 * Policies. Persistent reservations: MMC-6 defers to SPC-4 table 62; reading user data
 * or the disc's layout is READ (conflicts under Exclusive Access), READ CAPACITY and the
 * drive-state reports are ALWAYS, loading/locking follow SBC-4 table 13 as on a
 * removable disk. Unit attentions: GET CONFIGURATION and GET EVENT STATUS NOTIFICATION
 * are processed without reporting one (MMC-6 4.1.6.1: a host learns of a new disc from
 * them while the NOT READY TO READY CHANGE is still pending). No medium: the drive-state
 * reports are served, the medium reads fail with the tray's NOT READY (medium.ts).
 */
import { Opcode } from '../../../shared/scsi/opcodes.ts';
import type { CommandPolicy } from '../command-policy.ts';
import {
  ALUA_ACTIVE_ONLY,
  ALWAYS_SERVED,
  MEDIUM_ACCESS,
  NO_MEDIUM_ACCESS,
  PREVENT_CLEARED,
  PrAccess,
  START_WITHOUT_POWER_CONDITION,
  Spc2Access,
  UaHandling,
  byCdb,
} from '../command-policy.ts';
import type { OpcodeRow } from '../spc/handler.ts';
import { CTL, FF } from '../spc/handler.ts';
import { read } from '../sbc/read-write.ts';
import { readCapacity10 } from '../sbc/read-capacity.ts';
import { preventAllowMediumRemoval, startStopUnit } from '../sbc/start-stop-unit.ts';
import { readDiscInformation, readTrackInformation } from './disc-info.ts';
import { getEventStatusNotification, mechanismStatus } from './event-status.ts';
import { getConfiguration } from './get-configuration.ts';
import { readToc } from './read-toc.ts';

const U32 = [FF, FF, FF, FF] as const;

/** Reads the disc (user data or its layout): READ, READ TOC, READ DISC / TRACK INFORMATION. */
const DISC_READ: CommandPolicy = {
  pr: PrAccess.READ,
  spc2: Spc2Access.HOLDER_ONLY,
  alua: ALUA_ACTIVE_ONLY,
  unitAttention: UaHandling.REPORT,
  notReady: MEDIUM_ACCESS,
  exclusive: false,
};

/** GET CONFIGURATION, GET EVENT STATUS NOTIFICATION: the drive's state, no UA (see above). */
const DRIVE_STATE: CommandPolicy = {
  pr: PrAccess.ALWAYS,
  spc2: Spc2Access.HOLDER_ONLY,
  alua: ALUA_ACTIVE_ONLY,
  unitAttention: UaHandling.EXEMPT,
  notReady: ALWAYS_SERVED,
  exclusive: false,
};

export const MMC_COMMANDS: readonly OpcodeRow[] = [
  {
    // MMC-6 6.39; loads and ejects through medium.ts (sbc/state.ts loadEject).
    opcode: Opcode.START_STOP_UNIT,
    name: 'START STOP UNIT',
    usage: [0x1b, 0x01, 0, 0x0f, 0xf7, CTL],
    handler: startStopUnit,
    policy: {
      pr: byCdb(START_WITHOUT_POWER_CONDITION, PrAccess.ALWAYS, PrAccess.WRITE),
      spc2: Spc2Access.HOLDER_ONLY,
      alua: ALUA_ACTIVE_ONLY,
      unitAttention: UaHandling.REPORT,
      notReady: NO_MEDIUM_ACCESS, // closes the tray of an empty drive
      exclusive: false,
    },
  },
  {
    // MMC-6 6.13: PREVENT(0) locks the tray; PERSISTENT PREVENT(1) is not supported.
    opcode: Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL,
    name: 'PREVENT ALLOW MEDIUM REMOVAL',
    usage: [0x1e, 0, 0, 0, 0x03, CTL],
    handler: preventAllowMediumRemoval,
    policy: {
      pr: byCdb(PREVENT_CLEARED, PrAccess.ALWAYS, PrAccess.WRITE),
      spc2: byCdb(PREVENT_CLEARED, Spc2Access.ALLOWED, Spc2Access.HOLDER_ONLY),
      alua: ALUA_ACTIVE_ONLY,
      unitAttention: UaHandling.REPORT,
      notReady: NO_MEDIUM_ACCESS,
      exclusive: false,
    },
  },
  {
    // MMC-6 6.23: the last LBA of the disc and 2048.
    opcode: Opcode.READ_CAPACITY_10,
    name: 'READ CAPACITY',
    usage: [0x25, 0, FF, FF, FF, FF, 0, 0, 0x01, CTL],
    handler: readCapacity10,
    policy: { ...DISC_READ, pr: PrAccess.ALWAYS },
  },
  {
    // MMC-6 6.15: byte 1 DPO(4) FUA(3); byte 6 reserved.
    opcode: Opcode.READ_10,
    name: 'READ(10)',
    usage: [0x28, 0x18, ...U32, 0, FF, FF, CTL],
    handler: read,
    policy: DISC_READ,
  },
  {
    opcode: Opcode.READ_TOC_PMA_ATIP,
    name: 'READ TOC/PMA/ATIP',
    usage: [0x43, 0x02, 0x0f, 0, 0, 0, FF, FF, FF, CTL],
    handler: readToc,
    policy: DISC_READ,
  },
  {
    opcode: Opcode.GET_CONFIGURATION,
    name: 'GET CONFIGURATION',
    usage: [0x46, 0x03, FF, FF, 0, 0, 0, FF, FF, CTL],
    handler: getConfiguration,
    policy: DRIVE_STATE,
  },
  {
    opcode: Opcode.GET_EVENT_STATUS_NOTIFICATION,
    name: 'GET EVENT STATUS NOTIFICATION',
    usage: [0x4a, 0x01, 0, 0, FF, 0, 0, FF, FF, CTL],
    handler: getEventStatusNotification,
    policy: DRIVE_STATE,
  },
  {
    opcode: Opcode.READ_DISC_INFORMATION,
    name: 'READ DISC INFORMATION',
    usage: [0x51, 0x07, 0, 0, 0, 0, 0, FF, FF, CTL],
    handler: readDiscInformation,
    policy: DISC_READ,
  },
  {
    opcode: Opcode.READ_TRACK_INFORMATION,
    name: 'READ TRACK INFORMATION',
    usage: [0x52, 0x07, FF, FF, FF, FF, 0, FF, FF, CTL],
    handler: readTrackInformation,
    policy: DISC_READ,
  },
  {
    // MMC-6 6.16: byte 10 STREAMING(7) is a performance hint.
    opcode: Opcode.READ_12,
    name: 'READ(12)',
    usage: [0xa8, 0x18, ...U32, ...U32, 0x80, CTL],
    handler: read,
    policy: DISC_READ,
  },
  {
    opcode: Opcode.MECHANISM_STATUS,
    name: 'MECHANISM STATUS',
    usage: [0xbd, 0, 0, 0, 0, 0, 0, 0, FF, FF, 0, CTL],
    handler: mechanismStatus,
    policy: { ...DRIVE_STATE, unitAttention: UaHandling.REPORT },
  },
];
