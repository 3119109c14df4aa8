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
  /** Open connections per initiator address (maxConnectionsPerAddress). */
  readonly #byAddress = new Map<string, number>();
  /** The same, per session worker (forgotten when the worker dies). */
  readonly #byWorker: Map<string, number>[];
  /** Session workers being replaced: nothing is placed on them. */
  readonly #down = new Set<number>();
  #tokens: number;
  #lastRefill = Date.now();
  #server: net.Server | null = null;

  constructor(data: PortalWorkerData, log: Logger, sink: SocketSink) {
    this.#data = data;
    this.log = log;
    this.#sink = sink;
    this.#load = new Array<number>(sink.sessionWorkers).fill(0);
    this.#byWorker = Array.from({ length: sink.sessionWorkers }, () => new Map<string, number>());
    this.#tokens = data.acceptBurst;
  }

  /** Session worker `i` reports that one of the connections placed on it (from `address`) closed. */
  closed(i: number, address: string): void {
    this.#load[i] = Math.max(0, (this.#load[i] ?? 0) - 1);
    this.#total = Math.max(0, this.#total - 1);
    const n = (this.#byAddress.get(address) ?? 0) - 1;
    if (n > 0) this.#byAddress.set(address, n);
    else this.#byAddress.delete(address);
    const w = this.#byWorker[i];
    if (w !== undefined) {
      const m = (w.get(address) ?? 0) - 1;
      if (m > 0) w.set(address, m);
      else w.delete(address);
    }
  }

  /**
   * Session worker `i` died (its connections died with it): nothing is placed on it until
   * its replacement is back, and its connections no longer count.
   */
  sessionWorkerLost(i: number): void {
    this.#down.add(i);
    this.#total = Math.max(0, this.#total - (this.#load[i] ?? 0));
    this.#load[i] = 0;
    for (const [address, n] of this.#byWorker[i] ?? []) {
      const left = (this.#byAddress.get(address) ?? 0) - n;
      if (left > 0) this.#byAddress.set(address, left);
      else this.#byAddress.delete(address);
    }
    this.#byWorker[i]?.clear();
  }

  sessionWorkerBack(i: number): void {
    this.#down.delete(i);
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
    const address = socket.remoteAddress ?? '';
    const fromThere = this.#byAddress.get(address) ?? 0;
    if (d.maxConnectionsPerAddress !== undefined && fromThere >= d.maxConnectionsPerAddress) {
      // One host may not take every connection slot of the portal (issue 12: hostile
      // initiators); its further connections are refused at accept.
      this.log.warn({ from: address, max: d.maxConnectionsPerAddress }, 'connections per address cap reached: refusing');
      socket.destroy();
      return;
    }
    if (!this.#takeToken()) {
      this.log.warn({ from: socket.remoteAddress }, 'accept rate limit: refusing');
      socket.destroy();
      return;
    }
    const load = this.#load;
    let best = -1;
    for (let i = 0; i < load.length; i++) if (!this.#down.has(i) && (best < 0 || load[i]! < load[best]!)) best = i;
    if (best < 0) {
      this.log.warn({ from: address }, 'no session worker available (being replaced): refusing');
      socket.destroy();
      return;
    }
    load[best]!++;
    this.#total++;
    this.#byAddress.set(address, fromThere + 1);
    const w = this.#byWorker[best]!;
    w.set(address, (w.get(address) ?? 0) + 1);
    try {
      this.#sink.handOff(best, socket);
    } catch (err) {
      load[best]!--;
      this.#total--;
      this.#byAddress.set(address, fromThere);
      w.set(address, (w.get(address) ?? 1) - 1);
      this.log.error({ err: (err as Error).message }, 'socket handoff failed');
      socket.destroy();
    }
  }
}
