/**
 * The cluster launcher's configuration side: the one YAML file for N nodes (checked
 * value by value after parsing it back), per-address port allocation on 127.0.0.x, and
 * that the per-node file of standalone mode passes spindle's real config validation.
 */
import { describe, expect, it } from 'vitest';
import net from 'node:net';
import YAML from 'yaml';
import {
  DEFAULT_IQN,
  DEFAULT_LEASE,
  allocateNodes,
  clusterConfig,
  clusterConfigYaml,
  nodeId,
  portal,
  redisConfigFor,
  standaloneNodeConfigYaml,
  type ClusterConfigSpec,
} from '../../helpers/cluster.ts';
import type { RedisServer } from '../../helpers/redis.ts';
import type { SentinelSetup } from '../../helpers/sentinel.ts';
import { parseConfig } from '../../../src/supervisor/config/load.ts';

const NODES = [
  { id: 'a', host: '127.0.0.1', port: 40001 },
  { id: 'b', host: '127.0.0.2', port: 40002 },
  { id: 'c', host: '127.0.0.3', port: 40001 },
];

function spec(over: Partial<ClusterConfigSpec> = {}): ClusterConfigSpec {
  return {
    redis: { url: 'redis://127.0.0.1:6390/0' },
    nodes: NODES,
    device: { path: '/tmp/x/shared.img' },
    stateDir: '/tmp/x/state',
    ...over,
  };
}

