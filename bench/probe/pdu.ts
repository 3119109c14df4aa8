/**
 * PDU and CDB builders of the latency probe's initiator (RFC 7143 11, SPC-4, SBC-4): the
 * fields that stay the same for a queue slot are written once; the client patches the
 * rest per command. Pure functions on caller-owned buffers.
 */

export const BHS = 48;
export const NO_TAG = 0xffffffff;

/** Opcodes (RFC 7143 11.1.1). */
export const Op = {
  NOP_OUT: 0x00,
  SCSI_COMMAND: 0x01,
  LOGIN_REQUEST: 0x03,
  DATA_OUT: 0x05,
  LOGOUT_REQUEST: 0x06,
  NOP_IN: 0x20,
  SCSI_RESPONSE: 0x21,
  LOGIN_RESPONSE: 0x23,
  DATA_IN: 0x25,
  LOGOUT_RESPONSE: 0x26,
  R2T: 0x31,
  ASYNC_MESSAGE: 0x32,
  REJECT: 0x3f,
} as const;

/** Serial number arithmetic on 32-bit sequence numbers (RFC 1982, RFC 7143 4.2.2.1). */
export function snGreater(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/** The 64-bit reservation key of the n-th REGISTER: "SPIN" in the high word, never zero. */
export function prKey(n: number): { hi: number; lo: number } {
  return { hi: 0x5350494e, lo: (n + 1) >>> 0 };
}

/**
 * Fills the SCSI Command BHS (RFC 7143 11.3) fields that stay the same for a slot.
 * Patched per command: ITT (16), CmdSN (24), ExpStatSN (28), CDB bytes.
 */
export function commandBhs(
  b: Buffer,
  at: number,
  lun: number,
  write: boolean,
  edtl: number,
  dataLen: number,
): void {
  b[at] = Op.SCSI_COMMAND;
  b[at + 1] = 0x80 | (write ? 0x20 : 0x40) | 0x01; // F, W or R, ATTR = SIMPLE
  b[at + 5] = (dataLen >>> 16) & 0xff; // DataSegmentLength: the immediate data
  b[at + 6] = (dataLen >>> 8) & 0xff;
  b[at + 7] = dataLen & 0xff;
  encodeLun(b, at + 8, lun);
  b.writeUInt32BE(edtl, at + 20); // Expected Data Transfer Length
}

/** Single-level LUN (SAM-5 4.7.3): peripheral addressing below 256, flat space above. */
export function encodeLun(b: Buffer, at: number, lun: number): void {
  b.fill(0, at, at + 8);
  if (lun < 256) b[at + 1] = lun;
  else {
    b[at] = 0x40 | ((lun >> 8) & 0x3f);
    b[at + 1] = lun & 0xff;
  }
}

/** Data-Out BHS (RFC 7143 11.7); ExpStatSN (28) patched per command. */
export function dataOutBhs(
  b: Buffer,
  at: number,
  lun: number,
  itt: number,
  ttt: number,
  dataSN: number,
  offset: number,
  len: number,
  final: boolean,
): void {
  b.fill(0, at, at + BHS);
  b[at] = Op.DATA_OUT;
  b[at + 1] = final ? 0x80 : 0;
  b[at + 5] = (len >>> 16) & 0xff;
  b[at + 6] = (len >>> 8) & 0xff;
  b[at + 7] = len & 0xff;
  encodeLun(b, at + 8, lun);
  b.writeUInt32BE(itt >>> 0, at + 16);
  b.writeUInt32BE(ttt >>> 0, at + 20);
  b.writeUInt32BE(dataSN >>> 0, at + 36);
  b.writeUInt32BE(offset >>> 0, at + 40);
}

/** PERSISTENT RESERVE OUT CDB (SPC-4 6.16.1): REGISTER, parameter list length 24. */
export function prOutCdb(): Uint8Array {
  const cdb = new Uint8Array(10);
  cdb[0] = 0x5f;
  cdb[1] = 0x00; // SERVICE ACTION: REGISTER
  cdb[8] = 24; // PARAMETER LIST LENGTH (bytes 5-8)
  return cdb;
}
