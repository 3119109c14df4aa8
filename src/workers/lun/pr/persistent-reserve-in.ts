/**
 * PERSISTENT RESERVE IN (SPC-4 6.15): READ KEYS, READ RESERVATION, REPORT CAPABILITIES,
 * READ FULL STATUS, answered from the LU's copy of the ClusterState entry (pr/engine.ts).
 *
 * CDB (SPC-4 6.15.1 table 198):
 *   0 5Eh | 1 reserved(7..5) SERVICE ACTION(4..0) | 2-6 reserved
 *   7-8 ALLOCATION LENGTH | 9 CONTROL
 *
 * Responses are built in a buffer of their full size (one allocation per command: not a
 * hot path, and READ FULL STATUS can exceed the LU scratch); ADDITIONAL LENGTH always
 * describes the whole list, the transfer is cut at the ALLOCATION LENGTH (SPC-4 4.2.5.6).
 */
import { allocationLength10, respondData } from '../../../shared/scsi/cdb.ts';
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { PersistentReserveIn } from '../../../shared/scsi/opcodes.ts';
import { PR_SCOPE_LU } from '../../../shared/state/cluster-state.ts';
import { holds } from '../../../shared/state/pr-transition.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { transportIdLength, writeTransportId } from './transport-id.ts';

/**
 * REPORT CAPABILITIES byte 2 (SPC-4 6.15.4 table 207):
 *   RLR_C(7)=0 reserved(6..5) CRH(4)=1 SIP_C(3)=1 ATP_C(2)=1 reserved(1) PTPL_C(0)=1
 * CRH: RESERVE/RELEASE follow SPC-4 5.14.3; SIP_C: SPEC_I_PT supported; ATP_C: ALL_TG_PT
 * supported; PTPL_C: persist through power loss supported.
 */
const CAPABILITIES_BYTE2 = 0x10 | 0x08 | 0x04 | 0x01;
/**
 * Byte 3: TMV(7)=1 ALLOW COMMANDS(6..4)=011b reserved(3..1) PTPL_A(0)
 * TMV: the type mask is valid. ALLOW COMMANDS 011b: TEST UNIT READY through Exclusive
 * Access, and MODE SENSE, READ ATTRIBUTE, READ BUFFER, RECEIVE COPY RESULTS, RECEIVE
 * DIAGNOSTIC RESULTS, REPORT SUPPORTED OPERATION CODES / TMF, READ DEFECT DATA through
 * Write Exclusive (table 208; the `pr` flag of each opcode registry row says so,
 * pr/conflict.ts applies it).
 */
const CAPABILITIES_BYTE3 = 0x80 | (0b011 << 4);
/**
 * PERSISTENT RESERVATION TYPE MASK (table 209), all six types:
 *   byte 4: WR_EX_AR(7) EX_AC_RO(6) WR_EX_RO(5) reserved(4) EX_AC(3) reserved(2) WR_EX(1) reserved(0)
 *   byte 5: reserved(7..1) EX_AC_AR(0)
 */
const TYPE_MASK_BYTE4 = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;
const TYPE_MASK_BYTE5 = 0x01;

function finishWith(cmd: ScsiCommand, b: Buffer): Completion {
  respondData(cmd, b, b.length, allocationLength10(cmd.cdb));
  return Completion.DONE;
}

/** Shared CDB checks; true when the command was completed with CHECK CONDITION. */
function badCdb(cmd: ScsiCommand): boolean {
  return rejectReservedBits(cmd, 1, 0xe0) || rejectReservedBytes(cmd, 2, 7);
}

/**
 * READ KEYS (SPC-4 6.15.2 table 200):
 *   0-3 PRGENERATION | 4-7 ADDITIONAL LENGTH (8 x keys) | 8- one 8-byte key per registration
 * A key registered by several I_T nexuses (ALL_TG_PT = 1 registers one per target port,
 * SPC-4 6.16.3.1) is listed once per registration, as 6.15.2 requires.
 */
export function readKeys(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (badCdb(cmd)) return Completion.DONE;
  const s = lu.pr.state;
  const b = Buffer.alloc(8 + 8 * s.registrations.length);
  b.writeUInt32BE(s.generation, 0);
  b.writeUInt32BE(8 * s.registrations.length, 4);
  let at = 8;
  for (const r of s.registrations) {
    b.write(r.key, at, 'hex');
    at += 8;
  }
  return finishWith(cmd, b);
}

