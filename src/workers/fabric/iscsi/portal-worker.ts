/**
 * Fabric port worker: one per portal. It listens, accepts connections paused and hands
 * each socket at once to a session worker (Node transfers only sockets that have not
 * started reading and have no pending writes). It never reads from a socket. Per-portal
 * policy lives here: placement on the least-loaded session worker, a connection cap,
 * and an accept rate limit (token bucket) so a connection flood cannot starve logins.
 */
import net from 'node:net';
import type { Logger } from '../../../shared/logging.ts';
import type { PortalWorkerData } from '../../../shared/wire/worker-data.ts';
import { ControlError, ControlErrorCode } from '../../../shared/control/errors.ts';

/** Where accepted sockets go: session worker `i` (one handoff channel each). */
export interface SocketSink {
  readonly sessionWorkers: number;
  /** Transfer `socket` to session worker `i`; throws if the handoff fails. */
  handOff(i: number, socket: net.Socket): void;
}

export class PortalWorker {
  readonly log: Logger;
  readonly #data: PortalWorkerData;
  readonly #sink: SocketSink;
  /** Connections placed on each session worker and not yet reported closed. */
  readonly #load: number[];
  #total = 0;
  #tokens: number;
  #lastRefill = Date.now();
  #server: net.Server | null = null;

  constructor(data: PortalWorkerData, log: Logger, sink: SocketSink) {
    this.#data = data;
    this.log = log;
    this.#sink = sink;
    this.#load = new Array<number>(sink.sessionWorkers).fill(0);
    this.#tokens = data.acceptBurst;
  }

  /** Session worker `i` reports that one of the connections placed on it closed. */
  closed(i: number): void {
    this.#load[i] = Math.max(0, (this.#load[i] ?? 0) - 1);
    this.#total = Math.max(0, this.#total - 1);
  }

  /** Bind and listen; rejects with ERR_SPINDLE_LISTEN. */
  listen(): Promise<void> {
    const d = this.#data;
    const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.#accept(socket));
    this.#server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(new ControlError(ControlErrorCode.LISTEN, `${d.host}:${d.port}: ${err.message}`));
      server.once('error', onError);
      server.listen({ host: d.host, port: d.port, ipv6Only: d.host.includes(':') }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.log.error({ err: err.message }, 'listening socket error'));
        resolve();
      });
    });
  }

  /** Stop accepting; connections already handed over belong to their session workers. */
  stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (server === null) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  #takeToken(): boolean {
    const d = this.#data;
    const now = Date.now();
    this.#tokens = Math.min(d.acceptBurst, this.#tokens + ((now - this.#lastRefill) / 1000) * d.acceptRate);
    this.#lastRefill = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #accept(socket: net.Socket): void {
    const d = this.#data;
    if (this.#total >= d.maxConnections) {
      this.log.warn({ max: d.maxConnections, from: socket.remoteAddress }, 'connection cap reached: refusing');
      socket.destroy();
      return;
    }
    if (!this.#takeToken()) {
      this.log.warn({ from: socket.remoteAddress }, 'accept rate limit: refusing');
      socket.destroy();
      return;
    }
    const load = this.#load;
    let best = 0;
    for (let i = 1; i < load.length; i++) if (load[i]! < load[best]!) best = i;
    load[best]!++;
    this.#total++;
    try {
      this.#sink.handOff(best, socket);
    } catch (err) {
      load[best]!--;
      this.#total--;
      this.log.error({ err: (err as Error).message }, 'socket handoff failed');
      socket.destroy();
    }
  }
}
