/**
 * Persistent reservation CDBs and parameter lists for tests (SPC-4 6.15, 6.16).
 */

/**
 * PERSISTENT RESERVE OUT CDB (SPC-4 6.16.1 table 212), 10 bytes:
 *   0 5Fh | 1 reserved(7..5) SERVICE ACTION(4..0) | 2 SCOPE(7..4)=0 LU_SCOPE, TYPE(3..0)
 *   3-4 reserved | 5-8 PARAMETER LIST LENGTH | 9 CONTROL
 */
export function proutCdb(serviceAction: number, type: number, paramLength = 24): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x5f;
  c[1] = serviceAction & 0x1f;
  c[2] = (0x0 << 4) | (type & 0x0f);
  c.writeUInt32BE(paramLength, 5);
  return c;
}

export interface ProutFields {
  /** RESERVATION KEY (bytes 0-7). */
  key?: bigint;
  /** SERVICE ACTION RESERVATION KEY (bytes 8-15). */
  saKey?: bigint;
  aptpl?: boolean;
  allTgPt?: boolean;
}

/**
 * PR OUT basic parameter list (SPC-4 6.16.3 table 219), 24 bytes:
 *   0-7 RESERVATION KEY | 8-15 SERVICE ACTION RESERVATION KEY | 16-19 obsolete
 *   20 reserved(7..4) SPEC_I_PT(3) ALL_TG_PT(2) reserved(1) APTPL(0) | 21 reserved | 22-23 obsolete
 */
export function proutParams(f: ProutFields): Buffer {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(f.key ?? 0n, 0);
  p.writeBigUInt64BE(f.saKey ?? 0n, 8);
  p[20] = (f.allTgPt ? 0x04 : 0) | (f.aptpl ? 0x01 : 0);
  return p;
}

/**
 * PERSISTENT RESERVE IN CDB (SPC-4 6.15.1 table 198), 10 bytes:
 *   0 5Eh | 1 reserved(7..5) SERVICE ACTION(4..0) | 2-6 reserved | 7-8 ALLOCATION LENGTH | 9 CONTROL
 */
export function prinCdb(serviceAction: number, alloc = 8192): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x5e;
  c[1] = serviceAction & 0x1f;
  c.writeUInt16BE(alloc, 7);
  return c;
}