/**
 * READ RESERVATION (SPC-4 6.15.3 tables 201, 202):
 *   0-3 PRGENERATION | 4-7 ADDITIONAL LENGTH (0 or 16) | with a reservation:
 *   8-15 RESERVATION KEY (the holder's; 0 for all registrants types, 5.14.10)
 *   16-19 obsolete | 20 reserved | 21 SCOPE(7..4) TYPE(3..0) | 22-23 obsolete
 */
export function readReservation(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (badCdb(cmd)) return Completion.DONE;
  const s = lu.pr.state;
  const res = s.reservation;
  const b = Buffer.alloc(res === null ? 8 : 24);
  b.writeUInt32BE(s.generation, 0);
  if (res !== null) {
    b.writeUInt32BE(16, 4);
    const holder = res.holder === null ? undefined : s.registrations.find((r) => r.id === res.holder);
    if (holder !== undefined) b.write(holder.key, 8, 'hex');
    b[21] = (PR_SCOPE_LU << 4) | res.type;
  }
  return finishWith(cmd, b);
}

/**
 * REPORT CAPABILITIES (SPC-4 6.15.4 table 206):
 *   0-1 LENGTH (8) | 2 capability bits | 3 TMV, ALLOW COMMANDS, PTPL_A
 *   4-5 PERSISTENT RESERVATION TYPE MASK | 6-7 reserved
 */
export function reportCapabilities(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (badCdb(cmd)) return Completion.DONE;
  const b = Buffer.alloc(8);
  b.writeUInt16BE(8, 0);
  b[2] = CAPABILITIES_BYTE2;
  b[3] = CAPABILITIES_BYTE3 | (lu.pr.state.aptpl ? 0x01 : 0); // PTPL_A: APTPL is active
  b[4] = TYPE_MASK_BYTE4;
  b[5] = TYPE_MASK_BYTE5;
  return finishWith(cmd, b);
}

/**
 * READ FULL STATUS (SPC-4 6.15.5 tables 210, 211): 0-3 PRGENERATION, 4-7 ADDITIONAL
 * LENGTH, then one full status descriptor per registration (per registered I_T nexus;
 * a REGISTER with ALL_TG_PT = 1 made one per target port):
 *   0-7 RESERVATION KEY | 8-11 reserved | 12 reserved(7..2) ALL_TG_PT(1) R_HOLDER(0)
 *   13 SCOPE(7..4) TYPE(3..0) (when R_HOLDER) | 14-17 reserved
 *   18-19 RELATIVE TARGET PORT IDENTIFIER | 20-23 ADDITIONAL DESCRIPTOR LENGTH (n - 23)
 *   24-n TransportID of the initiator port (transport-id.ts)
 */
export function readFullStatus(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (badCdb(cmd)) return Completion.DONE;
  const s = lu.pr.state;
  let total = 8;
  for (const r of s.registrations) total += 24 + transportIdLength(r.initiatorName, r.isid);
  const b = Buffer.alloc(total);
  b.writeUInt32BE(s.generation, 0);
  b.writeUInt32BE(total - 8, 4);
  let at = 8;
  for (const r of s.registrations) {
    b.write(r.key, at, 'hex');
    const holder = holds(s.reservation, r);
    // ALL_TG_PT (bit 1) = 0: each descriptor is one I_T nexus (SPC-4 6.15.5 lets the
    // device server return a descriptor per I_T nexus instead of one with ALL_TG_PT = 1,
    // which would claim the same holder status for every target port; an ALL_TG_PT = 1
    // registration is one registration per target port here, and only one of them may be
    // the holder, SPC-4 5.14.10).
    b[at + 12] = holder ? 0x01 : 0;
    if (holder) b[at + 13] = (PR_SCOPE_LU << 4) | s.reservation!.type;
    b.writeUInt16BE(r.relativeTargetPortId, at + 18);
    const tidLength = writeTransportId(b, at + 24, r.initiatorName, r.isid);
    b.writeUInt32BE(tidLength, at + 20);
    at += 24 + tidLength;
  }
  return finishWith(cmd, b);
}

/** Service action → executor, for the command table (spc/commands.ts). */
export const PR_IN_ACTIONS = [
  [PersistentReserveIn.READ_KEYS, 'READ KEYS', readKeys],
  [PersistentReserveIn.READ_RESERVATION, 'READ RESERVATION', readReservation],
  [PersistentReserveIn.REPORT_CAPABILITIES, 'REPORT CAPABILITIES', reportCapabilities],
  [PersistentReserveIn.READ_FULL_STATUS, 'READ FULL STATUS', readFullStatus],
] as const;
