/**
 * The shared memory of the node's counters, allocated by the supervisor before any worker
 * starts (like the data plane): one buffer per LUN worker (shared/metrics/lun-counters.ts)
 * and two per session worker (shared/metrics/session-counters.ts, and direct-read-counters.ts
 * for the READs it answers itself). Each worker is the only
 * writer of its buffer; the exporter and the admin API read them through the views.
 */
import { LUN_COUNTERS_BYTES, LunCountersView } from '../../shared/metrics/lun-counters.ts';
import { SESSION_COUNTERS_BYTES, SessionCountersView } from '../../shared/metrics/session-counters.ts';
import { DirectReadCountersView, directReadCountersBytes } from '../../shared/metrics/direct-read-counters.ts';

export class MetricsMemory {
  readonly lun: SharedArrayBuffer[];
  readonly session: SharedArrayBuffer[];
  /** Per session worker: the READs it answered itself (direct-read-counters.ts). */
  readonly direct: SharedArrayBuffer[];
  readonly lunViews: LunCountersView[];
  readonly sessionViews: SessionCountersView[];

  constructor(lunWorkers: number, sessionWorkers: number) {
    this.lun = Array.from({ length: lunWorkers }, () => new SharedArrayBuffer(LUN_COUNTERS_BYTES));
    this.session = Array.from({ length: sessionWorkers }, () => new SharedArrayBuffer(SESSION_COUNTERS_BYTES));
    this.direct = Array.from({ length: sessionWorkers }, () => new SharedArrayBuffer(directReadCountersBytes(lunWorkers)));
    const directViews = this.direct.map((sab) => new DirectReadCountersView(sab));
    this.lunViews = this.lun.map((sab, l) => new LunCountersView(sab, directViews, l));
    this.sessionViews = this.session.map((sab) => new SessionCountersView(sab));
  }
}
