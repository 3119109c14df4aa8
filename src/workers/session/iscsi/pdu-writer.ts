/**
 * Transmit side of an iSCSI connection.
 *
 * Every target PDU's BHS is built in place in a slot of a per-connection arena; small
 * data segments (sense, short replies) are built inline behind it, large ones (Data-In
 * payload) are written straight from the slab view. A slot may be reused only after the
 * socket has flushed the PDU, which we learn from one write callback per PDU (bound
 * once, so no closure per PDU): callbacks run in write order, so a counter of flushed
 * PDUs says exactly which slots are free. Tasks whose data a PDU references are
 * released the same way.
 *
 * Slot layout (SLOT_BYTES):
 *   0        BHS (48)
 *   48       header digest (4, when negotiated)
 *   48|52    inline data segment + padding + data digest (up to INLINE_MAX data bytes)
 *   180..184 zero padding for an external data segment, 184..188 its data digest
 *
 * All PDUs written in one turn of the event loop go out as one writev: the socket is
 * corked at the first send and uncorked in a microtask.
 */
import { BHS_LENGTH, pad4 } from '../../../shared/iscsi/pdu.ts';
import { crc32c, writeDigest } from '../../../shared/iscsi/digest.ts';
import type { TransportOutput } from './transport.ts';

export const SLOT_BYTES = 192;
const TRAILER_DIGEST = 184;
/** Largest data segment that can be sent inline in a slot. */
export const INLINE_MAX = 120;
const ZERO4 = Buffer.alloc(4);

export interface Releasable {
  releaseAfterFlush(): void;
}

export class PduWriter {
  private readonly socket: TransportOutput;
  private readonly slots: number;
  private readonly arena: Buffer;
  private headerDigest = false;
  private dataDigest = false;
  private hdrViews: Buffer[] = [];
  private trailerViews: Buffer[][] = [];
  /** PDUs handed to the socket / PDUs the socket reported flushed. */
  private sent = 0;
  private flushed = 0;
  /** Release queue: (PDU sequence number, owner) pairs, in order. */
  private readonly relSeq: number[] = [];
  private readonly relObj: Releasable[] = [];
  private relHead = 0;
  private corked = false;
  // Where the current PDU is being built.
  buf: Buffer;
  off = 0;
  private curSlot = -1;
  private readonly onFlushed: () => void;
  private readonly uncorkFn: () => void;
  /**
   * Called with true after every write that leaves the socket's buffer over its
   * high-water mark (so many times in a row; the socket's 'drain' says when it is over).
   */
  onBackpressure: ((on: boolean) => void) | null = null;

  constructor(socket: TransportOutput, slots = 1024) {
    this.socket = socket;
    this.slots = slots;
    this.arena = Buffer.alloc(slots * SLOT_BYTES);
    this.buf = this.arena;
    this.onFlushed = () => {
      this.flushed++;
      while (this.relHead < this.relSeq.length && this.relSeq[this.relHead]! < this.flushed) {
        const o = this.relObj[this.relHead]!;
        this.relHead++;
        o.releaseAfterFlush();
      }
      if (this.relHead === this.relSeq.length && this.relHead > 0) {
        this.relSeq.length = 0;
        this.relObj.length = 0;
        this.relHead = 0;
      }
    };
    this.uncorkFn = () => {
      this.corked = false;
      this.socket.uncork();
    };
    this.configure(false, false);
  }

  /** Digests take effect from the first PDU after login completes (RFC 7143 13.1). */
  configure(headerDigest: boolean, dataDigest: boolean): void {
    this.headerDigest = headerDigest;
    this.dataDigest = dataDigest;
    const hlen = BHS_LENGTH + (headerDigest ? 4 : 0);
    this.hdrViews = new Array(this.slots);
    this.trailerViews = new Array(this.slots);
    for (let i = 0; i < this.slots; i++) {
      const base = i * SLOT_BYTES;
      this.hdrViews[i] = this.arena.subarray(base, base + hlen);
      const tv: Buffer[] = [];
      for (let p = 0; p < 4; p++) {
        tv.push(this.arena.subarray(base + TRAILER_DIGEST - p, base + TRAILER_DIGEST + (dataDigest ? 4 : 0)));
      }
      this.trailerViews[i] = tv;
    }
  }

