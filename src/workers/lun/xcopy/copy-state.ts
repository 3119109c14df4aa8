/**
 * EXTENDED COPY state (SPC-4 5.16, 6.4, 6.18): which LUs a copy manager can reach, the
 * copies in progress, and the results held for RECEIVE COPY RESULTS.
 *
 * Reach: an identification descriptor CSCD (SPC-4 6.4.5.6) names a copy target by a
 * designator from its Device Identification VPD page. The copy manager of an LU resolves
 * it against the LUs of the same LUN worker (this registry): those it can read and
 * write without leaving the thread. LUs on other LUN workers are "not reachable"
 * (COPY ABORTED) until a cross-worker copy path exists.
 */
import type { LogicalUnit } from '../logical-unit.ts';

/** LUs of this worker thread, by NAA designator (hex). Several LUs may share one in tests. */
const registry = new Map<string, LogicalUnit[]>();

export function registerCopyTarget(lu: LogicalUnit): void {
  const key = lu.naa.toString('hex');
  const list = registry.get(key);
  if (list === undefined) registry.set(key, [lu]);
  else list.push(lu);
}

export function unregisterCopyTarget(lu: LogicalUnit): void {
  const key = lu.naa.toString('hex');
  const list = registry.get(key);
  if (list === undefined) return;
  const i = list.indexOf(lu);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) registry.delete(key);
}

/**
 * The LU a designator names, as seen from the copy manager `self`: `self` itself when
 * the designator is its own (the common case: a copy within one LU), else a registered LU.
 */
export function resolveCopyTarget(self: LogicalUnit, naa: Buffer): LogicalUnit | undefined {
  if (self.naa.equals(naa)) return self;
  return registry.get(naa.toString('hex'))?.[0];
}

/** COPY MANAGER STATUS values (SPC-4 6.18.3 table 375). */
export const CopyManagerStatus = {
  COMPLETED_OK: 0x00,
  COMPLETED_WITH_ERRORS: 0x01,
  IN_PROGRESS_FOREGROUND: 0x10,
} as const;

/** What RECEIVE COPY RESULTS reports about one EXTENDED COPY (by nexus and list id). */
export interface CopyRecord {
  status: number;
  /** Segment descriptors fully processed. */
  segmentsProcessed: number;
  /** Bytes written to copy targets so far. */
  bytesTransferred: number;
  /** Whether the results are held after completion (LIST ID USAGE 00b). */
  readonly hold: boolean;
  /** Sense data the command completed with, for FAILED SEGMENT DETAILS (empty: GOOD). */
  sense: Buffer;
  /** SAM status the EXTENDED COPY command completed with. */
  commandStatus: number;
}

/** Most held results kept per LU; beyond it the oldest are discarded (HDD reported). */
export const HELD_RESULTS_LIMIT = 64;

export class CopyManagerState {
  /** key(nexus, list id) → record: copies in progress and held results. */
  readonly records = new Map<string, CopyRecord>();
  /** Copies currently in progress on this LU. */
  active = 0;
  /** Set once held results were discarded for lack of room (HDD bit, SPC-4 6.18.3). */
  discardedHeld = false;
}

export function copyKey(nexus: number, listId: number): string {
  return `${nexus}:${listId}`;
}

/** Drop the oldest completed records beyond HELD_RESULTS_LIMIT. */
export function trimHeld(state: CopyManagerState): void {
  if (state.records.size <= HELD_RESULTS_LIMIT) return;
  for (const [k, r] of state.records) {
    if (state.records.size <= HELD_RESULTS_LIMIT) break;
    if (r.status === CopyManagerStatus.IN_PROGRESS_FOREGROUND) continue;
    state.records.delete(k);
    state.discardedHeld = true;
  }
}
