/**
 * iSCSI PDU codec (RFC 7143 section 11): Basic Header Segment (BHS) layout, field
 * accessors that read straight from the received bytes, and builders that write a
 * target PDU's BHS into a caller-provided 48-byte area. Pure: no I/O, no allocation on
 * the accessors/builders (the caller owns every buffer).
 *
 * Every BHS is 48 bytes:
 *
 *   0      I bit (0x40) | opcode (0x3f)
 *   1      F bit (0x80) | opcode-specific flags
 *   2..3   opcode-specific
 *   4      TotalAHSLength (4-byte words)
 *   5..7   DataSegmentLength (bytes, excluding padding)
 *   8..15  LUN or opcode-specific
 *   16..19 Initiator Task Tag
 *   20..47 opcode-specific
 */
import { encodeLun as encodeSamLun } from '../scsi/report-luns.ts';

export const BHS_LENGTH = 48;
export const DIGEST_LENGTH = 4;
/** Reserved tag value (RFC 7143 11.2.1.8 / 11.18.2). */
export const RESERVED_TAG = 0xffffffff;

/** RFC 7143 11.1.1 opcodes. */
export const Opcode = {
  // initiator -> target
  NOP_OUT: 0x00,
  SCSI_COMMAND: 0x01,
  TASK_MGMT_REQUEST: 0x02,
  LOGIN_REQUEST: 0x03,
  TEXT_REQUEST: 0x04,
  DATA_OUT: 0x05,
  LOGOUT_REQUEST: 0x06,
  SNACK_REQUEST: 0x10,
  // target -> initiator
  NOP_IN: 0x20,
  SCSI_RESPONSE: 0x21,
  TASK_MGMT_RESPONSE: 0x22,
  LOGIN_RESPONSE: 0x23,
  TEXT_RESPONSE: 0x24,
  DATA_IN: 0x25,
  LOGOUT_RESPONSE: 0x26,
  R2T: 0x31,
  ASYNC_MESSAGE: 0x32,
  REJECT: 0x3f,
} as const;

/** RFC 7143 11.17.1 Reject reasons. */
export const RejectReason = {
  DATA_DIGEST_ERROR: 0x02,
  SNACK_REJECT: 0x03,
  PROTOCOL_ERROR: 0x04,
  COMMAND_NOT_SUPPORTED: 0x05,
  IMMEDIATE_COMMAND_REJECT: 0x06,
  TASK_IN_PROGRESS: 0x07,
  INVALID_DATA_ACK: 0x08,
  INVALID_PDU_FIELD: 0x09,
  LONG_OP_REJECT: 0x0a,
  WAITING_FOR_LOGOUT: 0x0c,
} as const;

/** RFC 7143 11.4.3 iSCSI response codes in the SCSI Response. */
export const IscsiResponse = {
  COMMAND_COMPLETED: 0x00,
  TARGET_FAILURE: 0x01,
} as const;

/** RFC 7143 11.5.1 task management function codes. */
export const TmfFunction = {
  ABORT_TASK: 1,
  ABORT_TASK_SET: 2,
  CLEAR_ACA: 3,
  CLEAR_TASK_SET: 4,
  LOGICAL_UNIT_RESET: 5,
  TARGET_WARM_RESET: 6,
  TARGET_COLD_RESET: 7,
  TASK_REASSIGN: 8,
} as const;

/** RFC 7143 11.6.1 task management response codes. */
export const TmfResponse = {
  FUNCTION_COMPLETE: 0,
  TASK_DOES_NOT_EXIST: 1,
  LUN_DOES_NOT_EXIST: 2,
  TASK_STILL_ALLEGIANT: 3,
  TASK_REASSIGN_NOT_SUPPORTED: 4,
  FUNCTION_NOT_SUPPORTED: 5,
  AUTHORIZATION_FAILED: 6,
  FUNCTION_REJECTED: 255,
} as const;

