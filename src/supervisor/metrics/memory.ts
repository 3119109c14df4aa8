/**
 * The shared memory of the node's counters, allocated by the supervisor before any worker
 * starts (like the data plane): one buffer per LUN worker (shared/metrics/lun-counters.ts)
 * and two per session worker (shared/metrics/session-counters.ts, and direct-counters.ts
 * for the READs and WRITEs it serves itself). Each worker is the only
 * writer of its buffer; the exporter and the admin API read them through the views.
 */
import { LUN_COUNTERS_BYTES, LunCountersView } from '../../shared/metrics/lun-counters.ts';
import { SESSION_COUNTERS_BYTES, SessionCountersView } from '../../shared/metrics/session-counters.ts';
import { DirectCountersView, directCountersBytes } from '../../shared/metrics/direct-counters.ts';

export class MetricsMemory {
  readonly lun: SharedArrayBuffer[];
  readonly session: SharedArrayBuffer[];
  /** Per session worker: the READs and WRITEs it served itself (direct-counters.ts). */
  readonly direct: SharedArrayBuffer[];
  readonly lunViews: LunCountersView[];
  readonly sessionViews: SessionCountersView[];

  constructor(lunWorkers: number, sessionWorkers: number) {
    this.lun = Array.from({ length: lunWorkers }, () => new SharedArrayBuffer(LUN_COUNTERS_BYTES));
    this.session = Array.from({ length: sessionWorkers }, () => new SharedArrayBuffer(SESSION_COUNTERS_BYTES));
    this.direct = Array.from({ length: sessionWorkers }, () => new SharedArrayBuffer(directCountersBytes(lunWorkers)));
    const directViews = this.direct.map((sab) => new DirectCountersView(sab));
    this.lunViews = this.lun.map((sab, l) => new LunCountersView(sab, directViews, l));
    this.sessionViews = this.session.map((sab) => new SessionCountersView(sab));
  }
}
