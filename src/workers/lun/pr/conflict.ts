/**
 * The reservation stage of the LUN pipeline (UA → ALUA → reservation → execute,
 * DESIGN.md): is `cmd` allowed in the presence of the LU's reservations?
 *
 * Persistent reservations: SPC-4 5.14.1 table 62 (SPC commands) and SBC-4 4.17
 * table 13 (block commands), "commands that are allowed in the presence of various
 * reservations". Every command falls in one of three classes:
 *
 *   class    | reservation held by another I_T nexus, issuing nexus is ...
 *            | any, WE  | any, EA  | registered, RR types | unregistered, WE-RR | unregistered, EA-RR
 *   ---------+----------+----------+----------------------+---------------------+--------------------
 *   ALWAYS   | allowed  | allowed  | allowed              | allowed             | allowed
 *   READ     | allowed  | conflict | allowed              | allowed             | conflict
 *   WRITE    | conflict | conflict | allowed              | conflict            | conflict
 *
 * (WE = Write Exclusive, EA = Exclusive Access; "any" columns apply to the WE and EA
 * types, where registration gives no access; RR = registrants only or all registrants,
 * WE-RR = types 5h and 7h, EA-RR = 6h and 8h.) The holder is never in conflict, and
 * under the all registrants types every registrant is a holder.
 *
 * READ also holds MODE SENSE, READ BUFFER, RECEIVE COPY RESULTS, RECEIVE DIAGNOSTIC
 * RESULTS, REPORT SUPPORTED OPERATION CODES / TASK MANAGEMENT FUNCTIONS, READ ATTRIBUTE
 * and READ DEFECT DATA: REPORT CAPABILITIES says ALLOW COMMANDS = 011b (SPC-4 6.15.4
 * table 208: allowed through Write Exclusive, and TEST UNIT READY through Exclusive
 * Access). PERSISTENT RESERVE OUT and RESERVE/RELEASE are ALWAYS here: their executors
 * decide (SPC-4 5.14.x per service action, 5.14.3 for RESERVE/RELEASE). Operation codes
 * spindle does not know are WRITE: conflict rather than risk access.
 *
 * SPC-2 reservations (RESERVE(6)/(10), SPC-2 5.5.1): from any I_T nexus but the holder
 * only INQUIRY, REQUEST SENSE, REPORT LUNS, RELEASE (GOOD, no effect), RESERVE (the
 * executor conflicts) and PREVENT ALLOW MEDIUM REMOVAL with PREVENT = 0 are allowed;
 * PERSISTENT RESERVE IN / OUT conflict from every nexus, holder included (SPC-4 5.14.3).
 *
 * RESERVATION CONFLICT is a status without sense data (SAM-5 5.3.1).
 *
 * Hot path: no reservation of either kind → one load and compare, return false.
 * Otherwise table lookups and one cached Map lookup of the nexus's role; no allocation.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { MaintenanceIn, Opcode, ServiceActionIn16 } from '../../../shared/scsi/opcodes.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { PrRole } from './engine.ts';

export const AccessClass = {
  ALWAYS: 0,
  READ: 1,
  WRITE: 2,
  /** Decided by CDB fields (see classOf). */
  BY_CDB: 3,
} as const;
export type AccessClass = (typeof AccessClass)[keyof typeof AccessClass];

const ALWAYS = AccessClass.ALWAYS;
const READ = AccessClass.READ;
const BY_CDB = AccessClass.BY_CDB;

/** opcode → class; unlisted: WRITE. */
const CLASS_BY_OPCODE: readonly (readonly [number, AccessClass])[] = [
  // SPC-4 table 62
  [Opcode.TEST_UNIT_READY, ALWAYS],
  [Opcode.REQUEST_SENSE, ALWAYS],
  [Opcode.INQUIRY, ALWAYS],
  [Opcode.LOG_SENSE, ALWAYS],
  [Opcode.PERSISTENT_RESERVE_IN, ALWAYS],
  [Opcode.PERSISTENT_RESERVE_OUT, ALWAYS],
  [Opcode.REPORT_LUNS, ALWAYS],
  [Opcode.RESERVE_6, ALWAYS],
  [Opcode.RELEASE_6, ALWAYS],
  [Opcode.RESERVE_10, ALWAYS],
  [Opcode.RELEASE_10, ALWAYS],
  [0xab, ALWAYS], // SERVICE ACTION IN(12): READ MEDIA SERIAL NUMBER
  [Opcode.MODE_SENSE_6, READ],
  [Opcode.MODE_SENSE_10, READ],
  [Opcode.READ_BUFFER, READ],
  [0x1c, READ], // RECEIVE DIAGNOSTIC RESULTS
  [Opcode.RECEIVE_COPY_RESULTS, READ],
  [0x8c, READ], // READ ATTRIBUTE
  [Opcode.MAINTENANCE_IN, BY_CDB],
  // SBC-4 table 13
  [Opcode.READ_CAPACITY_10, ALWAYS],
  [Opcode.SERVICE_ACTION_IN_16, BY_CDB],
  [Opcode.READ_6, READ],
  [Opcode.READ_10, READ],
  [Opcode.READ_12, READ],
  [Opcode.READ_16, READ],
  [0x3e, READ], // READ LONG(10)
  [Opcode.VERIFY_10, READ],
  [Opcode.VERIFY_12, READ],
  [Opcode.VERIFY_16, READ],
  [Opcode.PRE_FETCH_10, READ],
  [Opcode.PRE_FETCH_16, READ],
  [Opcode.READ_DEFECT_DATA_10, READ],
  [Opcode.READ_DEFECT_DATA_12, READ],
  [Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL, BY_CDB],
  [Opcode.START_STOP_UNIT, BY_CDB],
];

