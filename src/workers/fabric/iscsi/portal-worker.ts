/**
 * Fabric port worker: one per portal. It listens, accepts connections paused and hands
 * each socket at once to a session worker (Node transfers only sockets that have not
 * started reading and have no pending writes). It never reads from a socket. Per-portal
 * policy lives here: placement on the least-loaded session worker, a connection cap,
 * and an accept rate limit (token bucket) so a connection flood cannot starve logins.
 */
import net from 'node:net';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { createLogger } from '../../../shared/logging.ts';
import { decodeControl, encodeControl } from '../../../shared/messages.ts';

export interface PortalWorkerData {
  index: number;
  host: string;
  port: number;
  /** Index of this portal in the routing tables. */
  portalIndex: number;
  maxConnections: number;
  /** Accepted connections per second (sustained) and burst. */
  acceptRate: number;
  acceptBurst: number;
  sessionPorts: MessagePort[];
  logLevel: string;
  pretty: boolean;
}

const data = workerData as PortalWorkerData;
const log = createLogger({
  name: 'portal',
  level: data.logLevel,
  pretty: data.pretty,
  bindings: { portal: `${data.host}:${data.port}` },
});
const load = new Array<number>(data.sessionPorts.length).fill(0);
let total = 0;
let tokens = data.acceptBurst;
let lastRefill = Date.now();

data.sessionPorts.forEach((port, i) => {
  port.on('message', (raw: Uint8Array) => {
    const msg = decodeControl(raw);
    if (msg.type === 'closed') {
      load[i]--;
      total--;
    }
  });
});

function takeToken(): boolean {
  const now = Date.now();
  tokens = Math.min(data.acceptBurst, tokens + ((now - lastRefill) / 1000) * data.acceptRate);
  lastRefill = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
  if (total >= data.maxConnections) {
    log.warn({ max: data.maxConnections, from: socket.remoteAddress }, 'connection cap reached: refusing');
    socket.destroy();
    return;
  }
  if (!takeToken()) {
    log.warn({ from: socket.remoteAddress }, 'accept rate limit: refusing');
    socket.destroy();
    return;
  }
  let best = 0;
  for (let i = 1; i < load.length; i++) if (load[i] < load[best]) best = i;
  load[best]++;
  total++;
  try {
    data.sessionPorts[best].postMessage({ socket, portal: data.portalIndex }, [socket as never]);
  } catch (err) {
    load[best]--;
    total--;
    log.error({ err: (err as Error).message }, 'socket handoff failed');
    socket.destroy();
  }
});

server.on('error', (err) => {
  parentPort!.postMessage(encodeControl({ type: 'error', message: `${data.host}:${data.port}: ${err.message}` }));
});

server.listen({ host: data.host, port: data.port, ipv6Only: data.host.includes(':') }, () => {
  parentPort!.postMessage(encodeControl({ type: 'ready' }));
});

parentPort!.on('message', (raw: Uint8Array) => {
  const msg = decodeControl(raw);
  if (msg.type === 'stop') {
    server.close(() => parentPort!.postMessage(encodeControl({ type: 'stopped' })));
  }
});
