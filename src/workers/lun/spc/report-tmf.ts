/**
 * REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (SPC-4 6.37; MAINTENANCE IN 0Dh).
 *
 * The functions are those the iSCSI session worker answers with FUNCTION COMPLETE
 * (src/workers/session/iscsi/connection.ts onTaskManagement): ABORT TASK, ABORT TASK SET,
 * CLEAR TASK SET, LOGICAL UNIT RESET, CLEAR ACA (task-set.ts ACA); QUERY TASK / QUERY TASK SET / QUERY
 * ASYNCHRONOUS EVENT and I_T NEXUS RESET are answered FUNCTION NOT SUPPORTED.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { allocationLength12, respondData } from '../../../shared/scsi/cdb.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from './handler.ts';
import { rejectReservedBits, rejectReservedBytes } from './unit-status.ts';

/**
 * CDB (SPC-4 6.37.1 table 365):
 *   0 A3h | 1 reserved(7..5) SERVICE ACTION 0Dh | 2 REPD(7) reserved(6..0)
 *   3-5 reserved | 6-9 ALLOCATION LENGTH | 10 reserved | 11 CONTROL
 */
export function reportSupportedTmf(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  if (
    rejectReservedBits(cmd, 1, 0xe0) ||
    rejectReservedBits(cmd, 2, 0x7f) ||
    rejectReservedBytes(cmd, 3, 6) ||
    rejectReservedBytes(cmd, 10, 11)
  ) {
    return Completion.DONE;
  }
  const repd = (cmd.cdb[2]! & 0x80) !== 0;
  const buf = lu.scratch;
  const n = repd ? 16 : 4;
  buf.fill(0, 0, n);
  // 0: ATS(7) ATSS(6) CACAS(5) CTSS(4) LURS(3) QTS(2) TRS(1) WAKES(0).
  buf[0] = 0x80 | 0x40 | 0x20 | 0x10 | 0x08;
  // 1: reserved(7..3) QAES(2) QTSS(1) ITNRS(0): none. 2: reserved.
  // 3: ADDITIONAL DATA LENGTH: 0Ch with REPD = 1 (extended format), else 00h.
  buf[3] = repd ? 0x0c : 0x00;
  // Extended (SPC-4 6.37.2 table 367): 4 reserved(7..1) TMFTMOV(0) 0: no timeouts
  // reported; 5 reserved; 6 timeout valid bits 0; 7 reserved; 8-11 LONG and 12-15
  // SHORT TMF TIMEOUT 0.
  respondData(cmd, buf, n, allocationLength12(cmd.cdb));
  return Completion.DONE;
}
