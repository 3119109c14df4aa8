/**
 * A logical unit as the admin API shows it (shared/wire/admin-info.ts): geometry and
 * settings as they are now, the reservation state this node holds, the ALUA view, and
 * the long-running operations with their progress. Read on request (control channel),
 * never on the command path.
 */
import { ALUA_STATE_TEXT, PR_TYPE_TEXT, type RegistrationInfo, type UnitInfo, type OperationInfo } from '../../shared/wire/admin-info.ts';
import type { PrRegistration } from '../../shared/state/cluster-state.ts';
import type { LogicalUnit } from './logical-unit.ts';
import { SanitizeState } from './sbc/state.ts';
import { CopyManagerStatus } from './xcopy/copy-state.ts';

function registration(r: PrRegistration): RegistrationInfo {
  return { key: r.key, initiatorName: r.initiatorName, isid: r.isid, relativeTargetPortId: r.relativeTargetPortId, allTgPt: r.allTgPt };
}

function operations(lu: LogicalUnit): OperationInfo[] {
  const out: OperationInfo[] = [];
  const op = lu.sbc.sanitizeOp;
  if (op !== null && lu.sbc.sanitize !== SanitizeState.IDLE) {
    out.push({
      kind: 'sanitize',
      state: lu.sbc.sanitize === SanitizeState.FAILED ? 'failed' : 'running',
      action: op.plan.action,
      // PROGRESS INDICATION (SPC-4 4.5.2.4.4) is a fraction over 65536.
      progress: op.progress / 0x10000,
      doneBlocks: op.done,
      totalBlocks: op.total,
    });
  }
  for (const r of lu.copies.records.values()) {
    if (r.status === CopyManagerStatus.IN_PROGRESS_FOREGROUND)
      out.push({ kind: 'extended-copy', segmentsProcessed: r.segmentsProcessed, bytesTransferred: r.bytesTransferred });
  }
  return out;
}

export function describeUnit(lu: LogicalUnit, worker: number, luIndex: number): UnitInfo {
  const s = lu.pr.state;
  const holder = s.reservation?.holder ?? null;
  const held = holder === null ? undefined : s.registrations.find((r) => r.id === holder);
  return {
    name: lu.name,
    worker,
    luIndex,
    naa: lu.naa.toString('hex'),
    serial: lu.serial,
    backing: lu.backing.type === 'file' ? { type: 'file', path: lu.backing.path } : { type: 'ram' },
    blockSize: lu.blockSize,
    blocks: lu.blockCount,
    sizeBytes: lu.blockCount * lu.blockSize,
    readOnly: lu.readOnly,
    writeCache: lu.writeCacheEnabled ? 'writeback' : 'writethrough',
    thin: lu.sbc.thin,
    removable: lu.sbc.removable,
    mediumPresent: lu.sbc.mediumPresent,
    queueDepth: lu.taskSet.depth,
    taskSet: { size: lu.taskSet.size, dormant: lu.taskSet.dormantCount },
    reservations: {
      generation: s.generation,
      aptpl: s.aptpl,
      registrations: s.registrations.map(registration),
      reservation:
        s.reservation === null
          ? null
          : { type: s.reservation.type, typeName: PR_TYPE_TEXT[s.reservation.type] ?? String(s.reservation.type), holder: held === undefined ? null : registration(held) },
      spc2: s.spc2 === null ? null : { initiatorName: s.spc2.initiatorName, isid: s.spc2.isid, relativeTargetPortId: s.spc2.relativeTargetPortId },
    },
    alua: lu.alua.groups.map((g) => ({ group: g.id, state: ALUA_STATE_TEXT[g.state] ?? 'unavailable' })),
    operations: operations(lu),
  };
}
