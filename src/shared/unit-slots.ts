/**
 * Unit slots in the node's shared tables (lun-counters.ts, ring/inline-grants.ts,
 * metrics/inline-counters.ts): a unit index (supervisor/topology.ts luIndex, never reused
 * while spindle runs) has a slot when it is below MAX_LU_SLOTS; units above it are simply
 * not tracked there.
 */
export const MAX_LU_SLOTS = 1024;

/** One number per unit of the node: its LUN worker and unit index there. */
export function unitKey(lunWorker: number, luIndex: number): number {
  return lunWorker * MAX_LU_SLOTS + luIndex;
}
