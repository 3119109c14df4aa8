/**
 * iSCSI PDUs as bytes on the wire, for tests below the socket: framing an initiator PDU
 * (BHS, AHS, header digest, data, padding, data digest; digests can be corrupted on
 * purpose) and decoding the target's output stream back into PDUs, checking every digest
 * and every padding byte. Written from RFC 7143 11.2 independently of the target's own
 * receiver (src/workers/session/iscsi/pdu-receiver.ts), so the two check each other.
 */
import { BHS_LENGTH, ahsLength, dataSegmentLength, opcodeOf, pad4, u32 } from '../../src/shared/iscsi/pdu.ts';
import { crc32c, readDigest, writeDigest } from '../../src/shared/iscsi/digest.ts';

export interface FrameOptions {
  /** Additional Header Segment bytes (a multiple of 4); TotalAHSLength is set from it. */
  ahs?: Buffer;
  headerDigest?: boolean;
  dataDigest?: boolean;
  /** Flip a bit of the header / data digest. */
  corruptHeaderDigest?: boolean;
  corruptDataDigest?: boolean;
  /** Keep the DataSegmentLength already in the BHS instead of the data's length. */
  keepDsl?: boolean;
}

/** The bytes of one PDU as an initiator sends it. */
export function framePdu(bhs: Buffer, data: Buffer = Buffer.alloc(0), o: FrameOptions = {}): Buffer {
  const h = Buffer.from(bhs);
  const ahs = o.ahs ?? Buffer.alloc(0);
  if (ahs.length % 4 !== 0 || ahs.length > 255 * 4)
    throw new RangeError('AHS must be 4-byte words, at most 255');
  h[4] = ahs.length / 4;
  if (!o.keepDsl) {
    h[5] = data.length >>> 16;
    h[6] = data.length >>> 8;
    h[7] = data.length;
  }
  const parts: Buffer[] = [h, ahs];
  if (o.headerDigest) {
    const d = Buffer.alloc(4);
    let crc = crc32c(Buffer.concat([h, ahs]));
    if (o.corruptHeaderDigest) crc = (crc ^ 1) >>> 0;
    writeDigest(d, 0, crc);
    parts.push(d);
  }
  if (data.length > 0) {
    const padded = Buffer.alloc(data.length + pad4(data.length));
    data.copy(padded);
    parts.push(padded);
    if (o.dataDigest) {
      const d = Buffer.alloc(4);
      let crc = crc32c(padded);
      if (o.corruptDataDigest) crc = (crc ^ 1) >>> 0;
      writeDigest(d, 0, crc);
      parts.push(d);
    }
  }
  return Buffer.concat(parts);
}

/** A target PDU as decoded from the wire, with the fields the data path tests read. */
export class WirePdu {
  readonly bhs: Buffer;
  readonly ahs: Buffer;
  readonly data: Buffer;

  constructor(bhs: Buffer, ahs: Buffer, data: Buffer) {
    this.bhs = bhs;
    this.ahs = ahs;
    this.data = data;
  }

