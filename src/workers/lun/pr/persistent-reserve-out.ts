/**
 * PERSISTENT RESERVE OUT (SPC-4 6.16) and the SPC-2 RESERVE / RELEASE commands
 * (SPC-2 7.21, 7.19; SPC-4 5.14.3 with CRH = 1).
 *
 * The executor checks the CDB and parameter list syntax, builds a PrRequest and runs it
 * as one atomic ClusterState transition (shared/state/pr-transition.ts holds the state
 * rules: RESERVATION CONFLICT, registrations, preemption). Not a hot path: the command
 * completes asynchronously (Completion.PENDING) once the state is durable and the unit
 * attentions are queued (pr/engine.ts).
 *
 * PR OUT CDB (SPC-4 6.16.1 table 212):
 *   0 5Fh | 1 reserved(7..5) SERVICE ACTION(4..0) | 2 SCOPE(7..4) TYPE(3..0)
 *   3-4 reserved | 5-8 PARAMETER LIST LENGTH | 9 CONTROL
 *
 * Parameter list, every service action but REGISTER AND MOVE (SPC-4 6.16.3 table 219):
 *   0-7 RESERVATION KEY | 8-15 SERVICE ACTION RESERVATION KEY | 16-19 obsolete
 *   20 reserved(7..4) SPEC_I_PT(3) ALL_TG_PT(2) reserved(1) APTPL(0) | 21 reserved
 *   22-23 obsolete | 24-27 TRANSPORTID PARAMETER DATA LENGTH (SPEC_I_PT = 1) | 28- TransportIDs
 *
 * REGISTER AND MOVE (SPC-4 6.16.4 table 221):
 *   0-7 RESERVATION KEY | 8-15 SERVICE ACTION RESERVATION KEY | 16 reserved
 *   17 reserved(7..2) UNREG(1) APTPL(0) | 18-19 RELATIVE TARGET PORT IDENTIFIER
 *   20-23 TRANSPORTID PARAMETER DATA LENGTH | 24- TransportID
 */
import type { ScsiCommand } from '../../../shared/scsi/command.ts';
import { ScsiStatus } from '../../../shared/scsi/command.ts';
import { Opcode, PersistentReserveOut } from '../../../shared/scsi/opcodes.ts';
import type { FieldPointer, SenseDetail } from '../../../shared/scsi/sense.ts';
import { SenseKey, SenseReason, cdbField, setCheckCondition } from '../../../shared/scsi/sense.ts';
import type { PrOutRequest, PrRequest, PrResult, PrTransportId } from '../../../shared/state/cluster-state.ts';
import { PR_SCOPE_LU, isPrType } from '../../../shared/state/cluster-state.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import { luTargetPortIds } from '../alua/port-groups.ts';
import { Completion } from '../spc/handler.ts';
import { rejectReservedBits, rejectReservedBytes } from '../spc/unit-status.ts';
import { parseTransportId } from './transport-id.ts';

/** SPC-4 annex F: 26h/04h INVALID RELEASE OF PERSISTENT RESERVATION (RELEASE with another TYPE). */
export const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: SenseDetail = Object.freeze({
  key: SenseKey.ILLEGAL_REQUEST,
  asc: 0x26,
  ascq: 0x04,
});

const CHECK_REASONS = {
  INVALID_FIELD_IN_CDB: SenseReason.INVALID_FIELD_IN_CDB,
  INVALID_FIELD_IN_PARAMETER_LIST: SenseReason.INVALID_FIELD_IN_PARAMETER_LIST,
  INVALID_RELEASE_OF_PERSISTENT_RESERVATION,
  INSUFFICIENT_REGISTRATION_RESOURCES: SenseReason.INSUFFICIENT_REGISTRATION_RESOURCES,
} as const;

/** Service actions whose TYPE and SCOPE fields are evaluated (SPC-4 6.16.2 table 214). */
const USES_TYPE = new Set<number>([
  PersistentReserveOut.RESERVE,
  PersistentReserveOut.RELEASE,
  PersistentReserveOut.PREEMPT,
  PersistentReserveOut.PREEMPT_AND_ABORT,
  PersistentReserveOut.REPLACE_LOST_RESERVATION,
]);

