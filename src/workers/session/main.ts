/**
 * Session worker thread entry: a SessionWorker behind the supervisor's control channel
 * (SESSION_CONTROL) and one handoff channel per fabric port worker (HANDOFF).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Socket } from 'node:net';
import { createLogger } from '../../shared/logging.ts';
import { sideB, type ControlEndpoint } from '../../shared/control/endpoint.ts';
import { HANDOFF, SESSION_CONTROL } from '../../shared/control/protocols.ts';
import type { LunChannelInit, SessionWorkerData } from '../../shared/wire/worker-data.ts';
import { injectFault } from '../../shared/control/fault.ts';
import { startHeartbeat } from '../../shared/ring/heartbeat.ts';
import { SessionWorker } from './session-worker.ts';

const data = workerData as SessionWorkerData;
const log = createLogger({ name: 'session', level: data.logLevel, pretty: data.pretty, bindings: { worker: data.index } });
const onProtocolError = (problem: string) => log.error({ problem }, 'control channel: protocol error');

type ToSupervisor = ControlEndpoint<(typeof SESSION_CONTROL)['b'], (typeof SESSION_CONTROL)['a']>;

// The worker and its control endpoint refer to each other; handlers run only once
// messages arrive, after both exist.
const supervisor: ToSupervisor = sideB(SESSION_CONTROL, parentPort!, {
  requests: {
    start: () => {
      void worker.run();
    },
    routes: (m) => worker.applyRoutes(m.routes, m.targetSlots, m.discoveryAuth),
    drain: (m) => worker.drain(m.timeoutMs),
    stats: () => worker.stats(),
    logoutAll: (m) => worker.logoutAll(m.time2WaitSec),
    closeAll: (m) => worker.closeAll(m.reason),
    lunLost: (m) => ({ ended: worker.lunWorkerLost(m.lunWorker) }),
    fault: (m) => injectFault(m.mode),
    sessions: () => ({ connections: worker.sessions() }),
    logoutSession: (m) => worker.logoutSession(m.tsih, m.time2WaitSec),
    closeSession: (m) => worker.closeSession(m.tsih, m.reason),
  },
  notes: {
    reinstate: (m) => worker.reinstated(m.key),
    forgetUnit: (m) => worker.forgetUnit(m.lunWorker, m.luIndex),
    inlineFile: (m) => worker.inlineFile(m.lunWorker, m.luIndex, m.path),
  },
  handles: {
    lunChannel: (m, init) => worker.lunWorkerRestarted(m.lunWorker, init as LunChannelInit),
    portalPort: (_m, port) => listenToPortal(port as MessagePort),
    inlineMemory: (m, memory) => {
      if (memory instanceof SharedArrayBuffer) worker.inlineMemory(m.lunWorker, m.luIndex, m.gen, memory);
    },
  },
});
supervisor.onProtocolError = onProtocolError;

const worker: SessionWorker = new SessionWorker(data, log, {
  authFailure: (key) => supervisor.request('authFailure', { key }),
  authSuccess: (key) => supervisor.notify('authSuccess', { key }),
  sessionUp: (key, tsih) => supervisor.notify('sessionUp', { key, tsih }),
  sessionDown: (key) => supervisor.notify('sessionDown', { key }),
  sessionFind: (key) => supervisor.request('sessionFind', { key }),
});

/** Sockets from one portal worker come on `port`; "closed" goes back on it. */
function listenToPortal(port: MessagePort): void {
  const portal = sideB(HANDOFF, port, {
    requests: {},
    notes: {},
    handles: {
      socket: (m, socket) => {
        const address = (socket as Socket).remoteAddress ?? '';
        worker.accept(socket as Socket, m.portal, () => portal.notify('closed', { address }));
      },
    },
  });
  portal.onProtocolError = onProtocolError;
}
data.portalPorts.forEach(listenToPortal);

if (data.heartbeat !== undefined) startHeartbeat(data.heartbeat.sab, data.heartbeat.slot);

// Gauges the supervisor's exporter reads (shared/metrics/session-counters.ts; liveness is
// the heartbeat above): off the PDU path, once a second.
const METRICS_PUBLISH_MS = 1000;
worker.publishMetrics();
setInterval(() => worker.publishMetrics(), METRICS_PUBLISH_MS).unref();
