/**
 * I_T nexus identity as the target core sees it (SAM-5 4.6, SPC-4 5.14.x).
 *
 * Commands on the rings carry a numeric nexus handle (one per iSCSI session). SCSI state
 * that belongs to an I_T nexus (persistent-reservation registrations, unit attentions,
 * reservations) must be keyed by the nexus *identity* instead: the initiator port (iSCSI
 * name + ",i,0x" + ISID, RFC 7143 / SPC-4 7.6.4.6) together with the target port
 * (relative target port identifier). A session that ends and a new session with the same
 * InitiatorName and ISID through the same portal group form the same I_T nexus again.
 */
export interface NexusInfo {
  /** The handle commands carry (ScsiCommand.nexus). */
  readonly id: number;
  /** iSCSI InitiatorName. */
  readonly initiatorName: string;
  /** ISID as 12 lowercase hex digits. */
  readonly isid: string;
  /** SCSI initiator port name: `${initiatorName},i,0x${isid}` (RFC 7143 10.? / SPC-4 TransportID format 01b). */
  readonly initiatorPort: string;
  /** iSCSI TargetName of the session. */
  readonly targetName: string;
  /** Relative target port identifier of the target port (SPC-4 7.8.6.7), 1-based. */
  readonly relativeTargetPortId: number;
  /** Target port group (ALUA, SPC-4 5.16) of that port. */
  readonly targetPortGroup: number;
  /** Stable key of the I_T nexus: `${initiatorPort}|${relativeTargetPortId}`. */
  readonly key: string;
}

/** Resolves nexus handles; the LUN worker fills it from the session workers' tables. */
export interface NexusDirectory {
  get(id: number): NexusInfo | undefined;
}

export function nexusKey(initiatorPort: string, relativeTargetPortId: number): string {
  return `${initiatorPort}|${relativeTargetPortId}`;
}

export function initiatorPortName(initiatorName: string, isidHex: string): string {
  return `${initiatorName},i,0x${isidHex}`;
}
