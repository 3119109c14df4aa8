/**
 * A connection as the admin API shows it (shared/wire/admin-info.ts): who is logged in
 * where, the negotiated operational keys (RFC 7143 13, named as the RFC names them) and
 * the command window. Read on request over the control channel, never on the PDU path.
 */
import type { ConnectionInfo } from '../../../shared/wire/admin-info.ts';
import { SessionCounters } from '../../../shared/metrics/session-counters.ts';
import type { IscsiConnection } from './connection.ts';

export function describeConnection(c: IscsiConnection, worker: number): ConnectionInfo {
  const s = c.session;
  const p = s?.params;
  const portal = c.ctx.portals[c.portalIndex];
  const phase = !c.receiving ? 'closed' : c.isFullFeature ? 'full-feature' : s === null ? 'login' : 'logout';
  const negotiated: Record<string, string | number | boolean> = {};
  if (p !== undefined) {
    negotiated['MaxRecvDataSegmentLength'] = p.InitiatorMaxRecvDataSegmentLength;
    negotiated['TargetMaxRecvDataSegmentLength'] = p.TargetMaxRecvDataSegmentLength;
    negotiated['MaxBurstLength'] = p.MaxBurstLength;
    negotiated['FirstBurstLength'] = p.FirstBurstLength;
    negotiated['InitialR2T'] = p.InitialR2T;
    negotiated['ImmediateData'] = p.ImmediateData;
    negotiated['MaxOutstandingR2T'] = p.MaxOutstandingR2T;
    negotiated['DataPDUInOrder'] = p.DataPDUInOrder;
    negotiated['DataSequenceInOrder'] = p.DataSequenceInOrder;
    negotiated['ErrorRecoveryLevel'] = p.ErrorRecoveryLevel;
    negotiated['DefaultTime2Wait'] = p.DefaultTime2Wait;
    negotiated['DefaultTime2Retain'] = p.DefaultTime2Retain;
    negotiated['MaxConnections'] = p.MaxConnections;
    negotiated['HeaderDigest'] = p.HeaderDigest;
    negotiated['DataDigest'] = p.DataDigest;
  }
  const slot = SessionCounters.slotOf(c.metricBase);
  return {
    worker,
    slot,
    generation: slot > 0 ? c.counters.generationOf(c.metricBase) : 0,
    tsih: s?.tsih ?? 0,
    isid: s === null ? '' : s.isid.toString('hex'),
    initiatorName: p?.InitiatorName ?? '',
    initiatorAlias: p?.InitiatorAlias ?? '',
    targetName: p?.TargetName ?? '',
    sessionType: p?.SessionType ?? '',
    phase,
    portal: { host: portal?.host ?? '', port: portal?.port ?? 0, group: portal?.group ?? 0 },
    peer: c.peer,
    since: c.since,
    negotiated,
    headerDigest: p?.HeaderDigest ?? 'None',
    dataDigest: p?.DataDigest ?? 'None',
    commandsInFlight: c.tasks.size,
    expCmdSN: s?.expCmdSN ?? 0,
    maxCmdSN: s?.maxCmdSN ?? 0,
    statSN: c.statSN,
  };
}