/** RFC 7143 11.14.1 logout reason codes and 11.15.1 response codes. */
export const LogoutReason = {
  CLOSE_SESSION: 0,
  CLOSE_CONNECTION: 1,
  REMOVE_CONNECTION_FOR_RECOVERY: 2,
} as const;
export const LogoutResponse = {
  CLOSED: 0,
  CID_NOT_FOUND: 1,
  RECOVERY_NOT_SUPPORTED: 2,
  CLEANUP_FAILED: 3,
} as const;

/** RFC 7143 11.9.1 AsyncEvent codes. */
export const AsyncEvent = {
  SCSI_EVENT: 0,
  LOGOUT_REQUEST: 1,
  DROPPING_CONNECTION: 2,
  DROPPING_ALL_CONNECTIONS: 3,
  NEGOTIATION_REQUEST: 4,
} as const;

// ---------------------------------------------------------------------------
// Common accessors (RFC 7143 11.2.1)

export function opcodeOf(b: Uint8Array, o: number): number {
  return b[o]! & 0x3f;
}
export function isImmediate(b: Uint8Array, o: number): boolean {
  return (b[o]! & 0x40) !== 0;
}
export function finalBit(b: Uint8Array, o: number): boolean {
  return (b[o + 1]! & 0x80) !== 0;
}
/** TotalAHSLength in bytes. */
export function ahsLength(b: Uint8Array, o: number): number {
  return b[o + 4]! * 4;
}
export function dataSegmentLength(b: Uint8Array, o: number): number {
  return (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!;
}
export function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
export function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
export function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}
export function putU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}
export function itt(b: Uint8Array, o: number): number {
  return u32(b, o + 16);
}
/** Padding to the next 4-byte boundary (RFC 7143 11.1: data segments are padded). */
export function pad4(n: number): number {
  return (4 - (n & 3)) & 3;
}

/** Byte offsets of opcode-specific fields (initiator PDUs). */
export const Field = {
  LUN: 8,
  ITT: 16,
  // SCSI Command (11.3)
  EDTL: 20,
  CMD_SN: 24,
  EXP_STAT_SN: 28,
  CDB: 32,
  // Data-Out (11.8), NOP-Out (11.18), Text (11.10)
  TTT: 20,
  DATA_SN: 36,
  BUFFER_OFFSET: 40,
  // TMF request (11.5)
  RTT: 20,
  REF_CMD_SN: 32,
  EXP_DATA_SN: 36,
  // Login (11.12) / Logout (11.14)
  ISID: 8,
  TSIH: 14,
  CID: 20,
} as const;

/** SCSI Command byte 1 flags (RFC 7143 11.3.1). */
export const ScsiCmdFlags = {
  FINAL: 0x80,
  READ: 0x40,
  WRITE: 0x20,
  ATTR_MASK: 0x07,
} as const;

// ---------------------------------------------------------------------------
// LUN field (SAM-5 4.7): single-level addressing only.

/**
 * Decode an 8-byte LUN field: peripheral device addressing (method 00b, bus 0) or
 * flat space addressing (method 01b). Returns -1 for anything else (multi-level,
 * extended addressing, non-zero lower levels), which callers treat as an unknown LUN.
 */
export function decodeLun(b: Uint8Array, o: number): number {
  if ((b[o + 2]! | b[o + 3]! | b[o + 4]! | b[o + 5]! | b[o + 6]! | b[o + 7]!) !== 0) return -1;
  const method = b[o]! >> 6;
  if (method === 0) return (b[o]! & 0x3f) === 0 ? b[o + 1]! : -1;
  if (method === 1) return ((b[o]! & 0x3f) << 8) | b[o + 1]!;
  return -1;
}

/** Encode a LUN number (0..16383) as a SAM-5 single-level LUN (shared/scsi/report-luns.ts). */
export function encodeLun(b: Uint8Array, o: number, lun: number): void {
  if (!encodeSamLun(b, o, lun)) throw new RangeError(`LUN ${lun} is outside 0..16383`);
}

// ---------------------------------------------------------------------------
// Builders for target PDUs. Each clears the 48-byte BHS at `o` and fills it.

