/**
 * The shared memory of the node's counters, allocated by the supervisor before any worker
 * starts (like the data plane): one buffer per LUN worker (shared/metrics/lun-counters.ts)
 * and one per session worker (shared/metrics/session-counters.ts). Each worker is the only
 * writer of its buffer; the exporter and the admin API read them through the views.
 */
import { LUN_COUNTERS_BYTES, LunCountersView } from '../../shared/metrics/lun-counters.ts';
import { SESSION_COUNTERS_BYTES, SessionCountersView } from '../../shared/metrics/session-counters.ts';

export class MetricsMemory {
  readonly lun: SharedArrayBuffer[];
  readonly session: SharedArrayBuffer[];
  readonly lunViews: LunCountersView[];
  readonly sessionViews: SessionCountersView[];

  constructor(lunWorkers: number, sessionWorkers: number) {
    this.lun = Array.from({ length: lunWorkers }, () => new SharedArrayBuffer(LUN_COUNTERS_BYTES));
    this.session = Array.from({ length: sessionWorkers }, () => new SharedArrayBuffer(SESSION_COUNTERS_BYTES));
    this.lunViews = this.lun.map((sab) => new LunCountersView(sab));
    this.sessionViews = this.session.map((sab) => new SessionCountersView(sab));
  }
}
