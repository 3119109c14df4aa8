/**
 * The fault-injection proxy against a plain TCP echo server: forwarding and counters,
 * blackhole cuts (silent, sockets kept, data delivered after restore), reply cuts, reset cuts, new
 * connections during a cut, an unreachable target, and close.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.ts';
import { freePort } from '../../helpers/target.ts';

/** An echo server that counts the bytes and connections it saw. */
interface Echo {
  port: number;
  received: number;
  connections: number;
  server: net.Server;
}

async function startEcho(): Promise<Echo> {
  const e: Echo = { port: 0, received: 0, connections: 0, server: net.createServer() };
  e.server.on('connection', (s) => {
    e.connections++;
    s.on('error', () => {});
    s.on('data', (d) => {
      e.received += d.length;
      s.write(d);
    });
  });
  await new Promise<void>((r) => e.server.listen(0, '127.0.0.1', () => r()));
  e.port = (e.server.address() as net.AddressInfo).port;
  return e;
}

/** A client socket that collects what it receives and how it ended. */
interface Client {
  sock: net.Socket;
  data: Buffer[];
  closed: boolean;
  error: NodeJS.ErrnoException | undefined;
  /** Resolves when `n` bytes in total have arrived. */
  bytes(n: number, timeoutMs?: number): Promise<Buffer>;
  /** Resolves when the socket has closed. */
  closedP: Promise<void>;
}

async function connect(port: number): Promise<Client> {
  const sock = net.connect({ host: '127.0.0.1', port });
  const c: Client = {
    sock,
    data: [],
    closed: false,
    error: undefined,
    closedP: new Promise((r) => sock.once('close', () => r())),
    bytes: (n, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          if (c.data.reduce((sum, d) => sum + d.length, 0) < n) return false;
          clearTimeout(timer);
          sock.off('data', check);
          resolve(Buffer.concat(c.data));
          return true;
        };
        const timer = setTimeout(() => {
          sock.off('data', check);
          reject(new Error(`only ${Buffer.concat(c.data).length} of ${n} bytes in ${timeoutMs} ms`));
        }, timeoutMs);
        if (!check()) sock.on('data', check);
      }),
  };
  sock.on('data', (d: Buffer) => c.data.push(d));
  sock.on('error', (e) => (c.error = e));
  sock.on('close', () => (c.closed = true));
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  return c;
}

