/**
 * GET EVENT STATUS NOTIFICATION (MMC-6 6.7) and MECHANISM STATUS (MMC-6 6.11): what a
 * host polls to learn that the disc or tray changed (Linux's sr driver polls GESN for
 * media events every few seconds), and the state of the mechanism.
 *
 * Event classes supported (SUPPORTED EVENT CLASSES): operational change (1), power
 * management (2), external request (3), media (4), device busy (6). Only the media class
 * ever has an event (medium.ts: NewMedia after a load or a disc change, MediaRemoval
 * after an eject); the others always report "no change" with the drive's steady state
 * (available, active, ready, not busy). Polling only: POLLED = 0 (asynchronous
 * notification) is not supported.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength10, respondData } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { MediaEvent } from './medium.ts';

/** NOTIFICATION CLASS values (MMC-6 table 289). */
export const EventClass = {
  OPERATIONAL_CHANGE: 1,
  POWER_MANAGEMENT: 2,
  EXTERNAL_REQUEST: 3,
  MEDIA: 4,
  MULTIPLE_HOST: 5,
  DEVICE_BUSY: 6,
} as const;

/** SUPPORTED EVENT CLASSES bit mask: classes 1, 2, 3, 4 and 6. */
export const SUPPORTED_EVENT_CLASSES = 0x5e;

/**
 * CDB (MMC-6 table 286):
 *   0 4Ah | 1 reserved(7..1) POLLED(0) | 2-3 reserved | 4 NOTIFICATION CLASS REQUEST
 *   5-6 reserved | 7-8 ALLOCATION LENGTH | 9 CONTROL
 * The reported class is the lowest requested supported class with an event pending, else
 * the lowest requested supported class (no change). None requested that is supported:
 * NEA = 1 and the header alone.
 */
export function getEventStatusNotification(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xfe) || rejectReservedBytes(cmd, 2, 4) || rejectReservedBytes(cmd, 5, 7))
    return Completion.DONE;
  if ((cdb[1]! & 0x01) === 0) {
    // Asynchronous operation is not supported (MMC-6 6.7.1).
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 0));
    return Completion.DONE;
  }
  const requested = cdb[4]! & SUPPORTED_EVENT_CLASSES;
  const b = lu.scratch;
  const mmc = lu.mmc!;
  b[3] = SUPPORTED_EVENT_CLASSES; // 3: SUPPORTED EVENT CLASSES
  if (requested === 0) {
    b.writeUInt16BE(2, 0); // 0-1: EVENT DESCRIPTOR LENGTH: the rest of the header
    b[2] = 0x80; // NEA(7) 1 | reserved | NOTIFICATION CLASS 000b
    respondData(cmd, b, 4, allocationLength10(cdb));
    return Completion.DONE;
  }
  // Only the media class can have an event: it wins when it has one (lowest class with
  // an event), otherwise the lowest requested class reports "no change".
  let cls = 31 - Math.clz32(requested & -requested); // lowest set bit
  let event: number = MediaEvent.NO_CHANGE;
  if ((requested & (1 << EventClass.MEDIA)) !== 0) {
    const e = mmc.takeMediaEvent(cmd);
    if (e !== MediaEvent.NO_CHANGE) {
      cls = EventClass.MEDIA;
      event = e;
    }
  }
  b.writeUInt16BE(6, 0); // 0-1: EVENT DESCRIPTOR LENGTH: 2 header bytes + 4
  b[2] = cls; // NEA 0 | NOTIFICATION CLASS
  const p = 4; // the event descriptor (MMC-6 6.7.2.x)
  b.fill(0, p, p + 4);
  switch (cls) {
    case EventClass.OPERATIONAL_CHANGE:
      // 0: OPERATIONAL EVENT 0h (no change) | 1: PERSISTENT PREVENTED(7) | OPERATIONAL
      // STATUS 0h (available) | 2-3: OPERATIONAL REPORT 0
      b[p + 1] = mmc.locked ? 0x80 : 0x00;
      break;
    case EventClass.POWER_MANAGEMENT:
      b[p + 1] = 0x01; // 0: POWER EVENT 0h | 1: POWER STATUS 1h (active)
      break;
    case EventClass.EXTERNAL_REQUEST:
      // 0: EXTERNAL REQUEST EVENT 0h | 1: PERSISTENT PREVENTED(7) | EXTERNAL REQUEST
      // STATUS 0h (ready) | 2-3: EXTERNAL REQUEST 0
      b[p + 1] = mmc.locked ? 0x80 : 0x00;
      break;
    case EventClass.MEDIA:
      b[p] = event; // reserved(7..4) | MEDIA EVENT CODE
      // 1: reserved(7..2) | MEDIA PRESENT(1) | DOOR or TRAY OPEN(0)
      b[p + 1] = (mmc.discPresent ? 0x02 : 0) | (mmc.trayOpen ? 0x01 : 0);
      // 2: START SLOT 0, 3: END SLOT 0 (not a changer)
      break;
    default:
      // DEVICE BUSY: 0 DEVICE BUSY EVENT 0h | 1 DEVICE BUSY STATUS 0h (not busy) | 2-3 TIME 0
      break;
  }
  respondData(cmd, b, p + 4, allocationLength10(cdb));
  return Completion.DONE;
}

/**
 * MECHANISM STATUS CDB (MMC-6 table 350):
 *   0 BDh | 1-7 reserved | 8-9 ALLOCATION LENGTH | 10 reserved | 11 CONTROL
 * Mechanism status header (MMC-6 table 351); no slot tables (not a changer).
 */
export function mechanismStatus(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (rejectReservedBytes(cmd, 1, 8) || rejectReservedBytes(cmd, 10, 11)) return Completion.DONE;
  const b = lu.scratch;
  b.fill(0, 0, 8);
  b[0] = 0x00; // FAULT 0 | CHANGER STATE 00b (ready) | CURRENT SLOT 0
  b[1] = lu.mmc!.trayOpen ? 0x10 : 0x00; // MECHANISM STATE 000b (idle) | DOOR OPEN(4)
  // 2-4: CURRENT LBA (obsolete) 0; 5: NUMBER OF SLOTS AVAILABLE 0; 6-7: LENGTH OF SLOT TABLES 0
  respondData(cmd, b, 8, cmd.cdb.readUInt16BE(8));
  return Completion.DONE;
}
