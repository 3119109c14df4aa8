/**
 * iSCSI TransportIDs (SPC-4 7.6.4.6, table 417-419): how PERSISTENT RESERVE OUT names
 * other initiator ports (SPEC_I_PT, REGISTER AND MOVE) and READ FULL STATUS reports them.
 *
 *   byte 0   FORMAT CODE (7..6) | reserved (5..4) | PROTOCOL IDENTIFIER (3..0) = 5h (iSCSI)
 *   byte 1   reserved
 *   2..3     ADDITIONAL LENGTH (n - 3): at least 20, a multiple of 4
 *   4..n     format 00b: ISCSI NAME, null terminated, zero padded
 *            format 01b: ISCSI NAME ",i,0x" ISID (12 hex digits), null terminated, zero padded
 *
 * Format 00b names every initiator port of the iSCSI initiator device; 01b one port.
 */
import type { PrTransportId } from '../../../shared/state/cluster-state.ts';

/** SPC-4 7.6.1 table 408: PROTOCOL IDENTIFIER of iSCSI. */
export const PROTOCOL_ISCSI = 0x5;
const FORMAT_NAME = 0x00;
const FORMAT_PORT = 0x40;
const SEPARATOR = ',i,0x';
/** Smallest TransportID (SPC-4 7.6.4.1: at least 24 bytes). */
export const MIN_TRANSPORT_ID = 24;

/** A parse result: the TransportID and its length, or the byte (in `p`) that is wrong. */
export type ParsedTransportId = { readonly tid: PrTransportId; readonly length: number } | { readonly badByte: number; readonly badBit?: number };

/** Parse the TransportID at p[offset, end). */
export function parseTransportId(p: Buffer, offset: number, end: number): ParsedTransportId {
  if (end - offset < MIN_TRANSPORT_ID) return { badByte: offset };
  const b0 = p[offset]!;
  if ((b0 & 0x0f) !== PROTOCOL_ISCSI) return { badByte: offset, badBit: 3 };
  const format = b0 & 0xf0;
  if (format !== FORMAT_NAME && format !== FORMAT_PORT) return { badByte: offset, badBit: 7 };
  const additional = p.readUInt16BE(offset + 2);
  if (additional < 20 || additional % 4 !== 0 || offset + 4 + additional > end) return { badByte: offset + 2, badBit: 7 };
  const body = p.subarray(offset + 4, offset + 4 + additional);
  const nul = body.indexOf(0);
  if (nul <= 0) return { badByte: offset + 4 };
  const text = body.toString('utf8', 0, nul);
  let initiatorName = text;
  let isid: string | null = null;
  if (format === FORMAT_PORT) {
    const at = text.toLowerCase().lastIndexOf(SEPARATOR);
    const hex = at < 0 ? '' : text.slice(at + SEPARATOR.length);
    if (at <= 0 || !/^[0-9a-fA-F]{12}$/.test(hex)) return { badByte: offset + 4 };
    initiatorName = text.slice(0, at);
    isid = hex.toLowerCase();
  }
  return { tid: { initiatorName, isid, offset }, length: 4 + additional };
}

/** Bytes the TransportID of (name, isid) takes. */
export function transportIdLength(initiatorName: string, isid: string | null): number {
  const text = isid === null ? initiatorName : `${initiatorName}${SEPARATOR}${isid}`;
  const body = Buffer.byteLength(text, 'utf8') + 1; // null terminator
  return 4 + Math.max(20, (body + 3) & ~3);
}

/** Write the TransportID of (name, isid) at buf[offset]; returns its length. */
export function writeTransportId(buf: Buffer, offset: number, initiatorName: string, isid: string | null): number {
  const len = transportIdLength(initiatorName, isid);
  buf.fill(0, offset, offset + len);
  buf[offset] = (isid === null ? FORMAT_NAME : FORMAT_PORT) | PROTOCOL_ISCSI; // FORMAT CODE | PROTOCOL IDENTIFIER
  buf.writeUInt16BE(len - 4, offset + 2); // ADDITIONAL LENGTH
  buf.write(isid === null ? initiatorName : `${initiatorName}${SEPARATOR}${isid}`, offset + 4, 'utf8');
  return len;
}