/** Lets the event loop and the kernel move bytes: long enough for a loopback round trip many times over. */
const settle = (ms = 200): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('tcp proxy', () => {
  let echo: Echo;
  let proxy: TcpProxy;
  const clients: Client[] = [];

  beforeAll(async () => {
    echo = await startEcho();
  });
  afterAll(async () => {
    await new Promise<void>((r) => echo.server.close(() => r()));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.sock.destroy();
    await proxy?.close();
  });

  async function client(): Promise<Client> {
    const c = await connect(proxy.port);
    clients.push(c);
    return c;
  }

  it('forwards both ways on a loopback port and counts the bytes', async () => {
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } });
    expect(proxy.host).toBe('127.0.0.1');
    expect(proxy.address).toBe(`127.0.0.1:${proxy.port}`);
    expect(proxy.port).not.toBe(echo.port);
    const c = await client();
    c.sock.write('hello');
    expect((await c.bytes(5)).toString()).toBe('hello');
    expect(proxy.bytesToTarget).toBe(5);
    expect(proxy.bytesToClient).toBe(5);
    expect(proxy.accepted).toBe(1);
    expect(proxy.open).toBe(1);
  });

  it('carries 8 MiB intact in both directions (backpressure)', async () => {
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } });
    const c = await client();
    const payload = randomBytes(8 << 20);
    c.sock.write(payload);
    const back = await c.bytes(payload.length, 30_000);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(sha(back)).toBe(sha(payload));
    expect(proxy.bytesToTarget).toBe(payload.length);
    expect(proxy.bytesToClient).toBe(payload.length);
  });

  it("cut('blackhole') goes silent with the sockets open; restore() delivers what was held", async () => {
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } });
    const c = await client();
    c.sock.write('a');
    await c.bytes(1);
    const receivedBefore = echo.received;

    proxy.cut();
    expect(proxy.cutMode).toBe('blackhole');
    c.sock.write('during the cut');
    await settle();
    expect(echo.received).toBe(receivedBefore);
    expect(Buffer.concat(c.data).toString()).toBe('a');
    expect(c.closed).toBe(false);
    expect(c.error).toBeUndefined();
    expect(proxy.open).toBe(1);
    expect(proxy.bytesToTarget).toBe(1);

    proxy.restore();
    expect(proxy.cutMode).toBeUndefined();
    expect((await c.bytes(15)).toString()).toBe('aduring the cut');
    expect(c.closed).toBe(false);
  });

  it("cut('replies') lets requests through and holds the answers until restore()", async () => {
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } });
    const c = await client();
    c.sock.write('a');
    await c.bytes(1);
    const receivedBefore = echo.received;
    proxy.cut('replies');
    expect(proxy.cutMode).toBe('replies');
    c.sock.write('request');
    await settle();
    expect(echo.received - receivedBefore, 'the request reached the target').toBe(7);
    expect(Buffer.concat(c.data).toString(), 'its answer is held').toBe('a');
    expect(c.closed).toBe(false);
    proxy.restore();
    expect((await c.bytes(8)).toString()).toBe('arequest');
  });

  it('a connection made during a blackhole is accepted, silent, and connected through on restore', async () => {
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } });
    const connectionsBefore = echo.connections;
    proxy.cut('blackhole');
    const c = await client();
    c.sock.write('early');
    await settle();
    expect(echo.connections).toBe(connectionsBefore);
    expect(c.data).toHaveLength(0);
    expect(c.closed).toBe(false);
    proxy.restore();
    expect((await c.bytes(5)).toString()).toBe('early');
    expect(echo.connections).toBe(connectionsBefore + 1);
  });

  it("cut('reset') resets open connections and new ones until restore()", async () => {
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } });
    const c = await client();
    c.sock.write('x');
    await c.bytes(1);
    proxy.cut('reset');
    await c.closedP;
    expect(c.error?.code).toBe('ECONNRESET');
    expect(proxy.open).toBe(0);

    // New connections: the handshake completes in the kernel, then the proxy resets them.
    const late = net.connect({ host: '127.0.0.1', port: proxy.port });
    const lateErr = await new Promise<NodeJS.ErrnoException | undefined>((r) => {
      late.once('error', (e) => r(e));
      late.once('close', () => r(undefined));
    });
    late.destroy();
    expect(lateErr?.code).toBe('ECONNRESET');

    proxy.restore();
    const d = await client();
    d.sock.write('again');
    expect((await d.bytes(5)).toString()).toBe('again');
  });

  it('a blackholed link can be turned into a reset', async () => {
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } });
    const c = await client();
    proxy.cut('blackhole');
    c.sock.write('lost');
    await settle(50);
    proxy.cut('reset');
    await c.closedP;
    expect(c.error?.code).toBe('ECONNRESET');
  });

  it('passes a refused upstream on as a reset', async () => {
    const deadPort = await freePort();
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: deadPort } });
    const c = await client();
    await c.closedP;
    expect(c.error?.code).toBe('ECONNRESET');
    expect(proxy.open).toBe(0);
  });

  it('close() stops listening and ends every connection', async () => {
    proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port } });
    const c = await client();
    await proxy.close();
    await c.closedP;
    const err = await new Promise<NodeJS.ErrnoException>((r) => {
      const s = net.connect({ host: '127.0.0.1', port: proxy.port });
      s.once('error', r);
    });
    expect(err.code).toBe('ECONNREFUSED');
  });
});
