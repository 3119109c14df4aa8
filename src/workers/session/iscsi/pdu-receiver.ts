/**
 * Receive side of an iSCSI connection: PDU framing (RFC 7143 11.2) over a TCP byte
 * stream. Bytes arrive in chunks of any size; the state machine collects the BHS, the
 * AHS and header digest, then streams the data segment (with its padding and data
 * digest) straight to wherever the header stage decided it belongs, and resumes a
 * partial read where it stopped. No allocation per PDU or per chunk.
 *
 * Two phases per PDU, as SPDK does: when the header is in, the sink's `onHeader` checks
 * it and routes the data segment with `into()` (a task's slab buffer for immediate data
 * or Data-Out) or `discard()`; by default it lands in the control buffer (login, text,
 * NOP-Out data). When the data segment is in, the sink's `onPdu` acts on the PDU.
 *
 *   BHS ──(AHS or header digest)──> AHS ──> [header stage] ──> DATA ──> PAD ──> DDIGEST
 *    ^                                            │ no data                         │
 *    └──────────────────────── [PDU stage] <──────┴─────────────────────────────────┘
 *
 * A header that fails its digest ends in FAILED instead of the header stage: nothing
 * more is read from the stream.
 */
import { BHS_LENGTH, ahsLength, dataSegmentLength, pad4 } from '../../../shared/iscsi/pdu.ts';
import { crc32c, readDigest } from '../../../shared/iscsi/digest.ts';

const Rx = {
  BHS: 0,
  AHS: 1,
  DATA: 2,
  PAD: 3,
  DDIGEST: 4,
  /** After a header digest error: PDU boundaries are lost, nothing more is read. */
  FAILED: 5,
} as const;

/** What the current PDU's data segment is for, decided in the header stage. */
export const DataRoute = {
  /** Into the control buffer (login, text, NOP-Out ping data). */
  CONTROL: 0,
  /** Immediate data of a SCSI Command, into its task's buffer. */
  SCSI: 1,
  /** Data-Out payload, into its task's buffer. */
  DATA_OUT: 2,
  /** Read and dropped (rejected or stale PDUs). */
  DISCARD: 3,
} as const;

/** The connection's side of the receiver. */
export interface PduSink {
  /** False once the connection is closed: the rest of the chunk is ignored. */
  readonly receiving: boolean;
  /** The header (BHS + AHS) is in and its digest, if any, is good. */
  onHeader(): void;
  /** The header digest does not match (RFC 7143 7.8). */
  onHeaderDigestError(): void;
  /** The whole PDU is in; `dataDigestOk` is false on a data digest mismatch. */
  onPdu(dataDigestOk: boolean): void;
}

const EMPTY = Buffer.alloc(0);

export class PduReceiver {
  private readonly sink: PduSink;
  private state: number = Rx.BHS;
  /** The current PDU's header: BHS, up to 1020 bytes of AHS, header digest. */
  readonly hdr = Buffer.alloc(BHS_LENGTH + 255 * 4 + 4);
  private hdrHave = 0;
  private hdrNeed = BHS_LENGTH;
  /** Digests negotiated for this connection (RFC 7143 13.1; on from full feature phase). */
  headerDigest = false;
  dataDigest = false;
  /** DataSegmentLength of the current PDU. */
  dsl = 0;
  private dataHave = 0;
  private padNeed = 0;
  private dataCrc = 0;
  private readonly ddBuf = Buffer.alloc(4);
  private ddHave = 0;
  /** Where the current data segment goes (DataRoute). */
  route: number = DataRoute.CONTROL;
  private dst: Buffer = EMPTY;
  private dstOff = 0;
  /** Control data buffer; sized by the connection to the largest data segment it accepts. */
  ctrl: Buffer;

  constructor(sink: PduSink, ctrlBytes: number) {
    this.sink = sink;
    this.ctrl = Buffer.alloc(ctrlBytes);
  }

  /** Route the current data segment into buf[offset...] (header stage only). */
  into(route: number, buf: Buffer, offset: number): void {
    this.route = route;
    this.dst = buf;
    this.dstOff = offset;
  }