describe('cluster config generation', () => {
  it('writes one file naming Redis, the lease, every node and its portal, one shared device', () => {
    const doc = YAML.parse(clusterConfigYaml(spec()));
    expect(doc).toEqual({
      clusterId: 'test-cluster',
      stateDir: '/tmp/x/state',
      cluster: {
        redis: { url: 'redis://127.0.0.1:6390/0' },
        lease: { ttlSec: 4, renewSec: 0.5, marginSec: 1.5 },
        nodes: [
          { id: 'a', portals: ['127.0.0.1:40001'] },
          { id: 'b', portals: ['127.0.0.2:40002'] },
          { id: 'c', portals: ['127.0.0.3:40001'] },
        ],
      },
      devices: [{ name: 'shared', file: { path: '/tmp/x/shared.img', size: '64MiB' } }],
      targets: [
        {
          iqn: DEFAULT_IQN,
          portals: ['127.0.0.1:40001', '127.0.0.2:40002', '127.0.0.3:40001'],
          luns: { 0: 'shared' },
        },
      ],
    });
    expect(DEFAULT_LEASE).toEqual({ ttlSec: 4, renewSec: 0.5, marginSec: 1.5 });
  });

  it('writes Sentinel, ACL user, password file and TLS settings, never a password', () => {
    const doc = clusterConfig(
      spec({
        redis: {
          sentinels: ['127.0.0.1:26379', '127.0.0.1:26380'],
          masterName: 'spindle',
          username: 'spindle',
          passwordFile: '/run/secrets/redis',
          tls: { ca: '/t/ca.crt', cert: '/t/c.crt', key: '/t/c.key' },
        },
        nodeId: 'b',
        lease: { ttlSec: 10, renewSec: 1, marginSec: 3 },
        extra: { logging: { level: 'debug' } },
      }),
    );
    expect(doc['nodeId']).toBe('b');
    expect(doc['logging']).toEqual({ level: 'debug' });
    expect(doc['cluster']).toMatchObject({
      redis: {
        sentinels: ['127.0.0.1:26379', '127.0.0.1:26380'],
        masterName: 'spindle',
        username: 'spindle',
        passwordFile: '/run/secrets/redis',
        tls: { ca: '/t/ca.crt', cert: '/t/c.crt', key: '/t/c.key' },
      },
      lease: { ttlSec: 10, renewSec: 1, marginSec: 3 },
    });
    expect(JSON.stringify(doc)).not.toMatch(/password"\s*:/);
  });

  it('refuses ambiguous Redis settings', () => {
    expect(() => clusterConfig(spec({ redis: {} }))).toThrow(/exactly one of url and sentinels/);
    expect(() =>
      clusterConfig(spec({ redis: { url: 'redis://x:1', sentinels: ['x:2'], masterName: 'm' } })),
    ).toThrow(/exactly one/);
    expect(() => clusterConfig(spec({ redis: { sentinels: ['x:2'] } }))).toThrow(/masterName/);
    expect(() =>
      clusterConfig(spec({ redis: { url: 'redis://x:1', passwordFile: '/p', passwordEnv: 'P' } })),
    ).toThrow(/not both/);
  });

  it('derives cluster.redis from a helper-started server or Sentinel deployment', () => {
    const server = {
      url: 'rediss://127.0.0.1:7000/0',
      auth: { username: 'spindle', password: 'pw' },
      passwordFile: '/tmp/r/password',
      tls: { ca: '/tmp/r/ca.crt', cert: '/tmp/r/client.crt', key: '/tmp/r/client.key' },
      close: async () => {},
    } as unknown as RedisServer;
    expect(redisConfigFor(server)).toEqual({
      url: 'rediss://127.0.0.1:7000/0',
      username: 'spindle',
      passwordFile: '/tmp/r/password',
      tls: { ca: '/tmp/r/ca.crt', cert: '/tmp/r/client.crt', key: '/tmp/r/client.key' },
    });
    const sentinel = {
      masterName: 'spindle',
      sentinels: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'],
      servers: [{ auth: { password: 'pw' }, passwordFile: '/tmp/m/password' }],
    } as unknown as SentinelSetup;
    expect(redisConfigFor(sentinel)).toEqual({
      sentinels: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'],
      masterName: 'spindle',
      passwordFile: '/tmp/m/password',
    });
  });

  it('names nodes a..z then n26.. and brackets IPv6 portals', () => {
    expect([0, 1, 25, 26].map(nodeId)).toEqual(['a', 'b', 'z', 'n26']);
    expect(portal({ host: '::1', port: 3260 })).toBe('[::1]:3260');
    expect(portal({ host: '127.0.0.2', port: 3260 })).toBe('127.0.0.2:3260');
  });

  it('standalone mode: a per-node file (own portal, own stateDir, no cluster section) that spindle accepts', () => {
    const text = standaloneNodeConfigYaml(spec(), 'b', '/tmp/x/state-b');
    const doc = YAML.parse(text);
    expect(doc.cluster).toBeUndefined();
    expect(doc.nodeId).toBe('b');
    expect(doc.stateDir).toBe('/tmp/x/state-b');
    expect(doc.targets[0].portals).toEqual(['127.0.0.2:40002']);
    const cfg = parseConfig(text, 'node-b.yaml');
    expect(cfg.nodeId).toBe('b');
    expect(cfg.stateDir).toBe('/tmp/x/state-b');
    expect(cfg.devices[0]).toMatchObject({ name: 'shared' });
    expect(cfg.targets[0]!.iqn).toBe(DEFAULT_IQN);
    expect(Object.keys(cfg.targets[0]!.luns)).toEqual(['0']);
  });
});

describe('node addresses', () => {
  it('puts node i on 127.0.0.(i+1) with a port that binds on that address', async () => {
    const nodes = await allocateNodes(4);
    expect(nodes.map((n) => n.host)).toEqual(['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']);
    expect(nodes.map((n) => n.id)).toEqual(['a', 'b', 'c', 'd']);
    for (const n of nodes) {
      const srv = net.createServer();
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(n.port, n.host, () => resolve());
      });
      expect((srv.address() as net.AddressInfo).address).toBe(n.host);
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('refuses counts that do not fit 127.0.0.1..254', async () => {
    await expect(allocateNodes(0)).rejects.toThrow(RangeError);
    await expect(allocateNodes(255)).rejects.toThrow(RangeError);
  });
});
