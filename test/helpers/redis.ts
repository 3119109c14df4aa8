/**
 * Real Redis for the cluster tests: a `redis-server` (or `redis-sentinel`) on a free
 * loopback port, in its own temporary directory, that a test can stop, kill -9 and bring
 * back on the same port with or without its data.
 *
 * Backends. The local binary (Debian's redis-server, scripts/install-deps.sh) is the one
 * that runs here and supports everything below. When a Docker engine is reachable and the
 * `testcontainers` package is installed, `backend: 'auto'` starts a container instead
 * (same controls; see {@link startContainerRedis}); SPINDLE_TEST_REDIS=binary|container
 * forces a choice. Nothing here imports testcontainers statically: without a Docker engine
 * it is never loaded, and the package need not be installed at all.
 *
 * Defaults are the durable ones a cluster relies on: AOF on, fsync on every write, no RDB
 * snapshots, so `kill()` (SIGKILL) loses nothing that was acknowledged and
 * `restart({ empty: true })` is the only way to lose data.
 *
 * The readiness probe and {@link RedisServer.command} use a few lines of RESP over a raw
 * socket instead of a client library: they must work against a server that is still
 * loading, refuses auth, or speaks TLS, and tell those apart.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import type { RedisOptions } from 'ioredis';
import { reapOnExit, removeNow, removeOnExit } from './exit-cleanup.ts';
import { freePort } from './target.ts';

const execFileP = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// RESP (the Redis protocol), just enough for probes and one-shot commands

/** An error reply (`-ERR ...`, `-NOAUTH ...`) from the server: distinct from local failures. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
  /** The first word of the reply: ERR, NOAUTH, WRONGPASS, LOADING, READONLY, ... */
  readonly code: string;
  constructor(message: string) {
    super(message);
    this.code = message.split(' ', 1)[0] ?? '';
  }
}

export type RespValue = string | number | null | RedisReplyError | RespValue[];

/** A command as an array of bulk strings (the only request form servers must accept). */
export function encodeCommand(args: readonly (string | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * Parses one RESP2 reply at `pos`. Returns the value and the offset after it, or
 * undefined when `buf` does not hold the whole reply yet.
 */
export function parseReply(buf: Buffer, pos = 0): [RespValue, number] | undefined {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (buf[pos]) {
    case 0x2b /* + */:
      return [line, next];
    case 0x2d /* - */:
      return [new RedisReplyError(line), next];
    case 0x3a /* : */:
      return [Number(line), next];
    case 0x24 /* $ */: {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return undefined;
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case 0x2a /* * */: {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items: RespValue[] = [];
      let at = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, at);
        if (r === undefined) return undefined;
        items.push(r[0]);
        at = r[1];
      }
      return [items, at];
    }
    default:
      throw new Error(
        `not a RESP reply: ${JSON.stringify(buf.toString('utf8', pos, Math.min(buf.length, pos + 40)))}`,
      );
  }
}

/** Where to reach a server and how to log in; `tls` options are passed to tls.connect. */
export interface RespEndpoint {
  host: string;
  port: number;
  tls?: tls.ConnectionOptions;
  username?: string;
  password?: string;
}

/**
 * Sends `commands` pipelined on a fresh connection (after AUTH when the endpoint has a
 * password) and resolves with one reply per command; error replies are values, not
 * rejections. Rejects on connection errors, TLS failures and timeouts.
 */
export async function respRequest(
  ep: RespEndpoint,
  commands: readonly (readonly (string | number)[])[],
  timeoutMs = 5_000,
): Promise<RespValue[]> {
  const all =
    ep.password === undefined
      ? commands
      : [ep.username === undefined ? ['AUTH', ep.password] : ['AUTH', ep.username, ep.password], ...commands];
  const skip = all.length - commands.length;
  return new Promise((resolve, reject) => {
    const sock =
      ep.tls === undefined
        ? net.connect({ host: ep.host, port: ep.port })
        : tls.connect({ host: ep.host, port: ep.port, ...ep.tls });
    let buf: Buffer = Buffer.alloc(0);
    const replies: RespValue[] = [];
    const timer = setTimeout(
      () => fail(new Error(`no reply from ${ep.host}:${ep.port} in ${timeoutMs} ms`)),
      timeoutMs,
    );
    function fail(err: Error): void {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    }
    sock.once(ep.tls === undefined ? 'connect' : 'secureConnect', () => {
      sock.write(Buffer.concat(all.map((c) => encodeCommand(c))));
    });
    sock.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      let pos = 0;
      for (;;) {
        let r;
        try {
          r = parseReply(buf, pos);
        } catch (err) {
          return fail(err as Error);
        }
        if (r === undefined) break;
        replies.push(r[0]);
        pos = r[1];
      }
      buf = buf.subarray(pos);
      if (replies.length === all.length) {
        clearTimeout(timer);
        sock.destroy();
        const authReply = skip === 1 ? replies[0] : undefined;
        if (authReply instanceof RedisReplyError) return reject(authReply);
        resolve(replies.slice(skip));
      }
    });
    sock.on('error', fail);
    sock.on('close', () =>
      fail(new Error(`connection to ${ep.host}:${ep.port} closed after ${replies.length} replies`)),
    );
  });
}

