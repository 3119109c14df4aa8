/**
 * Sense data as a value.
 *
 * Every check in the target core ends in one entry of `SenseReason`; the bytes are built
 * once, here, at the edge (fixed format, SPC-4 4.5.3). CHECK CONDITION is a normal
 * completion, not an exception.
 */
import type { ScsiCommand } from './command.ts';
import { ScsiStatus } from './command.ts';

/** SPC-4 4.5.6 table 48: sense keys. */
export const SenseKey = {
  NO_SENSE: 0x0,
  RECOVERED_ERROR: 0x1,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  BLANK_CHECK: 0x8,
  VENDOR_SPECIFIC: 0x9,
  COPY_ABORTED: 0xa,
  ABORTED_COMMAND: 0xb,
  VOLUME_OVERFLOW: 0xd,
  MISCOMPARE: 0xe,
  COMPLETED: 0xf,
} as const;

/** One sense reason: sense key plus ADDITIONAL SENSE CODE / QUALIFIER (SPC-4 4.5.6 table 49). */
export interface SenseDetail {
  readonly key: number;
  readonly asc: number;
  readonly ascq: number;
}

const K = SenseKey;

/**
 * Every reason spindle reports. Callers pass the entry itself
 * (`setCheckCondition(cmd, SenseReason.LBA_OUT_OF_RANGE)`): no lookup on the hot path.
 */
