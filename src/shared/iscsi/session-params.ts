/**
 * Operational parameters of a session/connection after login negotiation
 * (RFC 7143 section 13). Field names follow the RFC key names.
 */
export interface SessionParams {
  SessionType: 'Normal' | 'Discovery';
  InitiatorName: string;
  InitiatorAlias: string;
  /** Empty for discovery sessions. */
  TargetName: string;
  HeaderDigest: 'None' | 'CRC32C';
  DataDigest: 'None' | 'CRC32C';
  /** What the target accepts per PDU (declared by the target). */
  TargetMaxRecvDataSegmentLength: number;
  /** What the initiator accepts per PDU (declared by the initiator): bounds Data-In/Text. */
  InitiatorMaxRecvDataSegmentLength: number;
  MaxBurstLength: number;
  FirstBurstLength: number;
  InitialR2T: boolean;
  ImmediateData: boolean;
  MaxOutstandingR2T: number;
  DataPDUInOrder: boolean;
  DataSequenceInOrder: boolean;
  ErrorRecoveryLevel: number;
  DefaultTime2Wait: number;
  DefaultTime2Retain: number;
  MaxConnections: number;
}

/** RFC 7143 section 13 defaults, before negotiation. */
export function defaultSessionParams(): SessionParams {
  return {
    SessionType: 'Normal',
    InitiatorName: '',
    InitiatorAlias: '',
    TargetName: '',
    HeaderDigest: 'None',
    DataDigest: 'None',
    TargetMaxRecvDataSegmentLength: 8192,
    InitiatorMaxRecvDataSegmentLength: 8192,
    MaxBurstLength: 262144,
    FirstBurstLength: 65536,
    InitialR2T: true,
    ImmediateData: true,
    MaxOutstandingR2T: 1,
    DataPDUInOrder: true,
    DataSequenceInOrder: true,
    ErrorRecoveryLevel: 0,
    DefaultTime2Wait: 2,
    DefaultTime2Retain: 20,
    MaxConnections: 1,
  };
}