/** One command; an error reply rejects with {@link RedisReplyError}. */
export async function respCommand(
  ep: RespEndpoint,
  args: readonly (string | number)[],
  timeoutMs?: number,
): Promise<RespValue> {
  const [reply] = await respRequest(ep, [args], timeoutMs);
  if (reply instanceof RedisReplyError) throw reply;
  return reply!;
}

/** `INFO section` as a field map (`role`, `master_link_status`, ...). */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Options and the server handle

export interface RedisAuth {
  /** An ACL user (Redis 6+): created with `rules`, and the `default` user is turned off. */
  username?: string;
  /** Without `username`: `requirepass` (the default user's password). */
  password: string;
  /** ACL rules for `username`; default `~* &* +@all`. */
  rules?: string;
}

export interface RedisStartOptions {
  /** Loopback address to bind; default 127.0.0.1. */
  host?: string;
  /** Fixed port; default a free one (retried if another process takes it first). */
  port?: number;
  /** `redis-sentinel` instead of a data server (no AOF, a writable config it rewrites). */
  sentinel?: boolean;
  /** AOF persistence; default true. */
  appendonly?: boolean;
  /** AOF fsync policy; default 'always' (an acknowledged write survives SIGKILL). */
  appendfsync?: 'always' | 'everysec' | 'no';
  auth?: RedisAuth;
  /**
   * TLS only (the plain port is closed): a throwaway CA, server and client certificate are
   * made with openssl in the server's directory. `authClients` is tls-auth-clients
   * (default 'yes': clients must present a certificate signed by the CA).
   */
  tls?: boolean | { authClients?: 'yes' | 'no' | 'optional' };
  /** More config directives, each `[name, ...args]` (e.g. `['replicaof', host, port]`). */
  config?: readonly (readonly (string | number)[])[];
  /** Label for the directory name and error messages. */
  name?: string;
  readyTimeoutMs?: number;
  /**
   * 'auto' (default): a container when a Docker engine answers and testcontainers is
   * installed, for plain standalone servers (no `sentinel`, `host` or `config`); the local
   * binary otherwise. SPINDLE_TEST_REDIS=binary|container overrides 'auto'.
   */
  backend?: 'auto' | 'binary' | 'container';
}

/** Files of the throwaway PKI (PEM paths). */
export interface RedisTlsFiles {
  ca: string;
  /** Server certificate and key (also serverAuth + clientAuth, for replication). */
  serverCert: string;
  serverKey: string;
  /** A client certificate for mutual TLS. */
  cert: string;
  key: string;
}

