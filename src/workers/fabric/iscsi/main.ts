/**
 * Fabric port worker thread entry: a PortalWorker behind the supervisor's control
 * channel (PORTAL_CONTROL), handing sockets to session workers over HANDOFF channels.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { injectFault } from '../../../shared/control/fault.ts';
import { startHeartbeat } from '../../../shared/ring/heartbeat.ts';
import { createLogger } from '../../../shared/logging.ts';
import { sideA, sideB } from '../../../shared/control/endpoint.ts';
import { HANDOFF, PORTAL_CONTROL } from '../../../shared/control/protocols.ts';
import type { PortalWorkerData } from '../../../shared/wire/worker-data.ts';
import { PortalWorker } from './portal-worker.ts';

const data = workerData as PortalWorkerData;
const log = createLogger({ name: 'portal', level: data.logLevel, pretty: data.pretty, bindings: { portal: `${data.host}:${data.port}` } });
const onProtocolError = (problem: string) => log.error({ problem }, 'control channel: protocol error');

const handoff = (port: MessagePort, i: number) => {
  const e = sideA(HANDOFF, port, { requests: {}, notes: { closed: (m) => portal.closed(i, m.address) } });
  e.onProtocolError = onProtocolError;
  return e;
};
const sessions = data.sessionPorts.map(handoff);

const portal: PortalWorker = new PortalWorker(data, log, {
  sessionWorkers: sessions.length,
  handOff: (i, socket) => sessions[i]!.transfer('socket', { portal: data.portalIndex }, socket),
});

const control = sideB(PORTAL_CONTROL, parentPort!, {
  requests: {
    start: () => portal.listen(),
    stop: () => portal.stop(),
    sessionLost: (m) => portal.sessionWorkerLost(m.session),
    fault: (m) => injectFault(m.mode),
  },
  notes: {},
  handles: {
    // The replacement session worker's handoff port: connections go there again.
    sessionPort: (m, port) => {
      sessions[m.session]?.close('session worker replaced');
      sessions[m.session] = handoff(port as MessagePort, m.session);
      portal.sessionWorkerBack(m.session);
    },
  },
});
control.onProtocolError = onProtocolError;

if (data.heartbeat !== undefined) startHeartbeat(data.heartbeat.sab, data.heartbeat.slot);