export const SenseReason = {
  NO_SENSE: { key: K.NO_SENSE, asc: 0x00, ascq: 0x00 },
  // NOT READY
  LUN_NOT_READY: { key: K.NOT_READY, asc: 0x04, ascq: 0x00 }, // cause not reportable
  LUN_NOT_READY_BECOMING_READY: { key: K.NOT_READY, asc: 0x04, ascq: 0x01 },
  LUN_NOT_READY_MANUAL_INTERVENTION: { key: K.NOT_READY, asc: 0x04, ascq: 0x03 },
  LUN_NOT_READY_ALUA_TRANSITION: { key: K.NOT_READY, asc: 0x04, ascq: 0x0a },
  LUN_NOT_ACCESSIBLE_ALUA_STANDBY: { key: K.NOT_READY, asc: 0x04, ascq: 0x0b },
  LUN_NOT_ACCESSIBLE_ALUA_UNAVAILABLE: { key: K.NOT_READY, asc: 0x04, ascq: 0x0c },
  LUN_NOT_READY_SANITIZE_IN_PROGRESS: { key: K.NOT_READY, asc: 0x04, ascq: 0x1b },
  MEDIUM_NOT_PRESENT: { key: K.NOT_READY, asc: 0x3a, ascq: 0x00 },
  MEDIUM_NOT_PRESENT_TRAY_CLOSED: { key: K.NOT_READY, asc: 0x3a, ascq: 0x01 },
  MEDIUM_NOT_PRESENT_TRAY_OPEN: { key: K.NOT_READY, asc: 0x3a, ascq: 0x02 },
  // MEDIUM ERROR
  WRITE_ERROR: { key: K.MEDIUM_ERROR, asc: 0x0c, ascq: 0x00 },
  UNRECOVERED_READ_ERROR: { key: K.MEDIUM_ERROR, asc: 0x11, ascq: 0x00 },
  SANITIZE_COMMAND_FAILED: { key: K.MEDIUM_ERROR, asc: 0x31, ascq: 0x03 },
  // HARDWARE ERROR
  /** The backing device failed or went away (ENXIO, ENODEV, ENOMEDIUM...). */
  LOGICAL_UNIT_FAILURE: { key: K.HARDWARE_ERROR, asc: 0x3e, ascq: 0x01 },
  INTERNAL_TARGET_FAILURE: { key: K.HARDWARE_ERROR, asc: 0x44, ascq: 0x00 },
  // ILLEGAL REQUEST
  INVALID_FIELD_IN_INFORMATION_UNIT: { key: K.ILLEGAL_REQUEST, asc: 0x0e, ascq: 0x03 },
  PARAMETER_LIST_LENGTH_ERROR: { key: K.ILLEGAL_REQUEST, asc: 0x1a, ascq: 0x00 },
  INVALID_COMMAND_OPERATION_CODE: { key: K.ILLEGAL_REQUEST, asc: 0x20, ascq: 0x00 },
  LBA_OUT_OF_RANGE: { key: K.ILLEGAL_REQUEST, asc: 0x21, ascq: 0x00 },
  INVALID_FIELD_IN_CDB: { key: K.ILLEGAL_REQUEST, asc: 0x24, ascq: 0x00 },
  LOGICAL_UNIT_NOT_SUPPORTED: { key: K.ILLEGAL_REQUEST, asc: 0x25, ascq: 0x00 },
  INVALID_FIELD_IN_PARAMETER_LIST: { key: K.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x00 },
  PARAMETER_NOT_SUPPORTED: { key: K.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x01 },
  PARAMETER_VALUE_INVALID: { key: K.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x02 },
  SAVING_PARAMETERS_NOT_SUPPORTED: { key: K.ILLEGAL_REQUEST, asc: 0x39, ascq: 0x00 },
  /** SAM-5 8.6.5: a command with the ACA task attribute while no ACA condition exists. */
  INVALID_MESSAGE_ERROR: { key: K.ILLEGAL_REQUEST, asc: 0x49, ascq: 0x00 },
  // EXTENDED COPY parameter list errors (SPC-4 6.4, annex F table F.1).
  OPERATION_IN_PROGRESS: { key: K.ILLEGAL_REQUEST, asc: 0x00, ascq: 0x16 },
  TOO_MANY_TARGET_DESCRIPTORS: { key: K.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x06 },
  UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE: { key: K.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x07 },
  TOO_MANY_SEGMENT_DESCRIPTORS: { key: K.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x08 },
  UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE: { key: K.ILLEGAL_REQUEST, asc: 0x26, ascq: 0x09 },
  MEDIUM_REMOVAL_PREVENTED: { key: K.ILLEGAL_REQUEST, asc: 0x53, ascq: 0x02 },
  INSUFFICIENT_REGISTRATION_RESOURCES: { key: K.ILLEGAL_REQUEST, asc: 0x55, ascq: 0x04 },
  // DATA PROTECT
  WRITE_PROTECTED: { key: K.DATA_PROTECT, asc: 0x27, ascq: 0x00 },
  /** SBC-4 4.7.3.6: a write needed space the backing store does not have (ENOSPC). */
  SPACE_ALLOCATION_FAILED_WRITE_PROTECT: { key: K.DATA_PROTECT, asc: 0x27, ascq: 0x07 },
  // UNIT ATTENTION
  /** A medium was loaded (SPC-4 annex F; MMC-6 4.1.6.2): NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED. */
  NOT_READY_TO_READY_CHANGE: { key: K.UNIT_ATTENTION, asc: 0x28, ascq: 0x00 },
  POWER_ON_RESET_OR_BUS_DEVICE_RESET: { key: K.UNIT_ATTENTION, asc: 0x29, ascq: 0x00 },
  BUS_DEVICE_RESET_FUNCTION_OCCURRED: { key: K.UNIT_ATTENTION, asc: 0x29, ascq: 0x03 },
  I_T_NEXUS_LOSS: { key: K.UNIT_ATTENTION, asc: 0x29, ascq: 0x07 },
  /** The device server restarted (its LUN worker was replaced, issue 12). */
  DEVICE_INTERNAL_RESET: { key: K.UNIT_ATTENTION, asc: 0x29, ascq: 0x04 },
  MODE_PARAMETERS_CHANGED: { key: K.UNIT_ATTENTION, asc: 0x2a, ascq: 0x01 },
  RESERVATIONS_PREEMPTED: { key: K.UNIT_ATTENTION, asc: 0x2a, ascq: 0x03 },
  RESERVATIONS_RELEASED: { key: K.UNIT_ATTENTION, asc: 0x2a, ascq: 0x04 },
  REGISTRATIONS_PREEMPTED: { key: K.UNIT_ATTENTION, asc: 0x2a, ascq: 0x05 },
  ASYMMETRIC_ACCESS_STATE_CHANGED: { key: K.UNIT_ATTENTION, asc: 0x2a, ascq: 0x06 },
  CAPACITY_DATA_HAS_CHANGED: { key: K.UNIT_ATTENTION, asc: 0x2a, ascq: 0x09 },
  COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: { key: K.UNIT_ATTENTION, asc: 0x2f, ascq: 0x00 },
  REPORTED_LUNS_DATA_HAS_CHANGED: { key: K.UNIT_ATTENTION, asc: 0x3f, ascq: 0x0e },
  // ABORTED COMMAND
  ABORTED_COMMAND: { key: K.ABORTED_COMMAND, asc: 0x00, ascq: 0x00 },
  INITIATOR_RESPONSE_TIMEOUT: { key: K.ABORTED_COMMAND, asc: 0x4b, ascq: 0x06 },
  // COPY ABORTED (SPC-4 5.16.7.4: errors while processing EXTENDED COPY segments)
  COPY_ABORTED: { key: K.COPY_ABORTED, asc: 0x00, ascq: 0x00 },
  UNREACHABLE_COPY_TARGET: { key: K.COPY_ABORTED, asc: 0x08, ascq: 0x04 },
  COPY_TARGET_DEVICE_NOT_REACHABLE: { key: K.COPY_ABORTED, asc: 0x0d, ascq: 0x02 },
  UNEXPECTED_INEXACT_SEGMENT: { key: K.COPY_ABORTED, asc: 0x26, ascq: 0x0a },
  // MISCOMPARE
  MISCOMPARE_DURING_VERIFY: { key: K.MISCOMPARE, asc: 0x1d, ascq: 0x00 },
} as const satisfies Record<string, SenseDetail>;

