/**
 * Pending unit attentions as data, so a cluster node can keep them in Redis and find
 * them again after a restart (DESIGN.md "Unit attentions raised by cluster-wide events";
 * issue 10). Only identities (I_T nexuses with a known initiator port and target port)
 * are kept: they are what a returning initiator is recognised by.
 *
 * A restored identity is one the LU knew before the node went down, so it does not get
 * POWER ON again; its nexus was lost with the node, so I_T NEXUS LOSS OCCURRED (29/07) is
 * added to what was pending (ranked below every other reset-class condition).
 */
import type { SenseDetail } from '../../../shared/scsi/sense.ts';
import { SenseReason } from '../../../shared/scsi/sense.ts';
import type { LogicalUnit } from '../logical-unit.ts';
import type { NexusInfo } from '../nexus.ts';
import { NO_HANDLE, NexusUnitAttention, queueCondition } from './unit-attention.ts';

/** One identity's pending conditions: the nexus identity and [key, asc, ascq] triples. */
export interface PersistedUa {
  readonly initiatorName: string;
  readonly isid: string;
  readonly targetName: string;
  readonly relativeTargetPortId: number;
  readonly targetPortGroup: number;
  readonly pending: readonly (readonly [number, number, number])[];
}

/** The LU's pending unit attentions, for every identity it knows. */
export function snapshotUa(lu: LogicalUnit): PersistedUa[] {
  const out: PersistedUa[] = [];
  for (const u of lu.ua.byKey.values()) {
    const i = u.info;
    if (i === undefined) continue;
    out.push({
      initiatorName: i.initiatorName,
      isid: i.isid,
      targetName: i.targetName,
      relativeTargetPortId: i.relativeTargetPortId,
      targetPortGroup: i.targetPortGroup,
      pending: u.queue.map((d) => [d.key, d.asc, d.ascq] as const),
    });
  }
  return out;
}

/** Every SenseDetail by (key, asc, ascq), to restore the shared constants. */
const BY_CODE = new Map<string, SenseDetail>(Object.values(SenseReason).map((d) => [`${d.key}/${d.asc}/${d.ascq}`, d]));

/** Restore `entries` (see the file comment) into a freshly opened LU. */
export function restoreUa(lu: LogicalUnit, entries: readonly PersistedUa[]): void {
  for (const e of entries) {
    const initiatorPort = `${e.initiatorName},i,0x${e.isid}`;
    const key = `${initiatorPort}|${e.relativeTargetPortId}`;
    if (lu.ua.byKey.has(key)) continue;
    const info: NexusInfo = {
      id: NO_HANDLE,
      initiatorName: e.initiatorName,
      isid: e.isid,
      initiatorPort,
      targetName: e.targetName,
      relativeTargetPortId: e.relativeTargetPortId,
      targetPortGroup: e.targetPortGroup,
      key,
    };
    const u = new NexusUnitAttention(key, info, NO_HANDLE);
    for (const [k, asc, ascq] of e.pending) {
      const d = BY_CODE.get(`${k}/${asc}/${ascq}`);
      if (d !== undefined) queueCondition(u, d);
    }
    queueCondition(u, SenseReason.I_T_NEXUS_LOSS);
    lu.ua.byKey.set(key, u);
  }
}
