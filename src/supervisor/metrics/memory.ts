/**
 * The shared memory of the node's counters, allocated by the supervisor before any worker
 * starts (like the data plane): one buffer per LUN worker (shared/metrics/lun-counters.ts)
 * and two per session worker (shared/metrics/session-counters.ts, and inline-counters.ts
 * for the READs and WRITEs it serves itself). Each worker is the only
 * writer of its buffer; the exporter and the admin API read them through the views.
 */
import { LUN_COUNTERS_BYTES, LunCountersView } from '../../shared/metrics/lun-counters.ts';
import { SESSION_COUNTERS_BYTES, SessionCountersView } from '../../shared/metrics/session-counters.ts';
import { InlineCountersView, inlineCountersBytes } from '../../shared/metrics/inline-counters.ts';

export class MetricsMemory {
  readonly lun: SharedArrayBuffer[];
  readonly session: SharedArrayBuffer[];
  /** Per session worker: the READs and WRITEs it served itself (inline-counters.ts). */
  readonly inline: SharedArrayBuffer[];
  readonly lunViews: LunCountersView[];
  readonly sessionViews: SessionCountersView[];

  constructor(lunWorkers: number, sessionWorkers: number) {
    this.lun = Array.from({ length: lunWorkers }, () => new SharedArrayBuffer(LUN_COUNTERS_BYTES));
    this.session = Array.from({ length: sessionWorkers }, () => new SharedArrayBuffer(SESSION_COUNTERS_BYTES));
    this.inline = Array.from({ length: sessionWorkers }, () => new SharedArrayBuffer(inlineCountersBytes(lunWorkers)));
    const inlineViews = this.inline.map((sab) => new InlineCountersView(sab));
    this.lunViews = this.lun.map((sab, l) => new LunCountersView(sab, inlineViews, l));
    this.sessionViews = this.session.map((sab) => new SessionCountersView(sab));
  }
}