function begin(b: Uint8Array, o: number, opcode: number, flags: number, dsl: number): void {
  b.fill(0, o, o + BHS_LENGTH);
  b[o] = opcode;
  b[o + 1] = flags;
  b[o + 5] = dsl >>> 16;
  b[o + 6] = dsl >>> 8;
  b[o + 7] = dsl;
}

/** Sequence numbers every target status-bearing PDU carries at bytes 24..35. */
export interface SeqNumbers {
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}

function putSeq(b: Uint8Array, o: number, s: SeqNumbers): void {
  putU32(b, o + 24, s.statSN);
  putU32(b, o + 28, s.expCmdSN);
  putU32(b, o + 32, s.maxCmdSN);
}

/** Residual flags of SCSI Response / Data-In byte 1 (RFC 7143 11.4.5). */
export const ResidualFlag = {
  OVERFLOW: 0x04,
  UNDERFLOW: 0x02,
} as const;

/**
 * SCSI Response (RFC 7143 11.4). `dsl` is the data segment length (2-byte
 * SenseLength + sense bytes, or 0). residualFlag: 0, OVERFLOW or UNDERFLOW.
 */
export function buildScsiResponse(
  b: Uint8Array,
  o: number,
  ittValue: number,
  status: number,
  residualFlag: number,
  residual: number,
  dsl: number,
  seq: SeqNumbers,
  expDataSN: number,
): void {
  begin(b, o, Opcode.SCSI_RESPONSE, 0x80 | residualFlag, dsl);
  b[o + 2] = IscsiResponse.COMMAND_COMPLETED;
  b[o + 3] = status;
  putU32(b, o + 16, ittValue);
  // 20..23 SNACK Tag: 0 (no R-Data SNACK at ERL 0).
  putSeq(b, o, seq);
  putU32(b, o + 36, expDataSN);
  // 40..43 bidirectional read residual: 0 (no bidirectional commands).
  putU32(b, o + 44, residual);
}

/**
 * Data-In (RFC 7143 11.7). With `withStatus` the S bit (and F) is set and the PDU
 * carries the SCSI status, StatSN and residuals (11.7.4: only when there is no sense).
 */
export function buildDataIn(
  b: Uint8Array,
  o: number,
  ittValue: number,
  final: boolean,
  withStatus: boolean,
  status: number,
  residualFlag: number,
  residual: number,
  dsl: number,
  dataSN: number,
  bufferOffset: number,
  seq: SeqNumbers,
): void {
  let flags = final ? 0x80 : 0;
  if (withStatus) flags |= 0x80 | 0x01 | residualFlag;
  begin(b, o, Opcode.DATA_IN, flags, dsl);
  if (withStatus) b[o + 3] = status;
  putU32(b, o + 16, ittValue);
  putU32(b, o + 20, RESERVED_TAG);
  // StatSN is only meaningful with the S bit (11.7.6); ExpCmdSN/MaxCmdSN always.
  putU32(b, o + 24, withStatus ? seq.statSN : 0);
  putU32(b, o + 28, seq.expCmdSN);
  putU32(b, o + 32, seq.maxCmdSN);
  putU32(b, o + 36, dataSN);
  putU32(b, o + 40, bufferOffset);
  putU32(b, o + 44, withStatus ? residual : 0);
}

/** R2T (RFC 7143 11.8). StatSN is carried but not advanced. */
export function buildR2T(
  b: Uint8Array,
  o: number,
  lunField: Uint8Array,
  lunOffset: number,
  ittValue: number,
  ttt: number,
  r2tSN: number,
  bufferOffset: number,
  desiredLength: number,
  seq: SeqNumbers,
): void {
  begin(b, o, Opcode.R2T, 0x80, 0);
  for (let i = 0; i < 8; i++) b[o + 8 + i] = lunField[lunOffset + i]!;
  putU32(b, o + 16, ittValue);
  putU32(b, o + 20, ttt);
  putSeq(b, o, seq);
  putU32(b, o + 36, r2tSN);
  putU32(b, o + 40, bufferOffset);
  putU32(b, o + 44, desiredLength);
}

