/**
 * A logical unit's identity, derived from the cluster id and the device name only, so
 * every node of a cluster reports the same LU (and multipath merges its paths), and the
 * supervisor can name LUs by the same key as the LUN workers (cluster state in Redis is
 * keyed by the NAA designator).
 */
import { createHash } from 'node:crypto';

/**
 * IEEE COMPANY ID used in the NAA-6 designator (SPC-4 7.8.6.6.4).
 *
 * 0x025350 ("\x02SP") is not an IEEE-registered OUI. Its first octet 0x02 has the
 * U/L bit set and the SLAP quadrant bits (Y, Z) zero: the "Administratively Assigned
 * Identifier" quadrant of IEEE 802c, reserved for local administration, so it cannot
 * collide with a vendor's registered OUI. A deployment that owns an OUI can replace it.
 */
export const SPINDLE_IEEE_COMPANY_ID = 0x025350;

/** sha256(clusterId + '/' + device name): the seed of every identifier of the LU. */
export function identityDigest(clusterId: string, deviceName: string): Buffer {
  return createHash('sha256').update(`${clusterId}/${deviceName}`).digest();
}

/**
 * NAA IEEE Registered Extended designator (SPC-4 7.8.6.6.4, figure 172), 16 bytes:
 *
 *   byte 0      1      2      3            4..7         8..15
 *   NAA(6h)|COMPANY ID (24 bits)|VENDOR SPECIFIC ID (36 bits)|VENDOR SPECIFIC ID EXTENSION (64)
 *
 * The 100 vendor-specific bits come from `digest`.
 */
export function naa6Designator(companyId: number, digest: Buffer): Buffer {
  const d = Buffer.alloc(16);
  d[0] = 0x60 | ((companyId >> 20) & 0x0f); // NAA 6h | COMPANY ID bits 23..20
  d[1] = (companyId >> 12) & 0xff; // COMPANY ID bits 19..12
  d[2] = (companyId >> 4) & 0xff; // COMPANY ID bits 11..4
  d[3] = ((companyId & 0x0f) << 4) | (digest[0]! & 0x0f); // COMPANY ID bits 3..0 | VSID 35..32
  digest.copy(d, 4, 1, 5); // VENDOR SPECIFIC IDENTIFIER bits 31..0
  digest.copy(d, 8, 5, 13); // VENDOR SPECIFIC IDENTIFIER EXTENSION
  return d;
}


/** The LU's key in cluster state: its NAA designator, hex. */
export function luKey(clusterId: string, deviceName: string): string {
  return naa6Designator(SPINDLE_IEEE_COMPANY_ID, identityDigest(clusterId, deviceName)).toString('hex');
}
