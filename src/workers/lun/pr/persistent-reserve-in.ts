/**
 * PERSISTENT RESERVE IN (SPC-4 6.15), the read side only.
 *
 * Until PERSISTENT RESERVE OUT exists no registration can be made, so the truthful
 * answer is the empty one: PRgeneration 0, no keys, no reservation. REPORT CAPABILITIES
 * and READ FULL STATUS are not offered (they would advertise PR OUT support we do not
 * have) and get INVALID FIELD IN CDB on the service action. The state behind these
 * answers moves to ClusterState with the persistent-reservation work.
 */
import { allocationLength10 } from '../../../shared/scsi/cdb.ts';
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { respondData } from '../../../shared/scsi/cdb.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';

const EMPTY_PARAMETER_DATA = Buffer.alloc(8);

/**
 * READ KEYS (SPC-4 6.15.2) and READ RESERVATION (6.15.3) with nothing registered share
 * one 8-byte shape:
 *   0..3  PRGENERATION     0: no PR OUT has ever changed the state
 *   4..7  ADDITIONAL LENGTH 0: no keys / no reservation descriptor
 */
export function persistentReserveInEmpty(_lu: LogicalUnit, cmd: ScsiCommand): Completion {
  respondData(cmd, EMPTY_PARAMETER_DATA, EMPTY_PARAMETER_DATA.length, allocationLength10(cmd.cdb));
  return Completion.DONE;
}
