/**
 * LUN worker thread entry: a LunWorker behind the supervisor's control channel
 * (shared/control/protocols.ts LUN_CONTROL).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../shared/logging.ts';
import { sideB, type ControlEndpoint } from '../../shared/control/endpoint.ts';
import { LUN_CONTROL } from '../../shared/control/protocols.ts';
import type { LunWorkerData, SessionLinkInit } from '../../shared/wire/worker-data.ts';
import { injectFault } from '../../shared/control/fault.ts';
import { startHeartbeat } from '../../shared/ring/heartbeat.ts';
import { LunWorker } from './lun-worker.ts';

const data = workerData as LunWorkerData;
const log = createLogger({ name: 'lun', level: data.logLevel, pretty: data.pretty, bindings: { worker: data.index } });
/** Reservation changes may wait for every node's acknowledgement, or a peer's lease to run out. */
const PR_TRANSITION_TIMEOUT_MS = 120_000;

type ToSupervisor = ControlEndpoint<(typeof LUN_CONTROL)['b'], (typeof LUN_CONTROL)['a']>;

// The worker and its control endpoint refer to each other; handlers run only once
// messages arrive, after both exist.
const control: ToSupervisor = sideB(LUN_CONTROL, parentPort!, {
  requests: {
    start: async () => {
      const units = await worker.start();
      void worker.run();
      return { units };
    },
    prepare: (m) => worker.prepare(m),
    commit: (m) => worker.commit(m),
    stop: () => worker.stop(),
    stats: () => worker.stats(),
    prApply: (m) => worker.prApply(m.lu, m.state, m.effects, m.reload === true),
    resetApply: (m) => worker.resetApply(m.lu, m.fn),
    modeApply: (m) => worker.modeApply(m.lu, m.pages),
    growApply: (m) => worker.growApply(m.lu, m.bytes),
    holdApply: (m) => worker.holdApply(m.lu, m.id, m.ttlMs),
    holdRelease: (m) => worker.holdRelease(m.lu, m.id),
    sessionLost: (m) => worker.sessionWorkerLost(m.session),
    fault: (m) => injectFault(m.mode),
    units: () => ({ units: worker.units() }),
  },
  notes: {},
  handles: {
    sessionLink: (m, init) => worker.sessionWorkerRestarted(m.session, init as SessionLinkInit),
  },
});

const worker: LunWorker = new LunWorker(data, log, {
  load: async (lu) => {
    const r = await control.request('prLoad', { lu });
    if (r.hold !== undefined) worker.holdAtOpen(lu, r.hold.id, r.hold.ttlMs);
    return r.state;
  },
  transition: async (lu, request) => (await control.request('prTransition', { lu, request }, PR_TRANSITION_TIMEOUT_MS)).result,
  reset: (lus, fn) => control.request('luReset', { lus: [...lus], fn }, PR_TRANSITION_TIMEOUT_MS),
  lock: async (lu) => (await control.request('lockLu', { lu }, PR_TRANSITION_TIMEOUT_MS)).token,
  unlock: (lu, token) => control.request('unlockLu', { lu, token }),
  loadUa: async (lu) => (await control.request('uaLoad', { lu })).entries,
  capacityChanged: (lu, bytes) => control.notify('capacityChanged', { lu, bytes }),
  modesChanged: (lu, pages) => control.notify('modesChanged', { lu, pages: [...pages] }),
  saveUa: (lu, entries) => control.notify('uaSnapshot', { lu, entries: [...entries] }),
  setAlua: (states) => control.request('setAlua', { states: states.map((x) => ({ group: x.group, state: x.state })) }),
  },
  (device, memory, luIndex, gen) => control.transfer('ramMemory', { device, luIndex, gen }, memory),
  (luIndex, path) => control.notify('inlineFile', { luIndex, path }),
);
control.onProtocolError = (problem) => log.error({ problem }, 'control channel: protocol error');

if (data.heartbeat !== undefined) startHeartbeat(data.heartbeat.sab, data.heartbeat.slot);

// Gauges the supervisor's exporter reads (shared/metrics/lun-counters.ts; liveness is the
// heartbeat above): off the command path, once a second.
const METRICS_PUBLISH_MS = 1000;
worker.metrics.publish(0, 0);
setInterval(() => worker.metrics.publish(worker.inflight, worker.unitCount), METRICS_PUBLISH_MS).unref();