/**
 * Where in the CDB (or parameter list) the offending field is: SPC-4 4.5.2.4.2,
 * the "field pointer" sense-key specific information.
 */
export interface FieldPointer {
  /** true: the error is in the CDB (C/D = 1); false: in the parameter data. */
  readonly cdb: boolean;
  /** Byte offset of the field (FIELD POINTER). */
  readonly byte: number;
  /** Bit of the field's most significant bit (BIT POINTER, 0..7); absent: BPV = 0. */
  readonly bit?: number;
}

/** Length of the fixed-format sense data spindle builds (SPC-4 4.5.3: 18 bytes). */
export const FIXED_SENSE_LENGTH = 18;

/**
 * Write fixed-format sense data (SPC-4 4.5.3, table 45) into buf[0, 18) and return 18.
 * `information`, when given, fills the INFORMATION field and sets VALID (e.g. the offset
 * of the first miscompare, SBC-4 5.33). The buffer must hold at least 18 bytes.
 */
export function writeFixedSense(
  buf: Buffer,
  reason: SenseDetail,
  fieldPointer?: FieldPointer,
  information?: number,
): number {
  const hasInfo = information !== undefined;
  // Byte 0: VALID (bit 7: INFORMATION field is valid) | RESPONSE CODE 70h (current, fixed).
  buf[0] = (hasInfo ? 0x80 : 0x00) | 0x70;
  // Byte 1: obsolete.
  buf[1] = 0;
  // Byte 2: FILEMARK(7) EOM(6) ILI(5) SDAT_OVFL(4) reserved(3) | SENSE KEY (3..0).
  buf[2] = reason.key & 0x0f;
  // Bytes 3-6: INFORMATION (big endian); a 32-bit field, so larger values are clamped.
  buf.writeUInt32BE(hasInfo ? Math.min(information, 0xffffffff) >>> 0 : 0, 3);
  // Byte 7: ADDITIONAL SENSE LENGTH = n - 7 (bytes after this one): 18 - 8 = 10.
  buf[7] = FIXED_SENSE_LENGTH - 8;
  // Bytes 8-11: COMMAND-SPECIFIC INFORMATION (none).
  buf.writeUInt32BE(0, 8);
  // Byte 12: ADDITIONAL SENSE CODE.
  buf[12] = reason.asc;
  // Byte 13: ADDITIONAL SENSE CODE QUALIFIER.
  buf[13] = reason.ascq;
  // Byte 14: FIELD REPLACEABLE UNIT CODE (none).
  buf[14] = 0;
  if (fieldPointer !== undefined) {
    // Byte 15: SKSV(7)=1 | C/D(6) | reserved(5..4) | BPV(3) | BIT POINTER(2..0)
    // (SPC-4 4.5.2.4.2, table 50).
    const bpv = fieldPointer.bit !== undefined;
    buf[15] = 0x80 | (fieldPointer.cdb ? 0x40 : 0) | (bpv ? 0x08 | (fieldPointer.bit! & 0x07) : 0);
    // Bytes 16-17: FIELD POINTER, the byte offset of the field in error.
    buf.writeUInt16BE(fieldPointer.byte & 0xffff, 16);
  } else {
    // Bytes 15-17: SKSV = 0, sense-key specific information not valid.
    buf[15] = 0;
    buf[16] = 0;
    buf[17] = 0;
  }
  return FIXED_SENSE_LENGTH;
}