/** NOP-In (RFC 7143 11.19): a reply (ttt = reserved) or a target ping (itt = reserved). */
export function buildNopIn(
  b: Uint8Array,
  o: number,
  lunField: Uint8Array | null,
  lunOffset: number,
  ittValue: number,
  ttt: number,
  dsl: number,
  seq: SeqNumbers,
): void {
  begin(b, o, Opcode.NOP_IN, 0x80, dsl);
  if (lunField) for (let i = 0; i < 8; i++) b[o + 8 + i] = lunField[lunOffset + i]!;
  putU32(b, o + 16, ittValue);
  putU32(b, o + 20, ttt);
  putSeq(b, o, seq);
}

/** Text Response (RFC 7143 11.11). */
export function buildTextResponse(
  b: Uint8Array,
  o: number,
  final: boolean,
  cont: boolean,
  ittValue: number,
  ttt: number,
  dsl: number,
  seq: SeqNumbers,
): void {
  begin(b, o, Opcode.TEXT_RESPONSE, (final ? 0x80 : 0) | (cont ? 0x40 : 0), dsl);
  putU32(b, o + 16, ittValue);
  putU32(b, o + 20, ttt);
  putSeq(b, o, seq);
}

/** Login Response (RFC 7143 11.13). */
export function buildLoginResponse(
  b: Uint8Array,
  o: number,
  transit: boolean,
  cont: boolean,
  csg: number,
  nsg: number,
  versionMax: number,
  versionActive: number,
  isid: Uint8Array,
  tsih: number,
  ittValue: number,
  statusClass: number,
  statusDetail: number,
  dsl: number,
  seq: SeqNumbers,
): void {
  begin(b, o, Opcode.LOGIN_RESPONSE, (transit ? 0x80 : 0) | (cont ? 0x40 : 0) | ((csg & 3) << 2) | (nsg & 3), dsl);
  b[o + 2] = versionMax;
  b[o + 3] = versionActive;
  for (let i = 0; i < 6; i++) b[o + 8 + i] = isid[i]!;
  putU16(b, o + 14, tsih);
  putU32(b, o + 16, ittValue);
  putSeq(b, o, seq);
  b[o + 36] = statusClass;
  b[o + 37] = statusDetail;
}

/** Logout Response (RFC 7143 11.15). */
export function buildLogoutResponse(
  b: Uint8Array,
  o: number,
  ittValue: number,
  response: number,
  time2Wait: number,
  time2Retain: number,
  seq: SeqNumbers,
): void {
  begin(b, o, Opcode.LOGOUT_RESPONSE, 0x80, 0);
  b[o + 2] = response;
  putU32(b, o + 16, ittValue);
  putSeq(b, o, seq);
  putU16(b, o + 40, time2Wait);
  putU16(b, o + 42, time2Retain);
}

/** Task Management Function Response (RFC 7143 11.6). */
export function buildTmfResponse(b: Uint8Array, o: number, ittValue: number, response: number, seq: SeqNumbers): void {
  begin(b, o, Opcode.TASK_MGMT_RESPONSE, 0x80, 0);
  b[o + 2] = response;
  putU32(b, o + 16, ittValue);
  putSeq(b, o, seq);
}

/** Reject (RFC 7143 11.17): the data segment carries the rejected PDU's BHS. */
export function buildReject(b: Uint8Array, o: number, reason: number, seq: SeqNumbers): void {
  begin(b, o, Opcode.REJECT, 0x80, BHS_LENGTH);
  b[o + 2] = reason;
  putU32(b, o + 16, RESERVED_TAG);
  putSeq(b, o, seq);
}

/** Asynchronous Message (RFC 7143 11.9). */
export function buildAsyncMessage(
  b: Uint8Array,
  o: number,
  event: number,
  param1: number,
  param2: number,
  param3: number,
  dsl: number,
  seq: SeqNumbers,
): void {
  begin(b, o, Opcode.ASYNC_MESSAGE, 0x80, dsl);
  putU32(b, o + 16, RESERVED_TAG);
  putSeq(b, o, seq);
  b[o + 36] = event;
  putU16(b, o + 38, param1);
  putU16(b, o + 40, param2);
  putU16(b, o + 42, param3);
}
