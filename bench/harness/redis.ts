/**
 * A real redis-server for `--cluster`, on a free loopback port in the bench's work
 * directory, set up as the README asks of a cluster's Redis: append-only file, fsync on
 * every write (so the PR OUT latency measured includes Redis's fsync, as in production).
 */
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited, freePort, mustRun, startDaemon, tail } from './processes.ts';

export interface RunningRedis {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly version: string;
  readonly args: readonly string[];
}

/** One PING over a raw socket: true on +PONG. */
function ping(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('error', () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d: Buffer) => done(d.toString('latin1').startsWith('+PONG')));
  });
}

export async function startRedis(work: string): Promise<RunningRedis> {
  const port = await freePort();
  const dir = path.join(work, 'redis');
  await mkdir(dir, { recursive: true });
  // prettier-ignore
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no',
  ];
  const logFile = path.join(work, 'redis.log');
  const child = await startDaemon('redis-server', args, logFile);
  const deadline = Date.now() + 15_000;
  while (!(await ping(port))) {
    if (exited(child) || Date.now() > deadline)
      throw new Error(`redis-server did not start:\n${await tail(logFile)}`);
    await sleep(100);
  }
  const version = (await mustRun('redis-server', ['--version'])).trim();
  return { url: `redis://127.0.0.1:${port}`, port, pid: child.pid!, version, args };
}