function paramError(cmd: ScsiCommand, byte: number, bit?: number): Completion {
  const f: FieldPointer = bit === undefined ? { cdb: false, byte } : { cdb: false, byte, bit };
  setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_PARAMETER_LIST, f);
  return Completion.DONE;
}

function lengthError(cmd: ScsiCommand): Completion {
  setCheckCondition(cmd, SenseReason.PARAMETER_LIST_LENGTH_ERROR);
  return Completion.DONE;
}

function keyHex(p: Buffer, at: number): string {
  return p.toString('hex', at, at + 8);
}

/** PERSISTENT RESERVE OUT, every service action (the command table routes them all here). */
export function persistentReserveOut(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const cdb = cmd.cdb;
  if (rejectReservedBits(cmd, 1, 0xe0) || rejectReservedBytes(cmd, 3, 5)) return Completion.DONE;
  const action = cdb[1]! & 0x1f;
  const scope = cdb[2]! >> 4;
  const type = cdb[2]! & 0x0f;
  const paramLength = cdb.readUInt32BE(5);
  cmd.dataOutWanted = paramLength;
  if (USES_TYPE.has(action)) {
    // SPC-4 6.16.3.3 / 6.16.3.4: only LU_SCOPE and the six types exist.
    if (scope !== PR_SCOPE_LU) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 7));
      return Completion.DONE;
    }
    if (!isPrType(type)) {
      setCheckCondition(cmd, SenseReason.INVALID_FIELD_IN_CDB, cdbField(2, 3));
      return Completion.DONE;
    }
  }
  // The data-out the initiator actually sent may be shorter than the list it announced.
  const len = Math.min(paramLength, cmd.dataOutLength, cmd.data.length);
  if (len < paramLength) return lengthError(cmd);
  const p = cmd.data;
  const nexus = lu.pr.nexusOf(cmd.nexus);
  let request: PrOutRequest;
  if (action === PersistentReserveOut.REGISTER_AND_MOVE) {
    if (paramLength < 24) return lengthError(cmd);
    if (p[16] !== 0) return paramError(cmd, 16, 31 - Math.clz32(p[16]!));
    if ((p[17]! & 0xfc) !== 0) return paramError(cmd, 17, 31 - Math.clz32(p[17]! & 0xfc));
    const rtpi = p.readUInt16BE(18);
    const tidLength = p.readUInt32BE(20);
    if (24 + tidLength > paramLength) return lengthError(cmd);
    const parsed = parseTransportId(p, 24, 24 + tidLength);
    if ('badByte' in parsed) return paramError(cmd, parsed.badByte, parsed.badBit);
    // SPC-4 6.16.4: relative target port identifier 0 is reserved.
    if (rtpi === 0) return paramError(cmd, 18, 7);
    request = {
      kind: 'prout',
      action,
      nexus,
      type,
      key: keyHex(p, 0),
      saKey: keyHex(p, 8),
      aptpl: (p[17]! & 0x01) !== 0,
      allTgPt: false,
      targetPortIds: [],
      specIPt: false,
      transportIds: [parsed.tid],
      unreg: (p[17]! & 0x02) !== 0,
      moveRelativeTargetPortId: rtpi,
    };
  } else {
    if (paramLength < 24) return lengthError(cmd);
    if ((p[20]! & 0xf2) !== 0) return paramError(cmd, 20, 31 - Math.clz32(p[20]! & 0xf2));
    if (p[21] !== 0) return paramError(cmd, 21, 31 - Math.clz32(p[21]!));
    const specIPt = (p[20]! & 0x08) !== 0;
    const registering = action === PersistentReserveOut.REGISTER || action === PersistentReserveOut.REGISTER_AND_IGNORE_EXISTING_KEY;
    const allTgPt = registering && (p[20]! & 0x04) !== 0;
    const transportIds: PrTransportId[] = [];
    if (specIPt) {
      // SPC-4 6.16.3.1: SPEC_I_PT is valid only with REGISTER.
      if (action !== PersistentReserveOut.REGISTER) return paramError(cmd, 20, 3);
      if (paramLength < 28) return lengthError(cmd);
      const tidLength = p.readUInt32BE(24);
      if (28 + tidLength !== paramLength) return lengthError(cmd);
      for (let at = 28; at < paramLength; ) {
        const parsed = parseTransportId(p, at, paramLength);
        if ('badByte' in parsed) return paramError(cmd, parsed.badByte, parsed.badBit);
        transportIds.push(parsed.tid);
        at += parsed.length;
      }
    } else if (paramLength !== 24) {
      // SPC-4 6.16.3.1: without SPEC_I_PT the list is exactly 24 bytes.
      return lengthError(cmd);
    }
    request = {
      kind: 'prout',
      action,
      nexus,
      type,
      key: keyHex(p, 0),
      saKey: keyHex(p, 8),
      // APTPL and ALL_TG_PT: valid only for the registering actions, ignored otherwise.
      aptpl: registering && (p[20]! & 0x01) !== 0,
      allTgPt,
      // SPC-4 6.16.3.1: ALL_TG_PT = 1 registers through every target port exporting the LU.
      targetPortIds: allTgPt ? luTargetPortIds(lu.alua) : [],
      specIPt,
      transportIds,
      unreg: false,
      moveRelativeTargetPortId: 0,
    };
  }
  return runRequest(lu, cmd, request);
}