export interface RedisServer {
  readonly backend: 'binary' | 'container';
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** `redis://HOST:PORT/0` (`rediss://` with TLS), without credentials. */
  readonly url: string;
  /** The server's temporary directory (config, data/, tls/, password). */
  readonly dir: string;
  readonly auth: RedisAuth | undefined;
  /** A file holding only the password (no newline), for `passwordFile:` in a config. */
  readonly passwordFile: string | undefined;
  readonly tls: RedisTlsFiles | undefined;
  /** The server process id while running (binary backend). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** The server's log so far (all incarnations). */
  output(): string;
  /** Endpoint with credentials and TLS options, for {@link respRequest}. */
  endpoint(): RespEndpoint;
  /** ioredis options for this server (host, port, credentials, TLS). */
  clientOptions(): RedisOptions;
  /** One command on a fresh authenticated connection; error replies reject. */
  command(...args: (string | number)[]): Promise<RespValue>;
  /** SIGTERM (a clean shutdown: the AOF is flushed) and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit: a crash. */
  kill(): Promise<void>;
  /**
   * Start again on the same port (stopping first if running) and wait for PING.
   * `empty`: wipe the data directory first, as if Redis came back without its data.
   */
  restart(opts?: { empty?: boolean }): Promise<void>;
  /** Kill (no need to be gentle: it is going away) and delete the directory. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_READY_MS = 20_000;

/** Starts a Redis server (or Sentinel) and resolves once it answers PING. */
export async function startRedis(opts: RedisStartOptions = {}): Promise<RedisServer> {
  const backend = await chooseBackend(opts);
  return backend === 'container' ? startContainerRedis(opts) : startBinaryRedis(opts);
}

// ---------------------------------------------------------------------------------------------
// Backend choice

/**
 * Whether a Docker engine answers: DOCKER_HOST (unix:// or tcp://) or /var/run/docker.sock.
 * A socket file alone is not enough (a stale one is common): it must accept a connection.
 */
export async function dockerReachable(timeoutMs = 500): Promise<boolean> {
  const dh = process.env['DOCKER_HOST'];
  let target: net.NetConnectOpts;
  if (dh !== undefined && dh !== '') {
    if (dh.startsWith('unix://')) target = { path: dh.slice('unix://'.length) };
    else if (dh.startsWith('tcp://')) {
      const u = new URL(dh.replace(/^tcp:/, 'http:'));
      target = { host: u.hostname, port: Number(u.port || 2375) };
    } else return false;
  } else {
    if (!existsSync('/var/run/docker.sock')) return false;
    target = { path: '/var/run/docker.sock' };
  }
  return new Promise((resolve) => {
    const s = net.connect(target);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Loads `testcontainers` if it is installed (never a static import: it is optional). */
async function loadTestcontainers(): Promise<TcModule | undefined> {
  const spec = 'testcontainers';
  try {
    return (await import(spec)) as TcModule;
  } catch {
    return undefined;
  }
}

async function chooseBackend(opts: RedisStartOptions): Promise<'binary' | 'container'> {
  const forced = process.env['SPINDLE_TEST_REDIS'];
  const want = opts.backend ?? (forced === 'binary' || forced === 'container' ? forced : 'auto');
  if (want === 'binary') return 'binary';
  // Only a plain standalone server goes into a container on its own: sentinels and
  // replicas must reach each other at the addresses they announce, which a container's
  // port mapping breaks, and a chosen loopback address means nothing inside one.
  if (want === 'auto' && (opts.sentinel === true || opts.host !== undefined || opts.config !== undefined))
    return 'binary';
  const usable = (await dockerReachable()) && (await loadTestcontainers()) !== undefined;
  if (want === 'container' && !usable)
    throw new Error(
      'SPINDLE_TEST_REDIS=container, but no Docker engine is reachable or testcontainers is not installed',
    );
  return usable ? 'container' : 'binary';
}

/** Absolute path of an executable on PATH (or the usual sbin/bin dirs), or undefined. */
export function which(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/local/bin', '/usr/bin', '/usr/sbin', '/bin'];
  for (const d of dirs) {
    if (d === '') continue;
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

let version: string | undefined;

/** The local redis-server's version ("7.0.15"), or '' when it is not installed. */
export function redisVersion(): string {
  if (version === undefined) {
    const bin = which('redis-server');
    const text = bin === undefined ? '' : execFileSync(bin, ['--version'], { encoding: 'utf8' });
    version = /v=(\d+\.\d+\.\d+)/.exec(text)?.[1] ?? '';
  }
  return version;
}

function majorVersion(): number {
  return Number(redisVersion().split('.')[0] || 0);
}

// ---------------------------------------------------------------------------------------------
// Config file

/** One directive, each argument quoted when it has to be (redis.conf uses sds splitargs). */
function directive(args: readonly (string | number)[]): string {
  return args
    .map((a) => {
      const s = String(a);
      return /^[A-Za-z0-9_.:/@+<>~&*%^=,-]+$/.test(s) ? s : `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    })
    .join(' ');
}

interface ConfigPaths {
  dir: string;
  data: string;
  tls: string;
}

function configLines(
  opts: RedisStartOptions,
  bind: string,
  port: number,
  p: ConfigPaths,
): (readonly (string | number)[])[] {
  const tlsOn = opts.tls !== undefined && opts.tls !== false;
  const lines: (readonly (string | number)[])[] = [
    ['bind', bind],
    ['daemonize', 'no'],
    ['logfile', ''],
    ['dir', p.data],
  ];
  if (tlsOn) {
    const authClients = typeof opts.tls === 'object' ? (opts.tls.authClients ?? 'yes') : 'yes';
    lines.push(
      ['port', 0],
      ['tls-port', port],
      ['tls-cert-file', path.join(p.tls, 'server.crt')],
      ['tls-key-file', path.join(p.tls, 'server.key')],
      ['tls-ca-cert-file', path.join(p.tls, 'ca.crt')],
      ['tls-auth-clients', authClients],
    );
  } else {
    lines.push(['port', port]);
  }
  if (opts.sentinel !== true) {
    lines.push(
      ['save', ''],
      ['appendonly', opts.appendonly === false ? 'no' : 'yes'],
      ['appendfsync', opts.appendfsync ?? 'always'],
      // DEBUG SLEEP / DEBUG SET-ACTIVE-EXPIRE let tests make Redis slow or odd on purpose
      // (Redis 7 disables DEBUG by default; Redis 6 has it on and lacks the directive).
      ...(majorVersion() >= 7 ? [['enable-debug-command', 'local']] : []),
      // A master otherwise waits 5 s for more replicas before a full sync: every replica
      // (re)joining after a failover would take that long.
      ['repl-diskless-sync-delay', 0],
    );
  }
  const auth = opts.auth;
  if (auth !== undefined) {
    if (auth.username === undefined) lines.push(['requirepass', auth.password]);
    else {
      const rules = (auth.rules ?? '~* &* +@all').split(/\s+/).filter((r) => r !== '');
      lines.push(['user', auth.username, 'on', `>${auth.password}`, ...rules], ['user', 'default', 'off']);
    }
  }
  lines.push(...(opts.config ?? []));
  return lines;
}

// ---------------------------------------------------------------------------------------------
// TLS material

/**
 * A throwaway PKI in `dir`: CA, server certificate (SAN IP:127.0.0.1, DNS:localhost, for
 * server and client auth) and a client certificate. EC P-256 keys: quick to generate.
 */
export async function makeTlsFiles(
  dir: string,
  hosts: readonly string[] = ['127.0.0.1'],
): Promise<RedisTlsFiles> {
  const openssl = which('openssl');
  if (openssl === undefined) throw new Error('openssl not found (scripts/install-deps.sh installs it)');
  mkdirSync(dir, { recursive: true });
  const f = (n: string): string => path.join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const run = (args: string[]): Promise<unknown> => execFileP(openssl, args, { cwd: dir });
  await run([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=spindle-test-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const sans = [...new Set([...hosts, '127.0.0.1'])].map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`));
  const issue = async (name: string, cn: string, ext: string): Promise<void> => {
    writeFileSync(f(`${name}.ext`), ext);
    await run(['req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`]);
    await run([
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-set_serial',
      `0x${Math.floor(Math.random() * 2 ** 48).toString(16)}`,
      '-days',
      '2',
      '-out',
      f(`${name}.crt`),
      '-extfile',
      f(`${name}.ext`),
    ]);
  };
  await issue(
    'server',
    'localhost',
    `subjectAltName=${[...sans, 'DNS:localhost'].join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  await issue('client', 'spindle-test-client', 'extendedKeyUsage=clientAuth\n');
  return {
    ca: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    cert: f('client.crt'),
    key: f('client.key'),
  };
}

function tlsClientOptions(files: RedisTlsFiles): tls.ConnectionOptions {
  return { ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) };
}

let tlsProbe: Promise<{ supported: true } | { supported: false; reason: string }> | undefined;

/**
 * Whether the local redis-server can serve TLS (Debian builds it with OpenSSL; a build
 * without it rejects the tls-* directives). Probed once per process by starting one.
 */
export function redisTlsSupport(): Promise<{ supported: true } | { supported: false; reason: string }> {
  tlsProbe ??= (async () => {
    if (which('openssl') === undefined) return { supported: false, reason: 'openssl is not installed' };
    if (which('redis-server') === undefined)
      return { supported: false, reason: 'redis-server is not installed' };
    let server: RedisServer | undefined;
    try {
      server = await startBinaryRedis({ tls: true, name: 'tls-probe', appendonly: false });
      return { supported: true } as const;
    } catch (err) {
      // A build without TLS has no tls-* directives: "FATAL CONFIG FILE ERROR ... >>> 'tls-port
      // 1234' ... Bad directive". Any other failure is a real error, not a reason to skip.
      const msg = err instanceof Error ? err.message : String(err);
      const line = msg.split('\n').find((l) => l.includes(">>> 'tls-"));
      if (line !== undefined && msg.includes('Bad directive'))
        return { supported: false, reason: `redis-server ${redisVersion()} has no TLS: ${line.trim()}` };
      throw err;
    } finally {
      await server?.close();
    }
  })();
  return tlsProbe;
}

// ---------------------------------------------------------------------------------------------
// Shared handle logic

interface Incarnation {
  proc: ChildProcess;
  exited: Promise<void>;
}

function authEndpoint(
  host: string,
  port: number,
  auth: RedisAuth | undefined,
  t: tls.ConnectionOptions | undefined,
): RespEndpoint {
  return {
    host,
    port,
    ...(t === undefined ? {} : { tls: t }),
    ...(auth === undefined ? {} : { password: auth.password }),
    ...(auth?.username === undefined ? {} : { username: auth.username }),
  };
}

/** Polls PING until +PONG (LOADING and refused connections are "not yet"). */
async function waitForPong(
  ep: RespEndpoint,
  label: string,
  alive: () => string | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const dead = alive();
    if (dead !== undefined) throw new Error(`${label} exited before answering PING: ${dead}`);
    try {
      const reply = await respCommand(ep, ['PING'], 2_000);
      if (reply === 'PONG') return;
      last = String(reply);
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline)
      throw new Error(`${label} did not answer PING in ${timeoutMs} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitExit(inc: Incarnation, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
  const ok = await Promise.race([inc.exited.then(() => true as const), timeout]);
  clearTimeout(timer);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Local binary backend

async function startBinaryRedis(opts: RedisStartOptions): Promise<RedisServer> {
  const sentinel = opts.sentinel === true;
  const serverBin = which('redis-server');
  if (serverBin === undefined) throw new Error('redis-server not found: run scripts/install-deps.sh');
  // redis-sentinel is the same binary under another name; `redis-server --sentinel` works
  // where the redis-sentinel package (only a symlink and a service) is missing.
  const sentinelBin = which('redis-sentinel');
  const host = opts.host ?? '127.0.0.1';
  const name = opts.name ?? (sentinel ? 'sentinel' : 'redis');
  const dir = mkdtempSync(path.join(os.tmpdir(), `spindle-${name}-`));
  removeOnExit(dir);
  const paths: ConfigPaths = { dir, data: path.join(dir, 'data'), tls: path.join(dir, 'tls') };
  mkdirSync(paths.data);
  const confPath = path.join(dir, sentinel ? 'sentinel.conf' : 'redis.conf');
  const readyMs = opts.readyTimeoutMs ?? DEFAULT_READY_MS;
  const tlsOn = opts.tls !== undefined && opts.tls !== false;
  let tlsFiles: RedisTlsFiles | undefined;
  let clientTls: tls.ConnectionOptions | undefined;
  let passwordFile: string | undefined;
  let out = '';
  let inc: Incarnation | undefined;
  let port = opts.port ?? 0;
  let closed = false;

  try {
    if (tlsOn) {
      tlsFiles = await makeTlsFiles(paths.tls, [host]);
      clientTls = tlsClientOptions(tlsFiles);
    }
    if (opts.auth !== undefined) {
      passwordFile = path.join(dir, 'password');
      writeFileSync(passwordFile, opts.auth.password, { mode: 0o600 });
    }
  } catch (err) {
    removeNow(dir);
    throw err;
  }

  const launch = (): Incarnation => {
    const args = sentinel
      ? sentinelBin !== undefined
        ? [sentinelBin, [confPath]]
        : [serverBin, [confPath, '--sentinel']]
      : [serverBin, [confPath]];
    const proc = spawn(args[0] as string, args[1] as string[], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    reapOnExit(proc);
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.once('error', (err) => (out += `spawn error: ${err.message}\n`));
    return { proc, exited };
  };
  const exitedReason = (): string | undefined => {
    const p = inc?.proc;
    if (p === undefined) return 'not started';
    if (p.exitCode === null && p.signalCode === null) return undefined;
    return `exit ${p.exitCode ?? p.signalCode}\n${out.split('\n').slice(-15).join('\n')}`;
  };
  const ep = (): RespEndpoint => authEndpoint(host, port, opts.auth, clientTls);

  const bootOnce = async (): Promise<void> => {
    inc = launch();
    await waitForPong(ep(), `${name} on ${host}:${port}`, exitedReason, readyMs);
  };

  // First start: a free port unless fixed, retried when another process took it between
  // freePort() releasing it and redis-server binding it.
  for (let attempt = 0; ; attempt++) {
    if (opts.port === undefined) port = await freePort(host);
    writeFileSync(confPath, configLines(opts, host, port, paths).map(directive).join('\n') + '\n');
    const mark = out.length;
    try {
      await bootOnce();
      break;
    } catch (err) {
      inc?.proc.kill('SIGKILL');
      if (inc !== undefined) await inc.exited;
      const inUse = /Address already in use|Could not create server TCP listening socket/.test(
        out.slice(mark),
      );
      if (opts.port === undefined && inUse && attempt < 4) continue;
      removeNow(dir);
      throw err;
    }
  }

  const running = (): boolean =>
    inc !== undefined && inc.proc.exitCode === null && inc.proc.signalCode === null;
  const signalAndWait = async (sig: NodeJS.Signals): Promise<void> => {
    if (inc === undefined || !running()) return;
    inc.proc.kill(sig);
    if (!(await waitExit(inc, 15_000))) {
      inc.proc.kill('SIGKILL');
      await inc.exited;
    }
  };

  const server: RedisServer = {
    backend: 'binary',
    name,
    host,
    get port() {
      return port;
    },
    get url() {
      return `${tlsOn ? 'rediss' : 'redis'}://${host}:${port}/0`;
    },
    dir,
    auth: opts.auth,
    passwordFile,
    tls: tlsFiles,
    get pid() {
      return running() ? inc?.proc.pid : undefined;
    },
    get running() {
      return running();
    },
    output: () => out,
    endpoint: ep,
    clientOptions: () => ({
      host,
      port,
      ...(opts.auth === undefined ? {} : { password: opts.auth.password }),
      ...(opts.auth?.username === undefined ? {} : { username: opts.auth.username }),
      ...(clientTls === undefined ? {} : { tls: { ...clientTls } }),
    }),
    command: (...args) => respCommand(ep(), args),
    stop: () => signalAndWait('SIGTERM'),
    kill: () => signalAndWait('SIGKILL'),
    restart: async ({ empty = false } = {}) => {
      if (closed) throw new Error(`${name} is closed`);
      await signalAndWait('SIGTERM');
      if (empty) {
        rmSync(paths.data, { recursive: true, force: true });
        mkdirSync(paths.data);
      }
      try {
        await bootOnce();
      } catch (err) {
        inc?.proc.kill('SIGKILL');
        throw err;
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await signalAndWait('SIGKILL');
      removeNow(dir);
    },
  };
  return server;
}

// ---------------------------------------------------------------------------------------------
// testcontainers backend (only where a Docker engine is reachable; not exercised here)

/** The slice of the `testcontainers` API used below (the package is optional). */
interface TcModule {
  GenericContainer: new (image: string) => TcContainer;
  Wait: { forLogMessage(message: string): unknown };
}
interface TcContainer {
  withExposedPorts(...ports: { container: number; host: number }[]): TcContainer;
  withCommand(command: string[]): TcContainer;
  withBindMounts(mounts: { source: string; target: string; mode?: 'rw' | 'ro' }[]): TcContainer;
  withWaitStrategy(strategy: unknown): TcContainer;
  withStartupTimeout(ms: number): TcContainer;
  start(): Promise<TcStarted>;
}
interface TcStarted {
  getHost(): string;
  stop(options?: { timeout?: number; remove?: boolean }): Promise<unknown>;
  restart(options?: { timeout?: number }): Promise<unknown>;
}

/**
 * Redis in a container (image SPINDLE_TEST_REDIS_IMAGE, default redis:7) with the same
 * controls: the server's directory is bind-mounted at /spindle (config, data, TLS files),
 * so `restart({ empty })` wipes data from the host side; the host port is fixed at start,
 * so a restart keeps it. `kill()` is `docker stop -t 0` (SIGKILL right after SIGTERM,
 * which Redis handles only on its next cron tick); `pid` is undefined.
 */
async function startContainerRedis(opts: RedisStartOptions): Promise<RedisServer> {
  const tc = await loadTestcontainers();
  if (tc === undefined) throw new Error('testcontainers is not installed');
  const name = opts.name ?? 'redis';
  const dir = mkdtempSync(path.join(os.tmpdir(), `spindle-${name}-`));
  removeOnExit(dir);
  const inside: ConfigPaths = { dir: '/spindle', data: '/spindle/data', tls: '/spindle/tls' };
  const dataDir = path.join(dir, 'data');
  mkdirSync(dataDir);
  // The image runs Redis as its own user: let it write the data dir and rewrite the config.
  chmodSync(dir, 0o777);
  chmodSync(dataDir, 0o777);
  const port = opts.port ?? (await freePort());
  const tlsOn = opts.tls !== undefined && opts.tls !== false;
  const tlsFiles = tlsOn ? await makeTlsFiles(path.join(dir, 'tls'), ['127.0.0.1', 'localhost']) : undefined;
  const clientTls = tlsFiles === undefined ? undefined : tlsClientOptions(tlsFiles);
  let passwordFile: string | undefined;
  if (opts.auth !== undefined) {
    passwordFile = path.join(dir, 'password');
    writeFileSync(passwordFile, opts.auth.password, { mode: 0o600 });
  }
  const conf = path.join(dir, 'redis.conf');
  writeFileSync(conf, configLines(opts, '0.0.0.0', 6379, inside).map(directive).join('\n') + '\n', {
    mode: 0o666,
  });
  const image = process.env['SPINDLE_TEST_REDIS_IMAGE'] ?? 'redis:7';
  const started = await new tc.GenericContainer(image)
    .withExposedPorts({ container: 6379, host: port })
    .withBindMounts([{ source: dir, target: '/spindle', mode: 'rw' }])
    .withCommand(['redis-server', '/spindle/redis.conf'])
    .withWaitStrategy(tc.Wait.forLogMessage('Ready to accept connections'))
    .withStartupTimeout(120_000)
    .start();
  const host = started.getHost();
  const ep = (): RespEndpoint => authEndpoint(host, port, opts.auth, clientTls);
  let up = true;
  let closed = false;
  const ready = () =>
    waitForPong(ep(), `${name} container`, () => undefined, opts.readyTimeoutMs ?? DEFAULT_READY_MS);
  await ready();
  const halt = async (timeoutSec: number): Promise<void> => {
    if (!up) return;
    up = false;
    await started.stop({ timeout: timeoutSec, remove: false });
  };
  return {
    backend: 'container',
    name,
    host,
    port,
    url: `${tlsOn ? 'rediss' : 'redis'}://${host}:${port}/0`,
    dir,
    auth: opts.auth,
    passwordFile,
    tls: tlsFiles,
    pid: undefined,
    get running() {
      return up;
    },
    output: () => '',
    endpoint: ep,
    clientOptions: () => ({
      host,
      port,
      ...(opts.auth === undefined ? {} : { password: opts.auth.password }),
      ...(opts.auth?.username === undefined ? {} : { username: opts.auth.username }),
      ...(clientTls === undefined ? {} : { tls: { ...clientTls } }),
    }),
    command: (...args) => respCommand(ep(), args),
    stop: () => halt(10),
    kill: () => halt(0),
    restart: async ({ empty = false } = {}) => {
      if (closed) throw new Error(`${name} is closed`);
      await halt(10);
      if (empty) {
        rmSync(dataDir, { recursive: true, force: true });
        mkdirSync(dataDir);
        chmodSync(dataDir, 0o777);
      }
      await started.restart();
      up = true;
      await ready();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      up = false;
      await started.stop({ timeout: 0, remove: true }).catch(() => {});
      removeNow(dir);
    },
  };
}
