/**
 * A TCP proxy on a free loopback port, for cutting one node off from Redis while others
 * keep their links: point a node at the proxy and call `cut()`.
 *
 * Two kinds of cut, because a real partition looks like either, depending on how long it
 * lasts:
 * - 'blackhole': the link goes silent. Both sockets stay open, nothing is forwarded in
 *   either direction (the proxy stops reading, so bytes wait in kernel buffers and the
 *   senders' TCP windows close), no FIN, no RST. A client sees only timeouts. New
 *   connections are accepted but get no bytes through. On `restore()` what was held back
 *   is delivered in order and held connections are connected through, as TCP does when a
 *   short partition heals before its retransmission timeout.
 * - 'reset': every connection is reset (RST) at once, and new ones are reset on accept
 *   until `restore()`, as when a partition outlasts TCP's timeouts or a peer rebooted.
 *   A blackholed link can be turned into a reset one with `cut('reset')`.
 * - 'replies': only the target's answers are held back (the requests go through): what a
 *   client sees when a command was carried out but its reply is lost or late. Restored as
 *   a blackhole is.
 *
 * The counters count bytes actually forwarded (written to the other side).
 */
import net from 'node:net';
import { freePort } from './target.ts';

export type CutMode = 'blackhole' | 'reset' | 'replies';

export interface TcpProxyOptions {
  /** Where to forward. */
  target: { host: string; port: number };
  /** Listening address; default 127.0.0.1. */
  host?: string;
  /** Listening port; default a free one. */
  port?: number;
}

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  /** `host:port` of the proxy. */
  readonly address: string;
  readonly target: { host: string; port: number };
  /** The current cut, or undefined when forwarding. */
  readonly cutMode: CutMode | undefined;
  /** Bytes forwarded client -> target. */
  readonly bytesToTarget: number;
  /** Bytes forwarded target -> client. */
  readonly bytesToClient: number;
  /** Client connections accepted so far. */
  readonly accepted: number;
  /** Client connections open now. */
  readonly open: number;
  /**
   * Cut every connection (and new ones), or with `only`, just the open connections whose
   * client has sent that text (e.g. the name a Redis client gives itself).
   */
  cut(mode?: CutMode, only?: string): void;
  restore(): void;
  /** Stop listening and destroy every connection. */
  close(): Promise<void>;
}

/** One client connection and its upstream twin. */
interface Link {
  client: net.Socket;
  upstream: net.Socket | undefined;
  /** This link's cut (the proxy's, or its own from a cut with `only`). */
  mode: CutMode | undefined;
  /** The start of what the client sent (latin1, up to SAID_MAX), for cut(mode, only). */
  said: string;
  /** Chunks read but not yet forwarded (read just before a cut). */
  held: { to: 'client' | 'upstream'; data: Buffer }[];
}

/** How much of what a client sends is kept for matching (cut with `only`). */
const SAID_MAX = 4096;

export async function startTcpProxy(opts: TcpProxyOptions): Promise<TcpProxy> {
  const host = opts.host ?? '127.0.0.1';
  const target = { ...opts.target };
  const links = new Set<Link>();
  let mode: CutMode | undefined;
  let bytesToTarget = 0;
  let bytesToClient = 0;
  let accepted = 0;

  const destroyLink = (link: Link, reset: boolean): void => {
    links.delete(link);
    for (const s of [link.client, link.upstream]) {
      if (s === undefined || s.destroyed) continue;
      if (reset) s.resetAndDestroy();
      else s.destroy();
    }
  };

  /** Copies `from` -> `to` with backpressure; halts while cut. */
  const pipe = (link: Link, from: net.Socket, to: net.Socket, dir: 'client' | 'upstream'): void => {
    /** Is this direction stopped by the link's cut? */
    const halted = (): boolean => link.mode !== undefined && !(link.mode === 'replies' && dir === 'upstream');
    from.on('data', (chunk: Buffer) => {
      if (dir === 'upstream' && link.said.length < SAID_MAX) link.said += chunk.toString('latin1', 0, SAID_MAX - link.said.length);
      if (halted()) {
        // Read before the cut paused the socket: keep it for restore(), in order.
        link.held.push({ to: dir, data: chunk });
        return;
      }
      if (dir === 'upstream') bytesToTarget += chunk.length;
      else bytesToClient += chunk.length;
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (!halted()) from.resume();
    });
    // Half-close passes through; an error or close on one side ends the link.
    from.on('end', () => {
      if (link.mode === undefined) to.end();
    });
    from.on('error', () => destroyLink(link, false));
    from.on('close', () => destroyLink(link, false));
  };

  const connectUpstream = (link: Link): void => {
    const upstream = net.connect({ host: target.host, port: target.port });
    link.upstream = upstream;
    upstream.setNoDelay(true);
    // A refused or failed upstream is passed on as a reset, as a dead peer would be.
    upstream.on('error', () => destroyLink(link, true));
    // Wired at once: writes before 'connect' are queued by the socket, and no chunk may
    // be read from the client while nothing listens for it.
    pipe(link, link.client, upstream, 'upstream');
    pipe(link, upstream, link.client, 'client');
    if (link.mode === undefined || link.mode === 'replies') link.client.resume();
    if (link.mode !== undefined) upstream.pause();
  };

  const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (client) => {
    accepted++;
    const link: Link = { client, upstream: undefined, held: [], mode, said: '' };
    links.add(link);
    client.on('error', () => destroyLink(link, false));
    if (mode === 'reset') return destroyLink(link, true);
    // Blackholed: accepted (the kernel already completed the handshake) but silent until
    // restore() connects it through.
    if (mode === undefined || mode === 'replies') connectUpstream(link);
  });

  const port = opts.port ?? (await freePort(host));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  const proxy: TcpProxy = {
    host,
    port,
    address: `${host}:${port}`,
    target,
    get cutMode() {
      return mode;
    },
    get bytesToTarget() {
      return bytesToTarget;
    },
    get bytesToClient() {
      return bytesToClient;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return links.size;
    },
    cut(m: CutMode = 'blackhole', only?: string) {
      if (only === undefined) mode = m;
      for (const link of [...links]) {
        if (only !== undefined && !link.said.includes(only)) continue;
        link.mode = m;
        if (m === 'reset') destroyLink(link, true);
        else {
          if (m === 'blackhole') link.client.pause();
          link.upstream?.pause();
        }
      }
    },
    restore() {
      mode = undefined;
      for (const link of links) {
        if (link.mode === undefined) continue;
        link.mode = undefined;
        if (link.upstream === undefined) {
          connectUpstream(link);
          continue;
        }
        const { client, upstream } = link;
        for (const h of link.held.splice(0)) {
          if (h.to === 'upstream') {
            bytesToTarget += h.data.length;
            upstream.write(h.data);
          } else {
            bytesToClient += h.data.length;
            client.write(h.data);
          }
        }
        // A FIN that arrived during the cut was not passed on; pass it now.
        if (client.readableEnded) upstream.end();
        if (upstream.readableEnded) client.end();
        client.resume();
        upstream.resume();
      }
    },
    close: async () => {
      for (const link of [...links]) destroyLink(link, false);
      if (!server.listening) return;
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return proxy;
}
