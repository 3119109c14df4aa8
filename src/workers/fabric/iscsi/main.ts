/**
 * Fabric port worker thread entry: a PortalWorker behind the supervisor's control
 * channel (PORTAL_CONTROL), handing sockets to session workers over HANDOFF channels.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../../shared/logging.ts';
import { sideA, sideB } from '../../../shared/control/endpoint.ts';
import { HANDOFF, PORTAL_CONTROL } from '../../../shared/control/protocols.ts';
import type { PortalWorkerData } from '../../../shared/wire/worker-data.ts';
import { PortalWorker } from './portal-worker.ts';

const data = workerData as PortalWorkerData;
const log = createLogger({ name: 'portal', level: data.logLevel, pretty: data.pretty, bindings: { portal: `${data.host}:${data.port}` } });
const onProtocolError = (problem: string) => log.error({ problem }, 'control channel: protocol error');

const sessions = data.sessionPorts.map((port, i) => {
  const e = sideA(HANDOFF, port, { requests: {}, notes: { closed: (m) => portal.closed(i, m.address) } });
  e.onProtocolError = onProtocolError;
  return e;
});

const portal: PortalWorker = new PortalWorker(data, log, {
  sessionWorkers: sessions.length,
  handOff: (i, socket) => sessions[i]!.transfer('socket', { portal: data.portalIndex }, socket),
});

const control = sideB(PORTAL_CONTROL, parentPort!, {
  requests: {
    start: () => portal.listen(),
    stop: () => portal.stop(),
  },
  notes: {},
});
control.onProtocolError = onProtocolError;