  get digests(): { header: boolean; data: boolean } {
    return { header: this.headerDigest, data: this.dataDigest };
  }

  /** Start a PDU: afterwards build the BHS at (this.buf, this.off). */
  begin(): void {
    if (this.sent - this.flushed < this.slots) {
      this.curSlot = this.sent % this.slots;
      this.buf = this.arena;
      this.off = this.curSlot * SLOT_BYTES;
    } else {
      // Arena exhausted (the peer is not reading): a one-off buffer keeps us correct.
      this.curSlot = -1;
      this.buf = Buffer.alloc(SLOT_BYTES);
      this.off = 0;
    }
  }

  /** Offset in this.buf where an inline data segment starts. */
  get inlineOffset(): number {
    return this.off + BHS_LENGTH + (this.headerDigest ? 4 : 0);
  }

  private cork(): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      queueMicrotask(this.uncorkFn);
    }
  }

  private sealHeader(): void {
    if (this.headerDigest) {
      writeDigest(this.buf, this.off + BHS_LENGTH, crc32c(this.buf, this.off, this.off + BHS_LENGTH));
    }
  }

  /** Send the PDU begun last, with `dataLength` bytes already written inline. */
  sendInline(dataLength: number, release: Releasable | null = null): void {
    this.sealHeader();
    let end = this.inlineOffset;
    if (dataLength > 0) {
      const dataStart = end;
      end += dataLength;
      const p = pad4(dataLength);
      this.buf.fill(0, end, end + p);
      end += p;
      if (this.dataDigest) {
        writeDigest(this.buf, end, crc32c(this.buf, dataStart, end));
        end += 4;
      }
    }
    this.cork();
    const view =
      dataLength === 0 && this.curSlot >= 0 ? this.hdrViews[this.curSlot]! : this.buf.subarray(this.off, end);
    this.write(view, release);
  }

  /** Send the PDU begun last with an external data segment data[start, start+length). */
  sendWithData(data: Buffer, start: number, length: number, release: Releasable | null = null): void {
    this.sealHeader();
    this.cork();
    const hdr = this.curSlot >= 0 ? this.hdrViews[this.curSlot]! : this.buf.subarray(0, this.inlineOffset);
    this.socket.write(hdr);
    const seg = start === 0 && length === data.length ? data : data.subarray(start, start + length);
    const p = pad4(length);
    if (!this.dataDigest && p === 0) {
      this.write(seg, release);
      return;
    }
    this.socket.write(seg);
    let trailer: Buffer;
    if (this.curSlot >= 0) {
      trailer = this.trailerViews[this.curSlot]![p]!;
      if (this.dataDigest) {
        let crc = crc32c(seg);
        if (p) crc = crc32c(ZERO4, 0, p, crc);
        writeDigest(this.arena, this.curSlot * SLOT_BYTES + TRAILER_DIGEST, crc);
      }
    } else {
      trailer = Buffer.alloc(p + (this.dataDigest ? 4 : 0));
      if (this.dataDigest) {
        let crc = crc32c(seg);
        if (p) crc = crc32c(ZERO4, 0, p, crc);
        writeDigest(trailer, p, crc);
      }
    }
    this.write(trailer, release);
  }

  private write(chunk: Buffer, release: Releasable | null): void {
    const seq = this.sent++;
    if (release) {
      this.relSeq.push(seq);
      this.relObj.push(release);
    }
    if (!this.socket.write(chunk, this.onFlushed) && this.onBackpressure) this.onBackpressure(true);
  }

  /** PDUs not yet flushed by the socket. */
  get unflushed(): number {
    return this.sent - this.flushed;
  }
}