  /** Read the current data segment and drop it (header stage only). */
  discard(): void {
    this.route = DataRoute.DISCARD;
  }

  /**
   * Feed chunk[0, len) (a socket's reusable receive buffer holds more than was read);
   * calls back into the sink at each header and PDU end. Every byte is copied out before
   * this returns, so the caller may reuse the buffer at once.
   */
  feed(chunk: Buffer, len: number = chunk.length): void {
    let pos = 0;
    while (pos < len && this.sink.receiving && this.state !== Rx.FAILED) {
      switch (this.state) {
        case Rx.BHS:
        case Rx.AHS: {
          const n = Math.min(this.hdrNeed - this.hdrHave, len - pos);
          chunk.copy(this.hdr, this.hdrHave, pos, pos + n);
          this.hdrHave += n;
          pos += n;
          if (this.hdrHave < this.hdrNeed) break;
          if (this.state === Rx.BHS) {
            const extra = ahsLength(this.hdr, 0) + (this.headerDigest ? 4 : 0);
            if (extra > 0) {
              this.state = Rx.AHS;
              this.hdrNeed = BHS_LENGTH + extra;
              break;
            }
          }
          this.headerComplete();
          break;
        }
        case Rx.DATA: {
          const n = Math.min(this.dsl - this.dataHave, len - pos);
          if (this.dataDigest) this.dataCrc = crc32c(chunk, pos, pos + n, this.dataCrc);
          if (this.route !== DataRoute.DISCARD)
            chunk.copy(this.dst, this.dstOff + this.dataHave, pos, pos + n);
          this.dataHave += n;
          pos += n;
          if (this.dataHave === this.dsl) this.afterData();
          break;
        }
        case Rx.PAD: {
          const n = Math.min(this.padNeed, len - pos);
          if (this.dataDigest) this.dataCrc = crc32c(chunk, pos, pos + n, this.dataCrc);
          this.padNeed -= n;
          pos += n;
          if (this.padNeed === 0) this.afterPad();
          break;
        }
        case Rx.DDIGEST: {
          const n = Math.min(4 - this.ddHave, len - pos);
          chunk.copy(this.ddBuf, this.ddHave, pos, pos + n);
          this.ddHave += n;
          pos += n;
          if (this.ddHave === 4) this.pduComplete(readDigest(this.ddBuf, 0) === this.dataCrc);
          break;
        }
      }
    }
  }

  private headerComplete(): void {
    const h = this.hdr;
    const ahs = ahsLength(h, 0);
    if (this.headerDigest && readDigest(h, BHS_LENGTH + ahs) !== crc32c(h, 0, BHS_LENGTH + ahs)) {
      // RFC 7143 7.8: the lengths in a header that fails its digest cannot be trusted,
      // so the stream cannot be resynchronised; stop here whatever the sink does (left
      // in the header state, the same header would be reported again and again).
      this.state = Rx.FAILED;
      this.sink.onHeaderDigestError();
      return;
    }
    this.dsl = dataSegmentLength(h, 0);
    this.dataHave = 0;
    this.dataCrc = 0;
    this.into(DataRoute.CONTROL, this.ctrl, 0);
    this.sink.onHeader();
    if (!this.sink.receiving) return;
    if (this.dsl > 0) {
      this.state = Rx.DATA;
    } else {
      this.pduComplete(true);
    }
  }

  private afterData(): void {
    this.padNeed = pad4(this.dsl);
    if (this.padNeed > 0) this.state = Rx.PAD;
    else this.afterPad();
  }

  private afterPad(): void {
    if (this.dataDigest) {
      this.ddHave = 0;
      this.state = Rx.DDIGEST;
    } else {
      this.pduComplete(true);
    }
  }

  private pduComplete(dataDigestOk: boolean): void {
    this.state = Rx.BHS;
    this.hdrHave = 0;
    this.hdrNeed = BHS_LENGTH;
    this.sink.onPdu(dataDigestOk);
  }
}