const CLASS = new Uint8Array(256).fill(AccessClass.WRITE);
for (const [op, c] of CLASS_BY_OPCODE) CLASS[op] = c;

/** MAINTENANCE IN service actions that are ALWAYS (SPC-4 table 62); the others READ. */
const MAINTENANCE_IN_ALWAYS = new Uint8Array(32);
for (const sa of [
  MaintenanceIn.REPORT_IDENTIFYING_INFORMATION,
  MaintenanceIn.REPORT_TARGET_PORT_GROUPS,
  0x0b, // REPORT ALIASES
  0x0e, // REPORT PRIORITY
  MaintenanceIn.REPORT_TIMESTAMP,
])
  MAINTENANCE_IN_ALWAYS[sa] = 1;

/** The class of `cdb` (resolving BY_CDB). */
export function classOf(cdb: Buffer): AccessClass {
  const op = cdb[0]!;
  const c = CLASS[op]! as AccessClass;
  if (c !== BY_CDB) return c;
  switch (op) {
    case Opcode.MAINTENANCE_IN:
      return MAINTENANCE_IN_ALWAYS[cdb[1]! & 0x1f] === 1 ? ALWAYS : READ;
    case Opcode.SERVICE_ACTION_IN_16:
      // READ CAPACITY(16) always; GET LBA STATUS, REPORT REFERRALS, READ LONG(16) read.
      return (cdb[1]! & 0x1f) === ServiceActionIn16.READ_CAPACITY_16 ? ALWAYS : READ;
    case Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL:
      // SBC-4 table 13: PREVENT = 00b allowed, otherwise conflict.
      return (cdb[4]! & 0x03) === 0 ? ALWAYS : AccessClass.WRITE;
    case Opcode.START_STOP_UNIT:
      // SBC-4 table 13: START = 1 with POWER CONDITION = 0h allowed, otherwise conflict.
      return (cdb[4]! & 0xf1) === 0x01 ? ALWAYS : AccessClass.WRITE;
    default:
      return AccessClass.WRITE;
  }
}

/** Commands a non-holder may send while an SPC-2 reservation exists (SPC-2 5.5.1). */
const SPC2_ALLOWED = new Uint8Array(256);
for (const op of [Opcode.INQUIRY, Opcode.REQUEST_SENSE, Opcode.REPORT_LUNS, Opcode.RESERVE_6, Opcode.RELEASE_6, Opcode.RESERVE_10, Opcode.RELEASE_10])
  SPC2_ALLOWED[op] = 1;

/**
 * Bit per reservation TYPE (index = TYPE): set when unregistered nexuses may READ
 * (the Write Exclusive flavours 1h, 5h, 7h).
 */
const READ_ALLOWED_BY_TYPE = new Uint8Array([0, 1, 0, 0, 0, 1, 0, 1, 0]);
/** Set for the registrants-only and all-registrants types (registrants have access). */
const REGISTRANTS_BY_TYPE = new Uint8Array([0, 0, 0, 0, 0, 1, 1, 1, 1]);

/**
 * The reservation check. True: `cmd` completed with RESERVATION CONFLICT (status set,
 * no sense; the caller calls finish()). False: go on.
 */
export function checkReservationConflict(lu: LogicalUnit, cmd: ScsiCommand): boolean {
  const pr = lu.pr;
  const type = pr.reservationType;
  if (type === 0 && !pr.spc2Active) return false;
  if (conflicts(lu, cmd, type)) {
    cmd.status = ScsiStatus.RESERVATION_CONFLICT;
    cmd.senseLength = 0;
    cmd.dataInLength = 0;
    return true;
  }
  return false;
}

function conflicts(lu: LogicalUnit, cmd: ScsiCommand, type: number): boolean {
  const pr = lu.pr;
  const cdb = cmd.cdb;
  const op = cdb[0]!;
  const role = pr.roleOf(cmd.nexus);
  if (pr.spc2Active) {
    if (op === Opcode.PERSISTENT_RESERVE_IN || op === Opcode.PERSISTENT_RESERVE_OUT) return true;
    if ((role & PrRole.SPC2_HOLDER) === 0 && SPC2_ALLOWED[op] === 0) {
      if (op !== Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL || (cdb[4]! & 0x03) !== 0) return true;
    }
  }
  if (type === 0 || (role & PrRole.HOLDER) !== 0) return false;
  const c = classOf(cdb);
  if (c === ALWAYS) return false;
  if ((role & PrRole.REGISTERED) !== 0 && REGISTRANTS_BY_TYPE[type] === 1) return false;
  return c !== READ || READ_ALLOWED_BY_TYPE[type] === 0;
}