  get opcode(): number {
    return opcodeOf(this.bhs, 0);
  }
  get flags(): number {
    return this.bhs[1]!;
  }
  /** F bit. */
  get final(): boolean {
    return (this.bhs[1]! & 0x80) !== 0;
  }
  /** Data-In S bit: status is carried (RFC 7143 11.7.1). */
  get hasStatus(): boolean {
    return (this.bhs[1]! & 0x01) !== 0;
  }
  /** Residual overflow (O) and underflow (U) bits of SCSI Response / Data-In (11.4.5). */
  get overflow(): boolean {
    return (this.bhs[1]! & 0x04) !== 0;
  }
  get underflow(): boolean {
    return (this.bhs[1]! & 0x02) !== 0;
  }
  get itt(): number {
    return u32(this.bhs, 16);
  }
  /** Bytes 20..23: Target Transfer Tag (R2T, Data-In, NOP-In). */
  get ttt(): number {
    return u32(this.bhs, 20);
  }
  get statSN(): number {
    return u32(this.bhs, 24);
  }
  get expCmdSN(): number {
    return u32(this.bhs, 28);
  }
  get maxCmdSN(): number {
    return u32(this.bhs, 32);
  }
  /** SCSI Response byte 2 (iSCSI response), TMF response, Reject reason. */
  get response(): number {
    return this.bhs[2]!;
  }
  get rejectReason(): number {
    return this.bhs[2]!;
  }
  /** SCSI status (SCSI Response, Data-In with S). */
  get status(): number {
    return this.bhs[3]!;
  }
  /** Data-In DataSN, R2T R2TSN, SCSI Response ExpDataSN (bytes 36..39). */
  get dataSN(): number {
    return u32(this.bhs, 36);
  }
  get r2tSN(): number {
    return u32(this.bhs, 36);
  }
  get expDataSN(): number {
    return u32(this.bhs, 36);
  }
  /** Data-In / R2T Buffer Offset. */
  get bufferOffset(): number {
    return u32(this.bhs, 40);
  }
  /** SCSI Response / Data-In Residual Count; R2T Desired Data Transfer Length (bytes 44..47). */
  get residual(): number {
    return u32(this.bhs, 44);
  }
  get desiredLength(): number {
    return u32(this.bhs, 44);
  }
  /** Sense data of a SCSI Response (RFC 7143 11.4.7.2: SenseLength, then the bytes). */
  get sense(): Buffer {
    if (this.data.length < 2) return Buffer.alloc(0);
    return this.data.subarray(2, 2 + this.data.readUInt16BE(0));
  }
}

/**
 * Reassembles the target's byte stream into PDUs. Throws on a bad digest or non-zero
 * padding: the target must never send either.
 */
export class PduStreamDecoder {
  headerDigest = false;
  dataDigest = false;
  private buf = Buffer.alloc(0);

  push(bytes: Buffer): void {
    this.buf = this.buf.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.buf, bytes]);
  }

  /** Bytes received that do not yet form a whole PDU. */
  get pending(): number {
    return this.buf.length;
  }

  /** Every whole PDU received so far. */
  drain(): WirePdu[] {
    const out: WirePdu[] = [];
    for (;;) {
      const p = this.next();
      if (p === null) return out;
      out.push(p);
    }
  }

  private next(): WirePdu | null {
    const b = this.buf;
    if (b.length < BHS_LENGTH) return null;
    const ahs = ahsLength(b, 0);
    const hd = this.headerDigest ? 4 : 0;
    const dsl = dataSegmentLength(b, 0);
    const pad = pad4(dsl);
    const dd = this.dataDigest && dsl > 0 ? 4 : 0;
    const total = BHS_LENGTH + ahs + hd + dsl + pad + dd;
    if (b.length < total) return null;
    const op = opcodeOf(b, 0).toString(16);
    if (hd && readDigest(b, BHS_LENGTH + ahs) !== crc32c(b, 0, BHS_LENGTH + ahs)) {
      throw new Error(`target PDU 0x${op} has a bad header digest`);
    }
    const dataStart = BHS_LENGTH + ahs + hd;
    for (let i = 0; i < pad; i++) {
      if (b[dataStart + dsl + i] !== 0) throw new Error(`target PDU 0x${op} has non-zero padding`);
    }
    if (dd && readDigest(b, dataStart + dsl + pad) !== crc32c(b, dataStart, dataStart + dsl + pad)) {
      throw new Error(`target PDU 0x${op} has a bad data digest`);
    }
    const pdu = new WirePdu(
      Buffer.from(b.subarray(0, BHS_LENGTH)),
      Buffer.from(b.subarray(BHS_LENGTH, BHS_LENGTH + ahs)),
      Buffer.from(b.subarray(dataStart, dataStart + dsl)),
    );
    this.buf = b.subarray(total);
    return pdu;
  }
}