/**
 * Write descriptor-format sense data (SPC-4 4.5.2) without descriptors into buf[0, 8)
 * and return 8. Used by REQUEST SENSE with DESC = 1 for reasons that carry neither a
 * field pointer nor INFORMATION (e.g. NO SENSE).
 */
export function writeDescriptorSenseHeader(buf: Buffer, reason: SenseDetail): number {
  // Byte 0: RESPONSE CODE 72h (current, descriptor format).
  buf[0] = 0x72;
  // Byte 1: reserved (7..4) | SENSE KEY (3..0).
  buf[1] = reason.key & 0x0f;
  // Byte 2: ADDITIONAL SENSE CODE.
  buf[2] = reason.asc;
  // Byte 3: ADDITIONAL SENSE CODE QUALIFIER.
  buf[3] = reason.ascq;
  // Bytes 4-6: SDAT_OVFL(byte 4 bit 7) and reserved.
  buf[4] = 0;
  buf[5] = 0;
  buf[6] = 0;
  // Byte 7: ADDITIONAL SENSE LENGTH: no sense data descriptors follow.
  buf[7] = 0;
  return 8;
}

/**
 * Put PROGRESS INDICATION sense-key specific information (SPC-4 4.5.2.4.4) into
 * fixed-format sense built by writeFixedSense: the fraction of an operation in progress
 * (FORMAT UNIT, SANITIZE, ...) that is complete, in units of 1/65536.
 */
export function setFixedSenseProgress(buf: Buffer, progress: number): void {
  // Byte 15: SKSV(7) = 1 | reserved(6..0).
  buf[15] = 0x80;
  // Bytes 16-17: PROGRESS INDICATION (numerator over 65536), big endian.
  buf.writeUInt16BE(clampProgress(progress), 16);
}

/** Length of descriptor-format sense with one sense key specific descriptor. */
export const DESCRIPTOR_SENSE_WITH_SKS_LENGTH = 16;

/**
 * Write descriptor-format sense data (SPC-4 4.5.2) with one sense key specific sense
 * data descriptor (SPC-4 4.5.2.4, descriptor type 02h) carrying PROGRESS INDICATION
 * (SPC-4 4.5.2.4.4) into buf[0, 16) and return 16.
 */
export function writeDescriptorSenseWithProgress(buf: Buffer, reason: SenseDetail, progress: number): number {
  writeDescriptorSenseHeader(buf, reason);
  // Byte 7: ADDITIONAL SENSE LENGTH: one 8-byte descriptor follows.
  buf[7] = 8;
  // Descriptor byte 0: DESCRIPTOR TYPE 02h (sense key specific).
  buf[8] = 0x02;
  // Descriptor byte 1: ADDITIONAL LENGTH 06h.
  buf[9] = 0x06;
  // Descriptor bytes 2-3: reserved.
  buf[10] = 0;
  buf[11] = 0;
  // Descriptor byte 4: SKSV(7) = 1 | reserved(6..0); bytes 5-6: PROGRESS INDICATION.
  buf[12] = 0x80;
  buf.writeUInt16BE(clampProgress(progress), 13);
  // Descriptor byte 7: reserved.
  buf[15] = 0;
  return DESCRIPTOR_SENSE_WITH_SKS_LENGTH;
}

function clampProgress(progress: number): number {
  return progress <= 0 ? 0 : progress >= 0xffff ? 0xffff : Math.floor(progress);
}

/**
 * Complete `cmd` with CHECK CONDITION and fixed-format sense for `reason`
 * (SAM-5 5.3.2: sense data is delivered with the status). Does not call `finish()`.
 * Data-in already produced is discarded: SPC-4 says a device server that returns
 * CHECK CONDITION transfers no meaningful parameter data.
 */
export function setCheckCondition(
  cmd: ScsiCommand,
  reason: SenseDetail,
  fieldPointer?: FieldPointer,
  information?: number,
): void {
  cmd.senseLength = writeFixedSense(cmd.sense, reason, fieldPointer, information);
  cmd.status = ScsiStatus.CHECK_CONDITION;
  cmd.dataInLength = 0;
}

/** Field pointer into the CDB: shorthand for the common case. */
export function cdbField(byte: number, bit?: number): FieldPointer {
  return bit === undefined ? { cdb: true, byte } : { cdb: true, byte, bit };
}
