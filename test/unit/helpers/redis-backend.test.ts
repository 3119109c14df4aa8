/**
 * How the Redis launcher picks its backend: testcontainers is tried only when a Docker
 * engine actually answers (DOCKER_HOST or /var/run/docker.sock), and the local binary is
 * used otherwise. Also the RESP codec the launcher's probes use, whole and byte by byte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  RedisReplyError,
  dockerReachable,
  encodeCommand,
  parseReply,
  startRedis,
  type RespValue,
} from '../../helpers/redis.ts';
import { freePort } from '../../helpers/target.ts';

const saved = {
  DOCKER_HOST: process.env['DOCKER_HOST'],
  SPINDLE_TEST_REDIS: process.env['SPINDLE_TEST_REDIS'],
};
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** A unix socket that accepts connections, like a Docker engine's (it speaks no HTTP). */
async function fakeEngine(): Promise<{ path: string; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spindle-fake-docker-'));
  const sock = path.join(dir, 'docker.sock');
  const srv = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => srv.listen(sock, () => r()));
  return {
    path: sock,
    close: async () => {
      await new Promise<void>((r) => srv.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('Docker engine detection', () => {
  it('DOCKER_HOST unix://: reachable only while something accepts on the socket', async () => {
    const engine = await fakeEngine();
    process.env['DOCKER_HOST'] = `unix://${engine.path}`;
    expect(await dockerReachable()).toBe(true);
    await engine.close();
    expect(await dockerReachable()).toBe(false);
  });

  it('DOCKER_HOST tcp://: a closed port is not an engine; unknown schemes are not tried', async () => {
    process.env['DOCKER_HOST'] = `tcp://127.0.0.1:${await freePort()}`;
    expect(await dockerReachable()).toBe(false);
    process.env['DOCKER_HOST'] = 'ssh://user@host';
    expect(await dockerReachable()).toBe(false);
  });

  it('an engine without the testcontainers package: the local binary is used', async () => {
    const engine = await fakeEngine();
    process.env['DOCKER_HOST'] = `unix://${engine.path}`;
    try {
      const r = await startRedis({ appendonly: false });
      try {
        expect(r.backend).toBe('binary');
        expect(await r.command('PING')).toBe('PONG');
      } finally {
        await r.close();
      }
    } finally {
      await engine.close();
    }
  });

  it('SPINDLE_TEST_REDIS=container without an engine fails clearly', async () => {
    process.env['DOCKER_HOST'] = `tcp://127.0.0.1:${await freePort()}`;
    process.env['SPINDLE_TEST_REDIS'] = 'container';
    await expect(startRedis()).rejects.toThrow(/no Docker engine is reachable/);
  });
});

describe('RESP codec', () => {
  it('encodes a command as an array of bulk strings', () => {
    expect(encodeCommand(['SET', 'k', 42]).toString()).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n42\r\n');
    expect(encodeCommand(['ECHO', 'é']).toString('latin1')).toBe('*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n');
  });

  const wire = Buffer.from(
    '+OK\r\n-WRONGPASS invalid username-password pair\r\n:42\r\n$5\r\nhe\r\nl\r\n$-1\r\n' +
      '*3\r\n$1\r\na\r\n*1\r\n:1\r\n*-1\r\n*0\r\n',
  );
  const expected: RespValue[] = [
    'OK',
    new RedisReplyError('WRONGPASS invalid username-password pair'),
    42,
    'he\r\nl',
    null,
    ['a', [1], null],
    [],
  ];

  function parseAll(buf: Buffer): RespValue[] {
    const out: RespValue[] = [];
    let pos = 0;
    for (;;) {
      const r = parseReply(buf, pos);
      if (r === undefined) return out;
      out.push(r[0]);
      pos = r[1];
    }
  }

  it('parses every reply type in one chunk', () => {
    const got = parseAll(wire);
    expect(got).toEqual(expected);
    expect((got[1] as RedisReplyError).code).toBe('WRONGPASS');
  });

  it('reports an incomplete reply at every cut point instead of misparsing', () => {
    for (let cut = 0; cut < wire.length; cut++) {
      const got = parseAll(wire.subarray(0, cut));
      // Whatever parsed is a prefix of the whole answer.
      expect(got).toEqual(expected.slice(0, got.length));
    }
  });

  it('refuses bytes that are not RESP', () => {
    expect(() => parseReply(Buffer.from('HTTP/1.1 400\r\n'))).toThrow(/not a RESP reply/);
  });
});
