/**
 * Asymmetric logical unit access (SPC-4 5.16) facts every layer shares: the state and
 * status codes, and the topology the supervisor hands LUN workers.
 */

/** ASYMMETRIC ACCESS STATE values (SPC-4 6.36.2 table 359 / 5.16.2.4). */
export const AluaState = {
  ACTIVE_OPTIMIZED: 0x0,
  ACTIVE_NON_OPTIMIZED: 0x1,
  STANDBY: 0x2,
  UNAVAILABLE: 0x3,
  // 0x4 logical block dependent and 0xE offline are not supported (LBD_SUP = O_SUP = 0).
  TRANSITIONING: 0xf,
} as const;
export type AluaStateValue = (typeof AluaState)[keyof typeof AluaState];

/** STATUS CODE of a target port group descriptor (SPC-4 6.36.2 table 360). */
export const AluaStatusCode = {
  NO_STATUS: 0x00,
  ALTERED_BY_SET_TARGET_PORT_GROUPS: 0x01,
  ALTERED_BY_IMPLICIT_BEHAVIOR: 0x02,
} as const;

/** The ALUA topology the supervisor sends each LUN worker. */
export interface AluaWire {
  /** IMPLICIT TRANSITION TIME reported by REPORT TARGET PORT GROUPS (0-255 s). */
  implicitTransitionSec: number;
  /** Every target port group, with the relative target port ids in it. */
  groups: { id: number; relativeTargetPortIds: number[] }[];
  /**
   * Device name -> ids of the groups through which that device is exported (some
   * target maps it, in `luns` or an ACL entry). Absent device: every group.
   */
  deviceGroups?: Record<string, number[]>;
  /** Initial asymmetric access state per group (config `aluaStates`); absent: active/optimized. */
  states?: { group: number; state: AluaStateValue }[];
}
