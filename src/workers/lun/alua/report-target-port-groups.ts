/**
 * REPORT TARGET PORT GROUPS (SPC-4 6.36; MAINTENANCE IN, service action 0Ah): every
 * target port group through which the LU is exported, its asymmetric access state and
 * the relative target port identifiers in it (alua/port-groups.ts).
 *
 * Parameter data (SPC-4 6.36.2):
 *
 *   length only header (PARAMETER DATA FORMAT 000b)   extended header (001b)
 *   0-3  RETURN DATA LENGTH                            0-3  RETURN DATA LENGTH
 *   4..  target port group descriptors                 4    FORMAT TYPE 001b (bits 6..4)
 *                                                      5    IMPLICIT TRANSITION TIME
 *                                                      6-7  reserved
 *                                                      8..  target port group descriptors
 *
 * RETURN DATA LENGTH counts the bytes after byte 3 (with the extended header, bytes 4-7
 * too), the way initiators (Linux scsi_dh_alua, sg_rtpg) walk the list.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength12, respondData } from '../../../shared/scsi/cdb.ts';
import { SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBytes } from '../spc/unit-status.ts';
import type { PortGroup } from './port-groups.ts';

/** PARAMETER DATA FORMAT (CDB byte 1 bits 7..5). */
const ParameterDataFormat = {
  LENGTH_ONLY: 0b000,
  EXTENDED: 0b001,
} as const;

/**
 * Supported states (descriptor byte 1): T_SUP(7) 1 | O_SUP(6) 0 | reserved(5) |
 * LBD_SUP(4) 0 | U_SUP(3) 1 | S_SUP(2) 1 | AN_SUP(1) 1 | AO_SUP(0) 1.
 */
const SUPPORTED_STATES = 0x80 | 0x08 | 0x04 | 0x02 | 0x01;

/**
 * CDB (SPC-4 6.36.1 table 357):
 *   0 A3h | 1 PARAMETER DATA FORMAT(7..5) SERVICE ACTION 0Ah(4..0) | 2-5 reserved
 *   6-9 ALLOCATION LENGTH | 10 reserved | 11 CONTROL
 */
export function reportTargetPortGroups(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  const format = cdb[1]! >> 5;
  if (format !== ParameterDataFormat.LENGTH_ONLY && format !== ParameterDataFormat.EXTENDED) {
    setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(1, 7));
    return Completion.DONE;
  }
  if (rejectReservedBytes(cmd, 2, 6) || rejectReservedBytes(cmd, 10, 11)) return Completion.DONE;
  const buf = lu.scratch;
  const extended = format === ParameterDataFormat.EXTENDED;
  const n = buildTargetPortGroups(buf, lu.alua.groups, extended, lu.alua.table.implicitTransitionSec);
  respondData(cmd, buf, n, allocationLength12(cdb));
  return Completion.DONE;
}

/** The parameter data into buf; returns its length. Exported for tests. */
export function buildTargetPortGroups(
  buf: Buffer,
  groups: readonly PortGroup[],
  extended: boolean,
  implicitTransitionSec: number,
): number {
  let p = 4;
  if (extended) {
    buf[4] = ParameterDataFormat.EXTENDED << 4; // reserved(7) | FORMAT TYPE 001b (6..4) | reserved(3..0)
    buf[5] = implicitTransitionSec; // IMPLICIT TRANSITION TIME, seconds (0: not specified)
    buf[6] = 0; // reserved
    buf[7] = 0; // reserved
    p = 8;
  }
  for (const g of groups) {
    // Target port group descriptor (SPC-4 6.36.2 table 358):
    buf[p] = g.state & 0x0f; // PREF(7) 0 | reserved(6..4) | ASYMMETRIC ACCESS STATE(3..0)
    buf[p + 1] = SUPPORTED_STATES; // T_SUP | O_SUP | rsvd | LBD_SUP | U_SUP | S_SUP | AN_SUP | AO_SUP
    buf.writeUInt16BE(g.id, p + 2); // 2-3: TARGET PORT GROUP
    buf[p + 4] = 0; // reserved
    buf[p + 5] = g.statusCode; // STATUS CODE (table 360)
    buf[p + 6] = 0; // vendor specific
    buf[p + 7] = g.relativeTargetPortIds.length; // TARGET PORT COUNT
    p += 8;
    for (const id of g.relativeTargetPortIds) {
      // Target port descriptor (SPC-4 6.36.2 table 361):
      buf.writeUInt16BE(0, p); // 0-1: obsolete
      buf.writeUInt16BE(id, p + 2); // 2-3: RELATIVE TARGET PORT IDENTIFIER
      p += 4;
    }
  }
  buf.writeUInt32BE(p - 4, 0); // 0-3: RETURN DATA LENGTH: bytes after byte 3
  return p;
}
