/**
 * SET TARGET PORT GROUPS (SPC-4 6.44; MAINTENANCE OUT, service action 0Ah): explicit
 * asymmetric access state changes (TPGS = 11b in standard INQUIRY).
 *
 *   CDB (table 437): 0 A4h | 1 SERVICE ACTION 0Ah | 2-5 reserved | 6-9 PARAMETER LIST LENGTH
 *                    | 10 reserved | 11 CONTROL
 *   Parameter list (table 438): 0-3 reserved, then set target port group descriptors
 *   (table 439) of 4 bytes: 0 reserved(7..4) ASYMMETRIC ACCESS STATE(3..0) | 1 reserved
 *   | 2-3 TARGET PORT GROUP
 *
 * States that may be set: active/optimized, active/non-optimized, standby, unavailable
 * (transitioning is the device server's own, SPC-4 5.16.2.4.5; LBD and offline are not
 * supported). Each group must be one the LU is exported through. Every descriptor is
 * checked before anything changes, so a bad list changes nothing (INVALID FIELD IN
 * PARAMETER LIST pointing at the descriptor's field).
 *
 * The change is reported as ASYMMETRIC ACCESS STATE CHANGED to every I_T nexus but the
 * issuing one (SPC-4 5.16.2.6). In a cluster the LU's environment carries it to every
 * node (LuEnvironment.setAluaStates), so the state holds cluster-wide.
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { SenseReason, setCheckCondition } from '../../../shared/scsi/sense.ts';
import { AluaState, type AluaStateValue } from '../../../shared/scsi/alua.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBytes } from '../spc/unit-status.ts';

const SETTABLE: ReadonlySet<number> = new Set([AluaState.ACTIVE_OPTIMIZED, AluaState.ACTIVE_NON_OPTIMIZED, AluaState.STANDBY, AluaState.UNAVAILABLE]);

const HEADER = 4;
const DESCRIPTOR = 4;

export function setTargetPortGroups(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBytes(cmd, 2, 6) || rejectReservedBytes(cmd, 10, 11)) return Completion.DONE;
  const length = cdb.readUInt32BE(6);
  cmd.dataOutWanted = length;
  if (length === 0) return Completion.DONE; // SPC-4 6.44: not an error; nothing changes
  if (length < HEADER || (length - HEADER) % DESCRIPTOR !== 0 || cmd.dataOutLength < length) {
    setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
    return Completion.DONE;
  }
  const p = cmd.data;
  const changes: { group: number; state: AluaStateValue }[] = [];
  for (let o = HEADER; o < length; o += DESCRIPTOR) {
    const state = p[o]! & 0x0f;
    if ((p[o]! & 0xf0) !== 0 || p[o + 1] !== 0) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, { cdb: false, byte: (p[o]! & 0xf0) !== 0 ? o : o + 1 });
      return Completion.DONE;
    }
    if (!SETTABLE.has(state)) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, { cdb: false, byte: o, bit: 3 });
      return Completion.DONE;
    }
    const group = p.readUInt16BE(o + 2);
    if (!lu.alua.groups.some((g) => g.id === group)) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, { cdb: false, byte: o + 2 });
      return Completion.DONE;
    }
    changes.push({ group, state: state as AluaStateValue });
  }
  // Here first, so the issuer is excepted from the unit attention; a cluster then carries
  // the same states to every node (and back here, where nothing changes any more).
  lu.alua.table.setExplicit(changes, cmd.nexus);
  const share = lu.env.setAluaStates;
  if (share === undefined) return Completion.DONE;
  share(changes).then(
    () => cmd.finish(),
    () => {
      // Not carried to the other nodes: report it, retryable (README "Safety model").
      setCheckCondition(cmd, SenseReason.LUN_NOT_READY_ALUA_TRANSITION);
      cmd.finish();
    },
  );
  cmd.status = ScsiStatus.GOOD;
  return Completion.PENDING;
}