/** Run `request` for `cmd` and complete it from the result (Completion.PENDING). */
export function runRequest(lu: LogicalUnit, cmd: ScsiCommand, request: PrRequest): Completion {
  lu.pr.run(request, cmd).then(
    (result) => {
      complete(cmd, result);
      cmd.finish();
    },
    (err: unknown) => {
      if (isClusterUnavailable(err)) {
        // The cluster state cannot be changed now (Redis unreachable, this node fenced, or
        // Redis lost the state): the change did not happen, or its outcome is unknown and
        // the LU follows the cluster's version when it can. NOT READY, ASYMMETRIC ACCESS
        // STATE TRANSITION (02/04/0A) is what initiators retry (README "Safety model").
        setCheckCondition(cmd, SenseReason.LUN_NOT_READY_ALUA_TRANSITION);
      } else {
        lu.env.reportInternalError(err, cmd);
        setCheckCondition(cmd, SenseReason.INTERNAL_TARGET_FAILURE);
      }
      cmd.finish();
    },
  );
  return Completion.PENDING;
}

/** Failures of a cluster state store (codes ERR_CLUSTER_*, or its control channel ERR_CONTROL_*). */
function isClusterUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('ERR_CLUSTER_') || code.startsWith('ERR_CONTROL_'));
}

function complete(cmd: ScsiCommand, result: PrResult): void {
  const o = result.outcome;
  if (o.status === 'good') {
    cmd.status = ScsiStatus.GOOD;
    cmd.senseLength = 0;
  } else if (o.status === 'conflict') {
    // SAM-5 5.3.1: RESERVATION CONFLICT carries no sense data.
    cmd.status = ScsiStatus.RESERVATION_CONFLICT;
    cmd.senseLength = 0;
  } else {
    setCheckCondition(cmd, CHECK_REASONS[o.reason], o.field);
  }
  cmd.dataInLength = 0;
}

/**
 * RESERVE(6) (SPC-2 7.21.1): 0 16h | 1 obsolete(7..5) 3RDPTY(4) 3RDPTY DEVICE ID(3..1)
 * EXTENT(0) | 2 RESERVATION IDENTIFICATION | 3-4 EXTENT LIST LENGTH | 5 CONTROL.
 * RESERVE(10) (SPC-2 7.21.2): 0 56h | 1 obsolete(7..5) 3RDPTY(4) reserved(3..2) LONGID(1)
 * EXTENT(0) | 2 THIRD-PARTY DEVICE ID | 3-6 reserved | 7-8 PARAMETER LIST LENGTH | 9 CONTROL.
 * RELEASE(6)/(10) (SPC-2 7.19) have the same layout. Third-party and extent reservations
 * are not supported (INVALID FIELD IN CDB); a logical unit reservation is what remains.
 */
export function reserveRelease(lu: LogicalUnit, cmd: ScsiCommand): Completion {
  const op = cmd.cdb[0]!;
  if (rejectReservedBits(cmd, 1, 0x11)) return Completion.DONE;
  const reserve = op === Opcode.RESERVE_6 || op === Opcode.RESERVE_10;
  return runRequest(lu, cmd, { kind: reserve ? 'reserve' : 'release', nexus: lu.pr.nexusOf(cmd.nexus) });
}
